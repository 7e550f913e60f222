//! The PostgreSQL backend against a real server: the store contract every
//! backend passes, cluster behaviour (two stores on one database), schema
//! migration, streamed imports, and TLS to the database. A test binary of
//! its own because it needs a server (`scripts/pg.sh` installs and starts
//! one); `cargo test --lib` stays free of servers.

mod backend;
mod tls;
