//! The .dockerignore parser and matcher: arbitrary rules against arbitrary paths.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // rules, then a NUL, then the paths to match (one per line)
    let (rules, paths) = text.split_once('\0').unwrap_or((text, "a/b\n.env\nsub/x.txt"));
    let rules = rbuild::context::IgnoreRules::parse(rules);
    for path in paths.lines().take(64) {
        let path = rbuild::context::clean_relative(path);
        let _ = rules.is_excluded(&path);
        let _ = rules.may_reinclude_below(&path);
    }
});
