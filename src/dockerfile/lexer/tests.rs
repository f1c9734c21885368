//! Table-driven tests of the line/word helpers (BuildKit `parser` package behaviour).

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn directives() {
    let rows: &[(&str, Option<(&str, &str)>)] = &[
        (
            "# syntax=docker/dockerfile:1",
            Some(("syntax", "docker/dockerfile:1")),
        ),
        (
            "#syntax=docker/dockerfile:1",
            Some(("syntax", "docker/dockerfile:1")),
        ),
        (
            "# syntax = docker/dockerfile:1",
            Some(("syntax", "docker/dockerfile:1")),
        ),
        ("#\tescape=`", Some(("escape", "`"))),
        ("# escape=\\", Some(("escape", "\\"))),
        ("#  dIrEcTiVe=value", Some(("directive", "value"))),
        ("# ESCAPE =  `  ", Some(("escape", "`"))),
        (
            "# check=skip=all;error=true",
            Some(("check", "skip=all;error=true")),
        ),
        ("# key2=v", Some(("key2", "v"))),
        ("# escape=", None),
        ("# escape", None),
        ("# just a comment", None),
        ("# 1abc=x", None),
        ("#", None),
        ("", None),
        ("FROM x", None),
        ("# a b=c", None),
        ("## escape=`", None),
    ];
    for (line, want) in rows {
        let got = parse_directive(line);
        let want = want.map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(got, want, "{line:?}");
    }
}

#[test]
fn continuation() {
    let rows: &[(&str, char, &str, bool)] = &[
        ("RUN a \\", '\\', "RUN a ", false),
        ("RUN a \\  ", '\\', "RUN a ", false),
        ("RUN a \\\t", '\\', "RUN a ", false),
        ("RUN a\\", '\\', "RUN a", false),
        ("RUN a", '\\', "RUN a", true),
        ("RUN a \\ b", '\\', "RUN a \\ b", true),
        ("RUN a `", '`', "RUN a ", false),
        ("RUN a \\", '`', "RUN a \\", true),
        ("COPY x c:\\", '`', "COPY x c:\\", true),
        ("\\", '\\', "", false),
        ("", '\\', "", true),
        ("RUN a \\\\", '\\', "RUN a \\", false),
    ];
    for (line, esc, want, eol) in rows {
        assert_eq!(trim_continuation(line, *esc), (*want, *eol), "{line:?}");
    }
}

#[test]
fn lines() {
    let rows: &[(&str, &[&str])] = &[
        ("", &[]),
        ("a", &["a"]),
        ("a\n", &["a"]),
        ("a\nb", &["a", "b"]),
        ("a\r\nb\r\n", &["a", "b"]),
        ("\n\n", &["", ""]),
        ("\u{feff}FROM x\n", &["FROM x"]),
        ("a\n\nb", &["a", "", "b"]),
    ];
    for (src, want) in rows {
        assert_eq!(split_lines(src), *want, "{src:?}");
    }
}

#[test]
fn commands() {
    let rows: &[(&str, &str, &str)] = &[
        ("RUN echo hi", "RUN", "echo hi"),
        ("  run   echo  hi  ", "run", "echo  hi"),
        ("FROM\talpine", "FROM", "alpine"),
        ("CMD", "CMD", ""),
        ("", "", ""),
    ];
    for (line, kw, rest) in rows {
        assert_eq!(split_command(line), (*kw, *rest), "{line:?}");
    }
}

#[test]
fn flags() {
    let rows: &[(&str, &str, &[&str])] = &[
        ("echo hi", "echo hi", &[]),
        ("--from=build /a /b", "/a /b", &["--from=build"]),
        (
            "--from=build --chown=1:1 /a /b",
            "/a /b",
            &["--from=build", "--chown=1:1"],
        ),
        ("--link /a /b", "/a /b", &["--link"]),
        (
            "--mount=type=cache,target=/x echo",
            "echo",
            &["--mount=type=cache,target=/x"],
        ),
        ("--a=\"x y\" rest", "rest", &["--a=x y"]),
        ("--a='x y' rest", "rest", &["--a=x y"]),
        ("--a=x\\ y rest", "rest", &["--a=x y"]),
        ("--a=\"q\\\"q\" rest", "rest", &["--a=q\"q"]),
        ("-- --notflag", "--notflag", &[]),
        ("--a -- --b", "--b", &["--a"]),
        ("-x y", "-x y", &[]),
        ("--only", "", &["--only"]),
        ("--x=1 --y=2", "", &["--x=1", "--y=2"]),
        ("[\"a\"]", "[\"a\"]", &[]),
        (
            "--platform=$BUILDPLATFORM golang",
            "golang",
            &["--platform=$BUILDPLATFORM"],
        ),
        ("", "", &[]),
        ("--a=\"\" b", "b", &["--a="]),
    ];
    for (line, rest, words) in rows {
        let (got_rest, got_words) = extract_flags(line);
        assert_eq!(
            (got_rest.as_str(), got_words),
            (*rest, s(words)),
            "{line:?}"
        );
    }
}

#[test]
fn words() {
    let rows: &[(&str, char, &[&str])] = &[
        ("a b c", '\\', &["a", "b", "c"]),
        ("  a   b  ", '\\', &["a", "b"]),
        ("a=\"x y\" b=c", '\\', &["a=\"x y\"", "b=c"]),
        ("a='x y'", '\\', &["a='x y'"]),
        ("a=x\\ y b", '\\', &["a=x\\ y", "b"]),
        ("a=\"x\\\" y\"", '\\', &["a=\"x\\\" y\""]),
        ("a='x\\' y", '\\', &["a='x\\'", "y"]),
        ("\"\"", '\\', &["\"\""]),
        ("a\\", '\\', &["a"]),
        ("a=`\" b`\"", '`', &["a=`\"", "b`\""]),
        ("a=\"x`\" y\"", '`', &["a=\"x`\" y\""]),
        ("", '\\', &[]),
        ("k=v\tk2=v2", '\\', &["k=v", "k2=v2"]),
        ("\"unterminated x", '\\', &["\"unterminated x"]),
    ];
    for (line, esc, want) in rows {
        assert_eq!(parse_words(line, *esc), s(want), "{line:?}");
    }
}

#[test]
fn whitespace_split() {
    let rows: &[(&str, &[&str])] = &[
        ("a b", &["a", "b"]),
        ("a\tb  c", &["a", "b", "c"]),
        ("\"a b\" c", &["\"a", "b\"", "c"]),
        ("", &[]),
        ("  x  ", &["x"]),
    ];
    for (line, want) in rows {
        assert_eq!(split_whitespace(line), s(want), "{line:?}");
    }
}

#[test]
fn json_arrays() {
    let rows: &[(&str, JsonForm)] = &[
        ("[\"a\", \"b\"]", JsonForm::Strings(s(&["a", "b"]))),
        ("  [\"a\"]  ", JsonForm::Strings(s(&["a"]))),
        ("[]", JsonForm::Strings(vec![])),
        ("[\"a\\\"b\"]", JsonForm::Strings(s(&["a\"b"]))),
        ("[\"\\u0041\"]", JsonForm::Strings(s(&["A"]))),
        ("[1, 2]", JsonForm::NotStrings),
        ("[\"a\", null]", JsonForm::NotStrings),
        ("[\"a\", [\"b\"]]", JsonForm::NotStrings),
        ("['a']", JsonForm::NotJson),
        ("[\"a\"", JsonForm::NotJson),
        ("[\"a\"] x", JsonForm::NotJson),
        ("echo [\"a\"]", JsonForm::NotJson),
        ("{\"a\": 1}", JsonForm::NotJson),
        ("[a]", JsonForm::NotJson),
        ("", JsonForm::NotJson),
    ];
    for (text, want) in rows {
        assert_eq!(parse_json_array(text), *want, "{text:?}");
    }
}

#[test]
fn heredoc_words() {
    let m = |name: &str, expand: bool, strip_tabs: bool| {
        Some(HeredocMarker {
            name: name.to_string(),
            expand,
            strip_tabs,
        })
    };
    let rows: &[(&str, Option<HeredocMarker>)] = &[
        ("<<EOF", m("EOF", true, false)),
        ("<<-EOF", m("EOF", true, true)),
        ("<<\"EOF\"", m("EOF", false, false)),
        ("<<'EOF'", m("EOF", false, false)),
        ("<<-'EOF'", m("EOF", false, true)),
        ("<<E\"O\"F", m("EOF", false, false)),
        ("<<\\EOF", m("EOF", false, false)),
        ("2<<EOF", m("EOF", true, false)),
        ("<<file.txt", m("file.txt", true, false)),
        ("<<", None),
        ("<<-", None),
        ("<<<EOF", None),
        ("cat<<EOF", None),
        ("\"<<EOF\"", None),
        ("EOF", None),
        ("<<\"EOF", None),
        ("<<''", None),
    ];
    for (word, want) in rows {
        assert_eq!(parse_heredoc_word(word, '\\'), *want, "{word:?}");
    }
}
