//! Feeds arbitrary query/body pairs to the credentials parser: it must never
//! panic, and whatever it returns must be valid UTF-8 by construction.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let _ = tessera::http::form::credentials(input.0, input.1);
});
