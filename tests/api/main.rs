//! One integration-test binary: every test starts the whole app in this
//! process on port 0 with a temp data dir and a clock it controls, and
//! talks HTTP to it. What needs a real process is in `tests/process`.

#[path = "../common/http.rs"]
mod http;

mod admin;
mod apply;
mod clocks;
mod console;
mod corpus;
mod dpop;
mod feed;
mod helpers;
mod hostile;
mod interop;
mod oauth;
mod partner;
mod policy;
mod scopes;
mod secrets;
mod throttle;
mod verify;
