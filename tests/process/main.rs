//! The tests that need a real process: signals, SIGKILL durability, the
//! data-dir lock, what reaches the log, env vars, and the process's memory.
//! Everything else runs in-process in `tests/api`.

#[path = "../common/http.rs"]
mod http;

mod cli;
mod clocks;
mod cluster;
mod console;
mod deploy;
mod faults;
mod helpers;
mod https;
mod interop;
mod lifecycle;
mod memory;
mod partner_service;
