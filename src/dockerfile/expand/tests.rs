//! Table-driven tests of the word expander. Expected values follow bash / BuildKit
//! (`shell/lex.go`) semantics.

use super::*;

/// The environment every row runs with.
fn env(name: &str) -> Option<String> {
    let v = match name {
        "A" => "a",
        "B" => "b",
        "E" => "",
        "FOO" => "foo",
        "P" => "/usr/local/bin",
        "F" => "archive.tar.gz",
        "S" => "hello world",
        "X" => "abcabc",
        "STAR" => "*",
        "GLOB" => "x*y",
        "U_1" => "u1",
        "DOL" => "$A",
        "Q" => "it's",
        "BR" => "a}b",
        "MIX" => "AbC123",
        _ => return None,
    };
    Some(v.to_string())
}

fn run(word: &str, escape: char) -> Result<Expansion, ExpandError> {
    expand_word(word, escape, &env)
}

fn check_values(rows: &[(&str, &str)], escape: char) {
    let mut failures = Vec::new();
    for (i, (input, want)) in rows.iter().enumerate() {
        match run(input, escape) {
            Ok(got) if got.value == *want => {}
            other => failures.push(format!("row {i}: {input:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn quoting_and_escapes_backslash() {
    check_values(
        &[
            ("", ""),
            ("hello", "hello"),
            ("hello world", "hello world"),
            ("  padded  ", "  padded  "),
            ("'single'", "single"),
            ("\"double\"", "double"),
            ("'$A'", "$A"),
            ("\"$A\"", "a"),
            ("\"'$A'\"", "'a'"),
            ("'\"$A\"'", "\"$A\""),
            ("a'b'c", "abc"),
            ("a\"b\"c", "abc"),
            ("\\$A", "$A"),
            ("\\\\", "\\"),
            ("a\\ b", "a b"),
            ("\\'", "'"),
            ("\\\"", "\""),
            ("abc\\", "abc"),
            ("\\a", "a"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\$b\"", "a$b"),
            ("\"a\\\\b\"", "a\\b"),
            ("\"a\\nb\"", "a\\nb"),
            ("'a\\b'", "a\\b"),
            ("'a\\'", "a\\"),
            ("\"\"", ""),
            ("''", ""),
            ("'a b'", "a b"),
            ("\"it's\"", "it's"),
            ("'it'\\''s'", "it's"),
            ("\"a\"'b'c", "abc"),
            ("\"`\"", "`"),
            ("\"\\`\"", "\\`"),
            ("'${A}'", "${A}"),
            ("\"\\${A}\"", "${A}"),
            ("\\${A}", "${A}"),
            ("\"$A\"'$A'$A", "a$Aa"),
            ("\"pre ${A} post\"", "pre a post"),
        ],
        '\\',
    );
}

#[test]
fn simple_substitution() {
    check_values(
        &[
            ("$A", "a"),
            ("${A}", "a"),
            ("$A$B", "ab"),
            ("${A}${B}", "ab"),
            ("$Ab", ""),
            ("${A}b", "ab"),
            ("$FOO/bar", "foo/bar"),
            ("/x/$FOO", "/x/foo"),
            ("$UNSET", ""),
            ("${UNSET}", ""),
            ("x${UNSET}y", "xy"),
            ("$", "$"),
            ("a$", "a$"),
            ("$ A", "$ A"),
            ("$/", "$/"),
            ("$.x", "$.x"),
            ("$%", "$%"),
            ("$=", "$="),
            ("\"$\"", "$"),
            ("'$'", "$"),
            ("$'A'", "$A"),
            ("$\"A\"", "$A"),
            ("$1", ""),
            ("$10x", "x"),
            ("$U_1", "u1"),
            ("${U_1}x", "u1x"),
            ("$_", ""),
            ("$A-$B", "a-b"),
            ("$A.$B", "a.b"),
            ("$A:$B", "a:b"),
            ("$DOL", "$A"),
            ("${DOL}", "$A"),
            ("$S", "hello world"),
            ("\"$S\"", "hello world"),
            ("$Q", "it's"),
            ("$BR", "a}b"),
            ("$@", ""),
            ("$*", ""),
            ("$$", ""),
        ],
        '\\',
    );
}

#[test]
fn default_and_alternative() {
    check_values(
        &[
            ("${A:-x}", "a"),
            ("${E:-x}", "x"),
            ("${UNSET:-x}", "x"),
            ("${A-x}", "a"),
            ("${E-x}", ""),
            ("${UNSET-x}", "x"),
            ("${UNSET:-}", ""),
            ("${UNSET-}", ""),
            ("${UNSET:-$A}", "a"),
            ("${UNSET:-${B}}", "b"),
            ("${UNSET:-${E:-deep}}", "deep"),
            ("${UNSET:-a b}", "a b"),
            ("${UNSET:-\"a b\"}", "a b"),
            ("${UNSET:-'$A'}", "$A"),
            ("${UNSET:-\\}}", "}"),
            ("${UNSET:-'}'}", "}"),
            ("${UNSET:-\"}\"}", "}"),
            ("\"${UNSET:-x y}\"", "x y"),
            ("${UNSET:-x}y", "xy"),
            ("${UNSET:-\\$A}", "$A"),
            ("${UNSET:-${UNSET2:-${A}}}", "a"),
            ("${A:-$UNSET}", "a"),
            ("${UNSET:-/usr/$FOO}", "/usr/foo"),
            ("${UNSET:--}", "-"),
            ("${UNSET:-:}", ":"),
            ("${UNSET:-{x}", "{x"),
            ("${BR:-x}", "a}b"),
            ("${A:+x}", "x"),
            ("${E:+x}", ""),
            ("${UNSET:+x}", ""),
            ("${A+x}", "x"),
            ("${E+x}", "x"),
            ("${UNSET+x}", ""),
            ("${A:+$B}", "b"),
            ("${A:+[$A]}", "[a]"),
            ("${A:+}", ""),
            ("${A:+\"q q\"}", "q q"),
            ("${A:+${UNSET:-z}}", "z"),
            ("\"${A:+x}\"", "x"),
            ("\"${UNSET:-\"q\"}\"", "q"),
            ("${A:?msg}", "a"),
            ("${A?msg}", "a"),
            ("${E?msg}", ""),
            ("${A:?}", "a"),
        ],
        '\\',
    );
}

#[test]
fn trim_patterns() {
    check_values(
        &[
            ("${F#*.}", "tar.gz"),
            ("${F##*.}", "gz"),
            ("${F%.*}", "archive.tar"),
            ("${F%%.*}", "archive"),
            ("${P#/}", "usr/local/bin"),
            ("${P##*/}", "bin"),
            ("${P%/*}", "/usr/local"),
            ("${P%%/*}", ""),
            ("${P#*/}", "usr/local/bin"),
            ("${P#/*/}", "local/bin"),
            ("${P##/*/}", "bin"),
            ("${F#nomatch}", "archive.tar.gz"),
            ("${F%nomatch}", "archive.tar.gz"),
            ("${F#}", "archive.tar.gz"),
            ("${F%}", "archive.tar.gz"),
            ("${F#archive}", ".tar.gz"),
            ("${F%.gz}", "archive.tar"),
            ("${F#tar}", "archive.tar.gz"),
            ("${X#a*c}", "abc"),
            ("${X##a*c}", ""),
            ("${X%b*}", "abca"),
            ("${X%%b*}", "a"),
            ("${X#?}", "bcabc"),
            ("${X##?}", "bcabc"),
            ("${X%?}", "abcab"),
            ("${X%%?}", "abcab"),
            ("${X#??}", "cabc"),
            ("${X#*}", "abcabc"),
            ("${X##*}", ""),
            ("${X%*}", "abcabc"),
            ("${X%%*}", ""),
            ("${X#*c}", "abc"),
            ("${X##*c}", ""),
            ("${X#*b}", "cabc"),
            ("${X##*b}", "c"),
            ("${X%c*}", "abcab"),
            ("${X%%c*}", "ab"),
            ("${X#[ab]}", "bcabc"),
            ("${X#[!a]}", "abcabc"),
            ("${X#[^b]}", "bcabc"),
            ("${X##[a-b]*}", ""),
            ("${X%[a-c]}", "abcab"),
            ("${X#[[:alpha:]]}", "bcabc"),
            ("${X%[[:digit:]]}", "abcabc"),
            ("${MIX##*[[:upper:]]}", "123"),
            ("${MIX%%[0-9]*}", "AbC"),
            ("${MIX#[]A]}", "bC123"),
            ("${X#[}", "abcabc"),
            ("${UNSET#a}", ""),
            ("${E%a}", ""),
            ("${F#\\*}", "archive.tar.gz"),
            ("${STAR#\\*}", ""),
            ("${STAR#\"*\"}", ""),
            ("${STAR#'*'}", ""),
            ("${GLOB#x\\*}", "y"),
            ("${GLOB#x\"*\"}", "y"),
            ("${GLOB#x*}", "*y"),
            ("${GLOB##x*}", ""),
            ("${GLOB%\\*y}", "x"),
            ("${GLOB#x\\?}", "x*y"),
            ("${X#$A}", "bcabc"),
            ("${X#${A}b}", "cabc"),
            ("${X#\"$A\"}", "bcabc"),
            ("${F##*[.]}", "gz"),
            ("${X%c}", "abcab"),
            ("${X%%c}", "abcab"),
            ("\"${F%.*}\"", "archive.tar"),
            ("${F%.*}.zip", "archive.tar.zip"),
            ("${F:#*.}", "tar.gz"),
            ("${F:%%.*}", "archive"),
        ],
        '\\',
    );
}

#[test]
fn replace_patterns() {
    check_values(
        &[
            ("${X/b/B}", "aBcabc"),
            ("${X//b/B}", "aBcaBc"),
            ("${X/b}", "acabc"),
            ("${X//b}", "acac"),
            ("${X//b/}", "acac"),
            ("${X/a*c/Z}", "Z"),
            ("${X/b*/Z}", "aZ"),
            ("${X//?/.}", "......"),
            ("${X/nomatch/Z}", "abcabc"),
            ("${X//[ac]/-}", "-b--b-"),
            ("${X//[!ac]/-}", "a-ca-c"),
            ("${P//\\//:}", ":usr:local:bin"),
            ("${P//'/'/:}", ":usr:local:bin"),
            ("${X/$A/$B}", "bbcabc"),
            ("${X//a/${B}${B}}", "bbbcbbbc"),
            ("${UNSET/a/b}", ""),
            ("${E//a/b}", ""),
            ("${X/*/all}", "all"),
            ("${X//*/all}", "all"),
            ("${S/ /_}", "hello_world"),
            ("${X/b/\"x y\"}", "ax ycabc"),
            ("${F/.tar/}", "archive.gz"),
            ("${X/c/\\}}", "ab}abc"),
            ("${P/\\/usr/}", "/local/bin"),
            ("${STAR/\\*/star}", "star"),
            ("${GLOB/\\*/+}", "x+y"),
            ("${GLOB/'*'/+}", "x+y"),
            ("${X/bc/}", "aabc"),
            ("${X//bc/}", "aa"),
            ("${X/[bc]*a/-}", "a-bc"),
            ("\"${X//b/ }\"", "a ca c"),
            ("${X//abc/$FOO}", "foofoo"),
        ],
        '\\',
    );
}

#[test]
fn backtick_escape() {
    check_values(
        &[
            ("`$A", "$A"),
            ("C:\\path", "C:\\path"),
            ("\"C:\\path\"", "C:\\path"),
            ("a``b", "a`b"),
            ("\"a`\"b\"", "a\"b"),
            ("\"`$A\"", "$A"),
            ("\"a\\\"", "a\\"),
            ("${UNSET:-`}}", "}"),
            ("abc`", "abc"),
            ("`'", "'"),
            ("$A`$B", "a$B"),
            ("${P//`//:}", ":usr:local:bin"),
            ("${STAR#`*}", ""),
            ("\\$A", "\\a"),
            ("'`'", "`"),
            ("\"`\\\"", "`\\"),
            ("c:\\windows\\$A", "c:\\windows\\a"),
            ("\"``\"", "`"),
            ("`\"x`\"", "\"x\""),
            ("$FOO`", "foo"),
            ("${GLOB#x`*}", "y"),
            ("`a", "a"),
        ],
        '`',
    );
}

#[test]
fn errors() {
    let rows: &[(&str, char, &str)] = &[
        (
            "'abc",
            '\\',
            "unexpected end of statement while looking for matching single-quote",
        ),
        (
            "\"abc",
            '\\',
            "unexpected end of statement while looking for matching double-quote",
        ),
        (
            "\"abc\\\"",
            '\\',
            "unexpected end of statement while looking for matching double-quote",
        ),
        (
            "\"abc`\"",
            '`',
            "unexpected end of statement while looking for matching double-quote",
        ),
        (
            "a'b",
            '\\',
            "unexpected end of statement while looking for matching single-quote",
        ),
        ("${", '\\', "syntax error: missing '}'"),
        ("${A", '\\', "syntax error: missing '}'"),
        ("${A:", '\\', "syntax error: missing '}'"),
        ("${A:-x", '\\', "syntax error: missing '}'"),
        ("${A:-'x}", '\\', "syntax error: missing '}'"),
        ("${A#x", '\\', "syntax error: missing '}'"),
        ("${A/x", '\\', "syntax error: missing '}'"),
        ("${A/x/y", '\\', "syntax error: missing '}'"),
        ("${A:-\\}", '\\', "syntax error: missing '}'"),
        ("${}", '\\', "syntax error: bad substitution"),
        ("${:}", '\\', "syntax error: bad substitution"),
        ("${{A}}", '\\', "syntax error: bad substitution"),
        ("${:-x}", '\\', "syntax error: bad substitution"),
        ("${ A}", '\\', "syntax error: bad substitution"),
        ("${A:x}", '\\', "unsupported modifier (:x) in substitution"),
        ("${A:=x}", '\\', "unsupported modifier (:=) in substitution"),
        ("${A=x}", '\\', "unsupported modifier (=) in substitution"),
        ("${A!x}", '\\', "unsupported modifier (!) in substitution"),
        ("${A x}", '\\', "unsupported modifier ( ) in substitution"),
        ("${#A}", '\\', "unsupported modifier (A) in substitution"),
        ("${E:?msg}", '\\', "E: msg"),
        ("${UNSET:?msg}", '\\', "UNSET: msg"),
        ("${UNSET?msg}", '\\', "UNSET: msg"),
        ("${UNSET?}", '\\', "UNSET: is not allowed to be unset"),
        ("${UNSET:?}", '\\', "UNSET: is not allowed to be unset"),
        ("${E:?}", '\\', "E: is not allowed to be empty"),
        ("${UNSET:?need $A}", '\\', "UNSET: need a"),
        ("${UNSET:?\"two words\"}", '\\', "UNSET: two words"),
        ("x${UNSET:?set it}y", '\\', "UNSET: set it"),
        ("\"${UNSET:?in quotes}\"", '\\', "UNSET: in quotes"),
        ("${UNSET:-${E:?inner}}", '\\', "E: inner"),
        ("${A:-${UNSET:?eager}}", '\\', "UNSET: eager"),
        ("${UNSET:?`}}", '`', "UNSET: }"),
        (
            "'x",
            '`',
            "unexpected end of statement while looking for matching single-quote",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (input, escape, want)) in rows.iter().enumerate() {
        match run(input, *escape) {
            Err(e) if e.message.to_string() == *want && e.word == *input => {}
            other => failures.push(format!("row {i}: {input:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_display() {
    let e = run("${E:?msg}", '\\').unwrap_err();
    assert_eq!(e.to_string(), "failed to process \"${E:?msg}\": E: msg");
}

#[test]
fn referenced_and_unset() {
    let rows: &[(&str, &[&str], &[&str])] = &[
        ("plain", &[], &[]),
        ("$A", &["A"], &[]),
        ("$A$A${A}", &["A"], &[]),
        ("$UNSET $A", &["UNSET", "A"], &["UNSET"]),
        ("${UNSET:-$A}", &["UNSET", "A"], &["UNSET"]),
        ("${A:-$UNSET}", &["A", "UNSET"], &["UNSET"]),
        ("'$A'", &[], &[]),
        ("\\$A", &[], &[]),
        ("\"$A\"", &["A"], &[]),
        ("${E:+x}", &["E"], &[]),
        ("${X/$A/$B}", &["X", "A", "B"], &[]),
        ("${F%.*}", &["F"], &[]),
        ("$1", &["1"], &["1"]),
        ("$B$UNSET$A$UNSET", &["B", "UNSET", "A"], &["UNSET"]),
        ("${U1:-${U2:-$U1}}", &["U1", "U2"], &["U1", "U2"]),
        ("$", &[], &[]),
    ];
    for (input, referenced, unset) in rows {
        let got = run(input, '\\').unwrap();
        assert_eq!(got.referenced, *referenced, "referenced of {input:?}");
        assert_eq!(got.unset, *unset, "unset of {input:?}");
    }
}

#[test]
fn glob_matcher() {
    let rows: &[(&str, &str, bool)] = &[
        ("", "", true),
        ("", "a", false),
        ("a", "", false),
        ("*a*", "bab", true),
        ("*a*b", "aab", true),
        ("*", "", true),
        ("*", "abc", true),
        ("?", "", false),
        ("?", "a", true),
        ("a*b", "ab", true),
        ("a*b", "axxb", true),
        ("a*b", "axxbc", false),
        ("*.go", "main.go", true),
        ("*.go", "main.rs", false),
        ("[a-c]x", "bx", true),
        ("[a-c]x", "dx", false),
        ("[!a-c]x", "dx", true),
        ("[]]", "]", true),
        ("[a-]", "-", true),
        ("**a", "bba", true),
        ("a?c*", "abcdef", true),
    ];
    for (pattern, text, want) in rows {
        let toks = compile_pattern(&unquoted(pattern));
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(glob_match(&toks, &chars), *want, "{pattern:?} vs {text:?}");
    }
}

#[test]
fn large_values_stay_fast() {
    let big = "ab".repeat(20_000);
    let lookup = |name: &str| (name == "BIG").then(|| big.clone());
    let rows: &[(&str, usize)] = &[
        ("${BIG//a/}", 20_000),
        ("${BIG//a*b/x}", 1),
        ("${BIG/b*a/}", 2),
        ("${BIG%%b*}", 1),
        ("${BIG%b*}", 39_999),
        ("${BIG##*a}", 1),
        ("${BIG#*a}", 39_999),
        ("${BIG//[ab]/}", 0),
        ("${BIG//?a/}", 2),
    ];
    for (word, len) in rows {
        let got = expand_word(word, '\\', &lookup).unwrap();
        assert_eq!(got.value.chars().count(), *len, "{word}");
    }
}

#[test]
fn no_panic_on_odd_input() {
    let words = [
        "${",
        "$",
        "${A",
        "${A:",
        "${A/",
        "${A//",
        "${A#",
        "${A%%",
        "\"",
        "'",
        "\\",
        "`",
        "${A:-\"",
        "${A/[/x}",
        "${A/[!/x}",
        "${X/[[:/x}",
        "${X#[[:alpha:]}",
        "${X#[a-}",
        "\u{0}$\u{0}",
        "${é}",
        "$é",
        "${X/[z-a]/x}",
        "${A:?",
        "$$$$",
        "${${A}}",
        "${A:-${B:-${C:-",
    ];
    for w in words {
        for escape in ['\\', '`'] {
            let _ = run(w, escape);
            for cut in 0..=w.chars().count() {
                let prefix: String = w.chars().take(cut).collect();
                let _ = run(&prefix, escape);
            }
        }
    }
}

/// A hostile word nested thousands deep is an error, never a stack overflow (exit 134).
#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let depth = 4000;
    let word = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let quoted = format!("{}x{}", "${a:-\"".repeat(depth), "\"}".repeat(depth));
    for w in [word, quoted] {
        let error = expand_word(&w, '\\', &|_| None).expect_err("too deep");
        assert!(
            error
                .message
                .to_string()
                .contains("nested more than 128 deep"),
            "{}",
            error.message
        );
    }
    // Real nesting still works.
    let word = format!("{}x{}", "${a:-".repeat(100), "}".repeat(100));
    assert_eq!(
        expand_word(&word, '\\', &|_| None).expect("100 deep").value,
        "x"
    );
}

/// The replacement loop stops once the pattern has read to the end without a match; on a long
/// value that keeps `${v//*b/x}` linear (it took seconds on 20,000 characters). The result must
/// be what trying every start gives: compared with that on many small values.
#[test]
fn replace_all_is_linear_and_agrees_with_trying_every_start() {
    let long = "a".repeat(20_000);
    let lookup = |value: String| move |name: &str| (name == "v").then(|| value.clone());
    let out = expand_word("${v//*b/x}", '\\', &lookup(long.clone())).expect("expand");
    assert_eq!(out.value, long);

    fn naive(value: &str, pattern: &str, replacement: &str, all: bool) -> String {
        let pieces: Vec<(char, bool)> = pattern.chars().map(|c| (c, false)).collect();
        let pattern = compile_pattern(&pieces);
        let chars: Vec<char> = value.chars().collect();
        let (mut out, mut i, mut replaced) = (String::new(), 0, false);
        while i < chars.len() {
            let found = if replaced && !all {
                None
            } else {
                match_lengths(&pattern, chars[i..].iter().copied())
                    .last()
                    .copied()
                    .filter(|&len| len > 0)
            };
            match found {
                Some(len) => {
                    out.push_str(replacement);
                    i += len;
                    replaced = true;
                }
                None => {
                    out.push(chars[i]);
                    i += 1;
                }
            }
        }
        out
    }
    let alphabet = ['a', 'b', 'c', 'x'];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 8) as usize;
        let value: String = (0..len)
            .map(|k| alphabet[((seed >> (k * 3 + 5)) % 4) as usize])
            .collect();
        for pattern in ["*b", "a*c", "b", "?", "*", "[ab]*c", "a*b*c", "bb", "c*"] {
            for all in [true, false] {
                let word = format!("${{v/{}{pattern}/R}}", if all { "/" } else { "" });
                let got = expand_word(&word, '\\', &lookup(value.clone())).expect("expand");
                assert_eq!(
                    got.value,
                    naive(&value, pattern, "R", all),
                    "{word} on {value:?}"
                );
            }
        }
    }
}
