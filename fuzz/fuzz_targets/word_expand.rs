//! Word expansion (`${a:-${b//x/y}}`, quotes, escapes) on arbitrary words, with a few set
//! variables whose values the input also chooses: an error or a value, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // first line: the value of `a`; the rest: the word
    let (value, word) = text.split_once('\n').unwrap_or(("", text));
    let value = value.to_string();
    let lookup = move |name: &str| match name {
        "a" => Some(value.clone()),
        "b" => Some(String::new()),
        "HOME" => Some("/root".to_string()),
        _ => None,
    };
    for escape in ['\\', '`'] {
        let _ = rbuild::dockerfile::expand_word(word, escape, &lookup);
    }
});
