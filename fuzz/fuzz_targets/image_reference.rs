//! Image references (`registry:5000/ns/name:tag@sha256:...`) and tags (`-t`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = rbuild::image::parse_reference(text) {
        let _ = reference.name();
        let _ = reference.familiar_name();
        let _ = reference.tag_key();
        let _ = reference.digest_key();
        let _ = reference.with_tag("t");
    }
    let _ = rbuild::image::parse_tag(text);
});
