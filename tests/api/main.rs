//! One integration-test binary: every test starts the real server on port 0
//! with a temp data dir and talks HTTP to it.

mod admin;
mod corpus;
mod helpers;
mod hostile;
mod interop;
mod lifecycle;
mod partner;
mod throttle;
mod verify;
