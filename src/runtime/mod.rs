//! Process plumbing: the data dir's files and modes ([`data_dir`]), the
//! running server's identity for the CLI ([`instance`]), the clock
//! ([`time`]), metrics ([`metrics`]), the per-request change log
//! ([`change_log`]), error messages with their causes ([`error_chain`]) and without
//! secrets ([`redact`]).

pub mod change_log;
pub mod data_dir;
pub mod error_chain;
pub mod instance;
pub mod metrics;
pub mod redact;
pub mod time;
