//! The Dockerfile parser on arbitrary text: an error or a Dockerfile, never a panic, a hang or
//! a stack overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rbuild::dockerfile::parse(text);
    }
});
