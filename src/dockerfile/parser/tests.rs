//! Table-driven tests of the parser. Expected values follow BuildKit's parser and instruction
//! validation (`parser/parser.go`, `line_parsers.go`, `instructions/parse.go`).

use super::*;

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn shell(s: &str) -> Command {
    Command::Shell(s.to_string())
}

fn exec(v: &[&str]) -> Command {
    Command::Exec(sv(v))
}

fn flag(name: &str, value: Option<&str>) -> Flag {
    Flag {
        name: name.to_string(),
        value: value.map(str::to_string),
    }
}

fn hd(name: &str, content: &str, expand: bool, strip_tabs: bool) -> Heredoc {
    Heredoc {
        name: name.to_string(),
        content: content.to_string(),
        expand,
        strip_tabs,
    }
}

/// RUN's flags as the parser reads them.
fn run_flags(flags: &[Flag]) -> RunFlags {
    RunFlags::read(flags).expect("valid RUN flags")
}

/// COPY's and ADD's flags as the parser reads them.
fn copy_flags(flags: &[Flag]) -> CopyFlags {
    CopyFlags::read(flags).expect("valid COPY flags")
}

fn run(flags: Vec<Flag>, command: Command) -> InstructionKind {
    InstructionKind::Run {
        flags: run_flags(&flags),
        command,
        heredocs: vec![],
    }
}

fn copy(flags: Vec<Flag>, sources: &[&str], dest: &str) -> InstructionKind {
    InstructionKind::Copy(CopyArgs {
        flags: copy_flags(&flags),
        sources: sv(sources),
        dest: dest.to_string(),
        heredocs: vec![],
        json_form: false,
    })
}

fn add(flags: Vec<Flag>, sources: &[&str], dest: &str) -> InstructionKind {
    InstructionKind::Add(CopyArgs {
        flags: copy_flags(&flags),
        sources: sv(sources),
        dest: dest.to_string(),
        heredocs: vec![],
        json_form: false,
    })
}

fn env(pairs: &[(&str, &str)], legacy_form: bool) -> InstructionKind {
    InstructionKind::Env {
        pairs: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        legacy_form,
    }
}

fn label(pairs: &[(&str, &str)]) -> InstructionKind {
    InstructionKind::Label(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn arg(decls: &[(&str, Option<&str>)]) -> InstructionKind {
    InstructionKind::Arg(
        decls
            .iter()
            .map(|(n, d)| ArgDecl {
                name: n.to_string(),
                default: d.map(str::to_string),
            })
            .collect(),
    )
}

fn from(flags: Vec<Flag>, image: &str, alias: Option<&str>) -> InstructionKind {
    InstructionKind::From {
        flags,
        image: image.to_string(),
        alias: alias.map(str::to_string),
    }
}

fn check(flags: Vec<Flag>, command: Command) -> InstructionKind {
    InstructionKind::Healthcheck(Healthcheck::Check { flags, command })
}

/// Parses `FROM scratch` followed by `src`, returning the kinds after the FROM.
fn kinds_after_from(src: &str) -> Result<Vec<InstructionKind>, ParseError> {
    let df = parse(&format!("FROM scratch\n{src}"))?;
    Ok(df
        .instructions
        .into_iter()
        .skip(1)
        .map(|i| i.kind)
        .collect())
}

fn check_rows(rows: Vec<(&str, InstructionKind)>) {
    let mut failures = Vec::new();
    for (i, (src, want)) in rows.iter().enumerate() {
        match kinds_after_from(src) {
            Ok(got) if got.len() == 1 && got[0] == *want => {}
            other => failures.push(format!(
                "row {i}: {src:?}:\n  want {want:?}\n  got  {other:?}"
            )),
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
fn run_cmd_entrypoint_shell() {
    check_rows(vec![
        ("RUN echo hi", run(vec![], shell("echo hi"))),
        ("run echo hi", run(vec![], shell("echo hi"))),
        ("Run  echo   hi  ", run(vec![], shell("echo   hi"))),
        ("RUN [\"echo\", \"hi\"]", run(vec![], exec(&["echo", "hi"]))),
        (
            "RUN [\"echo\", \"a b\"]",
            run(vec![], exec(&["echo", "a b"])),
        ),
        ("RUN [ \"echo\" ]", run(vec![], exec(&["echo"]))),
        (
            "RUN [\"echo\", 'hi']",
            run(vec![], shell("[\"echo\", 'hi']")),
        ),
        ("RUN [echo]", run(vec![], shell("[echo]"))),
        (
            "RUN echo \"$HOME\" '$X'",
            run(vec![], shell("echo \"$HOME\" '$X'")),
        ),
        (
            "RUN echo a && \\\n    echo b",
            run(vec![], shell("echo a &&     echo b")),
        ),
        ("RUN echo a\\\necho b", run(vec![], shell("echo aecho b"))),
        (
            "RUN echo a \\\n# comment\n  b",
            run(vec![], shell("echo a   b")),
        ),
        (
            "RUN echo a \\\n  # indented comment\n  b",
            run(vec![], shell("echo a   b")),
        ),
        ("RUN echo a \\  \n b", run(vec![], shell("echo a  b"))),
        ("RUN a \\\n b \\\n c", run(vec![], shell("a  b  c"))),
        (
            "RUN --mount=type=cache,target=/root/.cache pip install x",
            run(
                vec![flag("mount", Some("type=cache,target=/root/.cache"))],
                shell("pip install x"),
            ),
        ),
        (
            "RUN --mount=type=secret,id=a --mount=type=ssh make",
            run(
                vec![
                    flag("mount", Some("type=secret,id=a")),
                    flag("mount", Some("type=ssh")),
                ],
                shell("make"),
            ),
        ),
        (
            "RUN --network=none --security=insecure [\"a\"]",
            run(
                vec![
                    flag("network", Some("none")),
                    flag("security", Some("insecure")),
                ],
                exec(&["a"]),
            ),
        ),
        ("RUN -- --version", run(vec![], shell("--version"))),
        ("RUN -x", run(vec![], shell("-x"))),
        ("CMD echo hi", InstructionKind::Cmd(shell("echo hi"))),
        (
            "CMD [\"nginx\", \"-g\", \"daemon off;\"]",
            InstructionKind::Cmd(exec(&["nginx", "-g", "daemon off;"])),
        ),
        ("CMD []", InstructionKind::Cmd(exec(&[]))),
        ("cmd [\"a\"] ", InstructionKind::Cmd(exec(&["a"]))),
        (
            "CMD \"quoted\" $VAR",
            InstructionKind::Cmd(shell("\"quoted\" $VAR")),
        ),
        ("CMD [\"a\\\\b\"]", InstructionKind::Cmd(exec(&["a\\b"]))),
        (
            "ENTRYPOINT [\"/entry.sh\"]",
            InstructionKind::Entrypoint(exec(&["/entry.sh"])),
        ),
        (
            "ENTRYPOINT exec top -b",
            InstructionKind::Entrypoint(shell("exec top -b")),
        ),
        ("ENTRYPOINT []", InstructionKind::Entrypoint(exec(&[]))),
        (
            "SHELL [\"/bin/bash\", \"-c\"]",
            InstructionKind::Shell(sv(&["/bin/bash", "-c"])),
        ),
        (
            "SHELL [\"powershell\", \"-command\"]",
            InstructionKind::Shell(sv(&["powershell", "-command"])),
        ),
    ]);
}

#[test]
fn copy_add() {
    check_rows(vec![
        ("COPY a b", copy(vec![], &["a"], "b")),
        ("COPY a b c /dst/", copy(vec![], &["a", "b", "c"], "/dst/")),
        ("copy  a\tb", copy(vec![], &["a"], "b")),
        ("COPY \"a b\" /dst", copy(vec![], &["\"a", "b\""], "/dst")),
        ("COPY $SRC ${DST}", copy(vec![], &["$SRC"], "${DST}")),
        (
            "COPY --from=build /app /app",
            copy(vec![flag("from", Some("build"))], &["/app"], "/app"),
        ),
        (
            "COPY --from=build --chown=1000:1000 --chmod=755 /a /b",
            copy(
                vec![
                    flag("from", Some("build")),
                    flag("chown", Some("1000:1000")),
                    flag("chmod", Some("755")),
                ],
                &["/a"],
                "/b",
            ),
        ),
        (
            "COPY --link a b",
            copy(vec![flag("link", None)], &["a"], "b"),
        ),
        (
            "COPY --link=false a b",
            copy(vec![flag("link", Some("false"))], &["a"], "b"),
        ),
        (
            "COPY --parents a/b ./",
            copy(vec![flag("parents", None)], &["a/b"], "./"),
        ),
        (
            "COPY --exclude=*.md --exclude=*.txt . /src",
            copy(
                vec![
                    flag("exclude", Some("*.md")),
                    flag("exclude", Some("*.txt")),
                ],
                &["."],
                "/src",
            ),
        ),
        (
            "COPY --from=$STAGE a b",
            copy(vec![flag("from", Some("$STAGE"))], &["a"], "b"),
        ),
        (
            "COPY --chown=\"a b\" x y",
            copy(vec![flag("chown", Some("a b"))], &["x"], "y"),
        ),
        (
            "COPY [\"a b\", \"c\", \"/dst/\"]",
            InstructionKind::Copy(CopyArgs {
                flags: copy_flags(&[]),
                sources: sv(&["a b", "c"]),
                dest: "/dst/".to_string(),
                heredocs: vec![],
                json_form: true,
            }),
        ),
        (
            "COPY --from=x [\"a\", \"b\"]",
            InstructionKind::Copy(CopyArgs {
                flags: copy_flags(&[flag("from", Some("x"))]),
                sources: sv(&["a"]),
                dest: "b".to_string(),
                heredocs: vec![],
                json_form: true,
            }),
        ),
        ("ADD a b", add(vec![], &["a"], "b")),
        (
            "ADD https://example.com/x.tgz /x/",
            add(vec![], &["https://example.com/x.tgz"], "/x/"),
        ),
        (
            "ADD --checksum=sha256:abc https://e.com/f /f",
            add(
                vec![flag("checksum", Some("sha256:abc"))],
                &["https://e.com/f"],
                "/f",
            ),
        ),
        (
            "ADD --keep-git-dir=true git@github.com:a/b.git /b",
            add(
                vec![flag("keep-git-dir", Some("true"))],
                &["git@github.com:a/b.git"],
                "/b",
            ),
        ),
        (
            "ADD --unpack=false a.tgz /",
            add(vec![flag("unpack", Some("false"))], &["a.tgz"], "/"),
        ),
        (
            "ADD --link --chmod=644 a b",
            add(
                vec![flag("link", None), flag("chmod", Some("644"))],
                &["a"],
                "b",
            ),
        ),
        (
            "ADD --exclude=x a b",
            add(vec![flag("exclude", Some("x"))], &["a"], "b"),
        ),
        (
            "ADD [\"a\", \"b\"]",
            InstructionKind::Add(CopyArgs {
                flags: copy_flags(&[]),
                sources: sv(&["a"]),
                dest: "b".to_string(),
                heredocs: vec![],
                json_form: true,
            }),
        ),
    ]);
}

#[test]
fn env_label_arg() {
    check_rows(vec![
        ("ENV A=1", env(&[("A", "1")], false)),
        ("ENV A=1 B=2", env(&[("A", "1"), ("B", "2")], false)),
        (
            "ENV A=\"a b\" B='c d'",
            env(&[("A", "\"a b\""), ("B", "'c d'")], false),
        ),
        ("ENV A=a\\ b", env(&[("A", "a\\ b")], false)),
        ("ENV A=", env(&[("A", "")], false)),
        ("ENV A=x=y", env(&[("A", "x=y")], false)),
        ("ENV A=$B", env(&[("A", "$B")], false)),
        ("ENV A=1 \\\n    B=2", env(&[("A", "1"), ("B", "2")], false)),
        ("ENV PATH=/x:$PATH", env(&[("PATH", "/x:$PATH")], false)),
        ("ENV A \"x\"", env(&[("A", "\"x\"")], true)),
        ("ENV A b c d", env(&[("A", "b c d")], true)),
        ("ENV A   b  c", env(&[("A", "b  c")], true)),
        ("ENV A\tb", env(&[("A", "b")], true)),
        ("ENV A x=y", env(&[("A", "x=y")], true)),
        ("ENV A=\"x\\ny\"", env(&[("A", "\"x\\ny\"")], false)),
        ("LABEL a=b", label(&[("a", "b")])),
        (
            "LABEL \"com.example.vendor\"=\"ACME Inc\"",
            label(&[("\"com.example.vendor\"", "\"ACME Inc\"")]),
        ),
        (
            "LABEL a=1 b=2 c=3",
            label(&[("a", "1"), ("b", "2"), ("c", "3")]),
        ),
        (
            "LABEL version=\"1.0\" \\\n      desc=\"x y\"",
            label(&[("version", "\"1.0\""), ("desc", "\"x y\"")]),
        ),
        ("LABEL a b", label(&[("a", "b")])),
        ("LABEL a.b-c=\"\"", label(&[("a.b-c", "\"\"")])),
        ("ARG A", arg(&[("A", None)])),
        ("ARG A=1", arg(&[("A", Some("1"))])),
        ("ARG A=", arg(&[("A", Some(""))])),
        (
            "ARG A B=2 C",
            arg(&[("A", None), ("B", Some("2")), ("C", None)]),
        ),
        ("ARG A=\"x y\"", arg(&[("A", Some("\"x y\""))])),
        ("ARG A=$B", arg(&[("A", Some("$B"))])),
        ("ARG A=a=b", arg(&[("A", Some("a=b"))])),
        ("arg a=1", arg(&[("a", Some("1"))])),
    ]);
}

#[test]
fn simple_instructions() {
    check_rows(vec![
        ("WORKDIR /app", InstructionKind::Workdir("/app".to_string())),
        (
            "WORKDIR /my dir",
            InstructionKind::Workdir("/my dir".to_string()),
        ),
        (
            "WORKDIR $HOME/x",
            InstructionKind::Workdir("$HOME/x".to_string()),
        ),
        ("workdir   /a  ", InstructionKind::Workdir("/a".to_string())),
        ("USER nobody", InstructionKind::User("nobody".to_string())),
        (
            "USER 1000:1000",
            InstructionKind::User("1000:1000".to_string()),
        ),
        (
            "STOPSIGNAL SIGTERM",
            InstructionKind::StopSignal("SIGTERM".to_string()),
        ),
        (
            "MAINTAINER Jane Doe <j@d.e>",
            InstructionKind::Maintainer("Jane Doe <j@d.e>".to_string()),
        ),
        ("EXPOSE 80", InstructionKind::Expose(sv(&["80"]))),
        (
            "EXPOSE 80/tcp 53/udp   8080",
            InstructionKind::Expose(sv(&["80/tcp", "53/udp", "8080"])),
        ),
        ("EXPOSE $PORT", InstructionKind::Expose(sv(&["$PORT"]))),
        ("VOLUME /data", InstructionKind::Volume(sv(&["/data"]))),
        ("VOLUME /a /b", InstructionKind::Volume(sv(&["/a", "/b"]))),
        (
            "VOLUME [\"/a\", \"/b c\"]",
            InstructionKind::Volume(sv(&["/a", "/b c"])),
        ),
        ("VOLUME [\" /a \"]", InstructionKind::Volume(sv(&["/a"]))),
        (
            "HEALTHCHECK NONE",
            InstructionKind::Healthcheck(Healthcheck::Disable),
        ),
        (
            "healthcheck none",
            InstructionKind::Healthcheck(Healthcheck::Disable),
        ),
        (
            "HEALTHCHECK CMD curl -f http://localhost/",
            check(vec![], shell("curl -f http://localhost/")),
        ),
        (
            "HEALTHCHECK CMD [\"curl\", \"-f\"]",
            check(vec![], exec(&["curl", "-f"])),
        ),
        ("HEALTHCHECK cmd true", check(vec![], shell("true"))),
        (
            "HEALTHCHECK --interval=5m --timeout=3s CMD true",
            check(
                vec![flag("interval", Some("5m")), flag("timeout", Some("3s"))],
                shell("true"),
            ),
        ),
        (
            "HEALTHCHECK --start-period=1s --start-interval=2s --retries=3 CMD [\"x\"]",
            check(
                vec![
                    flag("start-period", Some("1s")),
                    flag("start-interval", Some("2s")),
                    flag("retries", Some("3")),
                ],
                exec(&["x"]),
            ),
        ),
        (
            "HEALTHCHECK --interval=30s \\\n  CMD curl -f http://x/ || exit 1",
            check(
                vec![flag("interval", Some("30s"))],
                shell("curl -f http://x/ || exit 1"),
            ),
        ),
    ]);
}

#[test]
fn from_forms() {
    let rows: Vec<(&str, InstructionKind)> = vec![
        ("FROM alpine", from(vec![], "alpine", None)),
        ("from alpine:3.19", from(vec![], "alpine:3.19", None)),
        (
            "FROM alpine AS build",
            from(vec![], "alpine", Some("build")),
        ),
        (
            "FROM alpine as build",
            from(vec![], "alpine", Some("build")),
        ),
        (
            "FROM alpine As Build",
            from(vec![], "alpine", Some("build")),
        ),
        (
            "FROM alpine AS my-stage_1.x",
            from(vec![], "alpine", Some("my-stage_1.x")),
        ),
        (
            "FROM --platform=linux/amd64 alpine",
            from(vec![flag("platform", Some("linux/amd64"))], "alpine", None),
        ),
        (
            "FROM --platform=$BUILDPLATFORM golang:1.22 AS builder",
            from(
                vec![flag("platform", Some("$BUILDPLATFORM"))],
                "golang:1.22",
                Some("builder"),
            ),
        ),
        ("FROM ${BASE}:${TAG}", from(vec![], "${BASE}:${TAG}", None)),
        ("FROM scratch", from(vec![], "scratch", None)),
        (
            "FROM reg.io:5000/a/b@sha256:abc",
            from(vec![], "reg.io:5000/a/b@sha256:abc", None),
        ),
        ("  FROM   alpine   ", from(vec![], "alpine", None)),
    ];
    let mut failures = Vec::new();
    for (src, want) in &rows {
        match parse(src) {
            Ok(df) if df.instructions.len() == 1 && df.instructions[0].kind == *want => {}
            other => failures.push(format!("{src:?}: want {want:?}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn heredocs() {
    let rows: Vec<(&str, InstructionKind)> = vec![
        (
            "RUN <<EOF\necho hi\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<EOF"),
                heredocs: vec![hd("EOF", "echo hi\n", true, false)],
            },
        ),
        (
            "RUN <<EOF\nset -e\necho $HOME\n\nEOF\n",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<EOF"),
                heredocs: vec![hd("EOF", "set -e\necho $HOME\n\n", true, false)],
            },
        ),
        (
            "RUN python3 <<EOF\nprint(1)\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("python3 <<EOF"),
                heredocs: vec![hd("EOF", "print(1)\n", true, false)],
            },
        ),
        (
            "RUN <<-EOF\n\techo a\n\t\techo b\n\tEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<-EOF"),
                heredocs: vec![hd("EOF", "echo a\necho b\n", true, true)],
            },
        ),
        (
            "RUN <<\"EOF\"\necho $X\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<\"EOF\""),
                heredocs: vec![hd("EOF", "echo $X\n", false, false)],
            },
        ),
        (
            "RUN <<'END'\n'quoted'\nEND",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<'END'"),
                heredocs: vec![hd("END", "'quoted'\n", false, false)],
            },
        ),
        (
            "RUN <<A <<B\na1\nA\nb1\nb2\nB",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<A <<B"),
                heredocs: vec![
                    hd("A", "a1\n", true, false),
                    hd("B", "b1\nb2\n", true, false),
                ],
            },
        ),
        (
            "RUN --mount=type=cache,target=/c <<EOF\nls\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[flag("mount", Some("type=cache,target=/c"))]),
                command: shell("<<EOF"),
                heredocs: vec![hd("EOF", "ls\n", true, false)],
            },
        ),
        (
            "RUN cat <<EOF > /f\n# not a comment\n  indented \\\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("cat <<EOF > /f"),
                heredocs: vec![hd("EOF", "# not a comment\n  indented \\\n", true, false)],
            },
        ),
        (
            "RUN <<EOF\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<EOF"),
                heredocs: vec![hd("EOF", "", true, false)],
            },
        ),
        (
            "RUN <<EOF\n EOF\nEOF",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<EOF"),
                heredocs: vec![hd("EOF", " EOF\n", true, false)],
            },
        ),
        (
            "RUN <<EOF\r\nwin\r\nEOF\r\n",
            InstructionKind::Run {
                flags: run_flags(&[]),
                command: shell("<<EOF"),
                heredocs: vec![hd("EOF", "win\n", true, false)],
            },
        ),
        ("RUN echo '<<EOF'", run(vec![], shell("echo '<<EOF'"))),
        ("RUN echo \"<<EOF\"", run(vec![], shell("echo \"<<EOF\""))),
        ("RUN echo a<<EOF", run(vec![], shell("echo a<<EOF"))),
        (
            "RUN [\"cat\", \"<<EOF\"]",
            run(vec![], exec(&["cat", "<<EOF"])),
        ),
        ("RUN echo <<<word", run(vec![], shell("echo <<<word"))),
        (
            "COPY <<EOF /etc/conf\nkey=value\nEOF",
            InstructionKind::Copy(CopyArgs {
                flags: copy_flags(&[]),
                sources: sv(&["<<EOF"]),
                dest: "/etc/conf".to_string(),
                heredocs: vec![hd("EOF", "key=value\n", true, false)],
                json_form: false,
            }),
        ),
        (
            "COPY --chmod=755 <<-\"A\" <<B /dst/\n\tx\n\tA\ny\nB",
            InstructionKind::Copy(CopyArgs {
                flags: copy_flags(&[flag("chmod", Some("755"))]),
                sources: sv(&["<<A", "<<B"]),
                dest: "/dst/".to_string(),
                heredocs: vec![hd("A", "x\n", false, true), hd("B", "y\n", true, false)],
                json_form: false,
            }),
        ),
        (
            "ADD <<EOF /x\nhello\nEOF",
            InstructionKind::Add(CopyArgs {
                flags: copy_flags(&[]),
                sources: sv(&["<<EOF"]),
                dest: "/x".to_string(),
                heredocs: vec![hd("EOF", "hello\n", true, false)],
                json_form: false,
            }),
        ),
        (
            "COPY a <<EOF /dst/\nbody\nEOF",
            InstructionKind::Copy(CopyArgs {
                flags: copy_flags(&[]),
                sources: sv(&["a", "<<EOF"]),
                dest: "/dst/".to_string(),
                heredocs: vec![hd("EOF", "body\n", true, false)],
                json_form: false,
            }),
        ),
    ];
    check_rows(rows);
}

#[test]
fn heredoc_not_for_other_instructions() {
    // ENV does not take heredocs: the next line is a separate instruction.
    let df = parse("FROM x\nENV A=<<EOF\nRUN true\n").unwrap();
    assert_eq!(df.instructions.len(), 3);
    assert_eq!(df.instructions[1].kind, env(&[("A", "<<EOF")], false));
    assert_eq!(df.instructions[2].kind, run(vec![], shell("true")));
}

#[test]
fn onbuild() {
    let df = parse("FROM x\nONBUILD RUN echo hi\nONBUILD COPY --from=a b c\n").unwrap();
    let InstructionKind::Onbuild(inner) = &df.instructions[1].kind else {
        panic!("not onbuild: {:?}", df.instructions[1])
    };
    assert_eq!(inner.kind, run(vec![], shell("echo hi")));
    assert_eq!(inner.original, "RUN echo hi");
    assert_eq!(
        inner.span,
        Span {
            line: 2,
            end_line: 2,
            column: 9
        }
    );
    assert_eq!(df.instructions[1].original, "ONBUILD RUN echo hi");
    let InstructionKind::Onbuild(inner) = &df.instructions[2].kind else {
        panic!()
    };
    assert_eq!(inner.kind, copy(vec![flag("from", Some("a"))], &["b"], "c"));

    let df = parse("FROM x\nonbuild run <<EOF\nbody\nEOF\n").unwrap();
    let InstructionKind::Onbuild(inner) = &df.instructions[1].kind else {
        panic!()
    };
    assert_eq!(
        inner.kind,
        InstructionKind::Run {
            flags: run_flags(&[]),
            command: shell("<<EOF"),
            heredocs: vec![hd("EOF", "body\n", true, false)]
        }
    );
    assert_eq!(
        df.instructions[1].span,
        Span {
            line: 2,
            end_line: 4,
            column: 1
        }
    );
}

#[test]
fn spans_and_originals() {
    let src = "# syntax=docker/dockerfile:1\n\
               ARG BASE=alpine\n\
               \n\
               FROM $BASE AS build\n\
               # comment\n\
               RUN apk add \\\n    curl \\\n    # inline comment\n    git\n\
               \x20\x20WORKDIR /src\n\
               COPY <<EOF /a\n\
               line\n\
               EOF\n\
               \tCMD [\"sh\"]\n";
    let df = parse(src).unwrap();
    let got: Vec<(Span, &str)> = df
        .instructions
        .iter()
        .map(|i| (i.span, i.original.as_str()))
        .collect();
    let want: Vec<(Span, &str)> = vec![
        (
            Span {
                line: 2,
                end_line: 2,
                column: 1,
            },
            "ARG BASE=alpine",
        ),
        (
            Span {
                line: 4,
                end_line: 4,
                column: 1,
            },
            "FROM $BASE AS build",
        ),
        (
            Span {
                line: 6,
                end_line: 9,
                column: 1,
            },
            "RUN apk add     curl     git",
        ),
        (
            Span {
                line: 10,
                end_line: 10,
                column: 3,
            },
            "WORKDIR /src",
        ),
        (
            Span {
                line: 11,
                end_line: 13,
                column: 1,
            },
            "COPY <<EOF /a",
        ),
        (
            Span {
                line: 14,
                end_line: 14,
                column: 2,
            },
            "CMD [\"sh\"]",
        ),
    ];
    assert_eq!(got, want);
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert!(df.warnings.is_empty());
}

#[test]
fn directives_table() {
    // (source, syntax, escape, check, number of warnings)
    type Row<'a> = (&'a str, Option<&'a str>, char, Option<&'a str>, usize);
    let rows: &[Row] = &[
        ("FROM x", None, '\\', None, 0),
        (
            "# syntax=docker/dockerfile:1\nFROM x",
            Some("docker/dockerfile:1"),
            '\\',
            None,
            0,
        ),
        (
            "#syntax=docker/dockerfile:1.7-labs\nFROM x",
            Some("docker/dockerfile:1.7-labs"),
            '\\',
            None,
            0,
        ),
        (
            "# syntax=docker.io/docker/dockerfile:1\nFROM x",
            Some("docker.io/docker/dockerfile:1"),
            '\\',
            None,
            0,
        ),
        (
            "# syntax=docker/dockerfile\nFROM x",
            Some("docker/dockerfile"),
            '\\',
            None,
            0,
        ),
        (
            "# syntax=docker/dockerfile@sha256:ab\nFROM x",
            Some("docker/dockerfile@sha256:ab"),
            '\\',
            None,
            0,
        ),
        (
            "# syntax=example.com/my/frontend:1\nFROM x",
            Some("example.com/my/frontend:1"),
            '\\',
            None,
            1,
        ),
        (
            "# syntax=docker/dockerfilex\nFROM x",
            Some("docker/dockerfilex"),
            '\\',
            None,
            1,
        ),
        ("# escape=`\nFROM x", None, '`', None, 0),
        ("# ESCAPE = `\nFROM x", None, '`', None, 0),
        ("  # escape=`\nFROM x", None, '`', None, 0),
        ("# escape=\\\nFROM x", None, '\\', None, 0),
        ("# check=skip=all\nFROM x", None, '\\', Some("skip=all"), 0),
        (
            "# syntax=docker/dockerfile:1\n# escape=`\n# check=error=true\nFROM x",
            Some("docker/dockerfile:1"),
            '`',
            Some("error=true"),
            0,
        ),
        // After a plain comment, an empty line or an instruction, directives are comments.
        ("# hello\n# escape=`\nFROM x", None, '\\', None, 0),
        ("\n# escape=`\nFROM x", None, '\\', None, 0),
        ("FROM x\n# escape=`", None, '\\', None, 0),
        ("# unknown=1\n# escape=`\nFROM x", None, '\\', None, 0),
        ("# escape=`\n\n# escape=\\\nFROM x", None, '`', None, 0),
        ("# escape=`\n# hi\n# syntax=foo\nFROM x", None, '`', None, 0),
    ];
    for (src, syntax, escape, check, nwarn) in rows {
        let df = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(df.directives.syntax.as_deref(), *syntax, "{src:?}");
        assert_eq!(df.directives.escape, *escape, "{src:?}");
        assert_eq!(df.directives.check.as_deref(), *check, "{src:?}");
        assert_eq!(df.warnings.len(), *nwarn, "{src:?}: {:?}", df.warnings);
    }
}

#[test]
fn backtick_escape_files() {
    let src = "# escape=`\nFROM mcr.microsoft.com/windows/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\nRUN a `\n  b\n";
    let df = parse(src).unwrap();
    let kinds: Vec<_> = df.instructions.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            from(vec![], "mcr.microsoft.com/windows/nanoserver", None),
            copy(vec![], &["testfile.txt"], "c:\\"),
            run(vec![], shell("dir c:\\")),
            run(vec![], shell("a   b")),
        ]
    );
    assert_eq!(
        df.instructions[3].span,
        Span {
            line: 5,
            end_line: 6,
            column: 1
        }
    );

    // With the backtick escape, ENV words escape with ` and \ is literal.
    let df = parse("# escape=`\nFROM x\nENV A=a` b B=c:\\d\n").unwrap();
    assert_eq!(
        df.instructions[1].kind,
        env(&[("A", "a` b"), ("B", "c:\\d")], false)
    );
}

#[test]
fn warnings() {
    let df = parse("FROM x\nRUN a \\\n\n  b\n").unwrap();
    assert_eq!(
        df.warnings,
        vec![Warning {
            line: 3,
            message: "Empty continuation line found in: RUN a   b".to_string()
        }]
    );
    assert_eq!(df.instructions[1].kind, run(vec![], shell("a   b")));
    assert_eq!(
        df.instructions[1].span,
        Span {
            line: 2,
            end_line: 4,
            column: 1
        }
    );

    let df = parse("FROM x\nRUN a \\\n   \n\t\n  b\n").unwrap();
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].line, 3);

    let df = parse("# syntax=foo/bar\nFROM x\n").unwrap();
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].line, 1);
    assert!(
        df.warnings[0].message.contains("foo/bar"),
        "{:?}",
        df.warnings
    );

    // Comment lines in a continuation are not empty lines.
    let df = parse("FROM x\nRUN a \\\n# c\n  b\n").unwrap();
    assert!(df.warnings.is_empty());
}

#[test]
fn whole_files() {
    let src = "\u{feff}ARG A=1\nARG B\nFROM x\nRUN a\n\nFROM y AS z\nCOPY --from=0 /a /b\n";
    let df = parse(src).unwrap();
    let kws: Vec<&str> = df.instructions.iter().map(|i| i.kind.keyword()).collect();
    assert_eq!(kws, ["ARG", "ARG", "FROM", "RUN", "FROM", "COPY"]);

    // A continuation at the end of the file ends the instruction.
    let df = parse("FROM x\nRUN a \\").unwrap();
    assert_eq!(df.instructions[1].kind, run(vec![], shell("a")));

    // A continuation may swallow a whole following line.
    let df = parse("FROM x\nRUN echo \\\nRUN b").unwrap();
    assert_eq!(df.instructions.len(), 2);
    assert_eq!(df.instructions[1].kind, run(vec![], shell("echo RUN b")));

    // Trailing comment markers inside a line are not comments.
    let df = parse("FROM x\nRUN echo # not a comment").unwrap();
    assert_eq!(
        df.instructions[1].kind,
        run(vec![], shell("echo # not a comment"))
    );

    // CRLF line endings.
    let df = parse("FROM x\r\nRUN a \\\r\n  b\r\n").unwrap();
    assert_eq!(df.instructions[1].kind, run(vec![], shell("a   b")));
}

#[test]
fn errors() {
    // (source, line, column, message)
    let rows: &[(&str, usize, usize, &str)] = &[
        ("", 1, 1, "the Dockerfile has no instructions"),
        ("# just a comment\n\n", 1, 1, "the Dockerfile has no instructions"),
        ("# syntax=docker/dockerfile:1\n", 1, 1, "the Dockerfile has no instructions"),
        ("FROM x\nFOO bar", 2, 1, "unknown instruction: FOO"),
        ("FROM x\n  foo bar", 2, 3, "unknown instruction: FOO"),
        ("FROM x\nRUN a \\\n  b\nbogus", 4, 1, "unknown instruction: BOGUS"),
        ("FROM x\nRUN apt-get update\napt-get install x", 3, 1, "unknown instruction: APT-GET"),
        ("RUN echo", 1, 1, "no build stage in current context: RUN before the first FROM (only ARG may precede FROM)"),
        ("ARG A\nENV B=1\nFROM x", 2, 1, "no build stage in current context: ENV before the first FROM (only ARG may precede FROM)"),
        ("FROM", 1, 1, "FROM requires either one or three arguments"),
        ("FROM a b", 1, 1, "FROM requires either one or three arguments"),
        ("FROM a AS", 1, 1, "FROM requires either one or three arguments"),
        ("FROM a IS b", 1, 1, "FROM requires either one or three arguments"),
        ("FROM a AS b c", 1, 1, "FROM requires either one or three arguments"),
        ("FROM a AS 1st", 1, 1, "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"),
        ("FROM a AS b$c", 1, 1, "invalid name for build stage: \"b$c\", name can't start with a number or contain symbols"),
        ("FROM --foo=bar a", 1, 1, "unknown flag: foo"),
        ("FROM --platform a", 1, 1, "missing a value on flag: platform"),
        ("FROM --platform=a --platform=b x", 1, 1, "duplicate flag specified: platform"),
        ("FROM x\nRUN", 2, 1, "RUN requires at least one argument"),
        ("FROM x\nRUN []", 2, 1, "RUN requires at least one argument"),
        ("FROM x\nRUN --mount=type=cache", 2, 1, "RUN requires at least one argument"),
        (
            "FROM x\nRUN --mount=type=nfs,target=/x true",
            2,
            1,
            "--mount=type=nfs,target=/x: unsupported mount type \"nfs\"",
        ),
        (
            "FROM x\nRUN --network=bridge true",
            2,
            1,
            "--network=bridge: expected default, none or host",
        ),
        ("FROM x\nRUN --bogus echo", 2, 1, "unknown flag: bogus"),
        ("FROM x\nRUN --mount echo", 2, 1, "missing a value on flag: mount"),
        ("FROM x\nRUN --network=a --network=b echo", 2, 1, "duplicate flag specified: network"),
        ("FROM x\nRUN [1]", 2, 1, "when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM x\nCMD [\"a\", 1]", 2, 1, "when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM x\nCMD --help", 2, 1, "unknown flag: help"),
        ("FROM x\nSHELL", 2, 1, "SHELL requires at least one argument"),
        ("FROM x\nSHELL []", 2, 1, "SHELL requires at least one argument"),
        ("FROM x\nSHELL /bin/sh -c", 2, 1, "SHELL requires the arguments to be in JSON form"),
        ("FROM x\nSHELL ['/bin/sh']", 2, 1, "SHELL requires the arguments to be in JSON form"),
        ("FROM x\nCOPY", 2, 1, "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM x\nCOPY a", 2, 1, "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM x\nADD a", 2, 1, "ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM x\nCOPY [\"a\"]", 2, 1, "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM x\nCOPY --from=a", 2, 1, "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM x\nCOPY --checksum=x a b", 2, 1, "unknown flag: checksum"),
        ("FROM x\nADD --from=x a b", 2, 1, "unknown flag: from"),
        ("FROM x\nCOPY --link=yes a b", 2, 1, "expecting boolean value for flag link, not: yes"),
        ("FROM x\nCOPY --link= a b", 2, 1, "missing a value on flag: link"),
        ("FROM x\nCOPY --from a b", 2, 1, "missing a value on flag: from"),
        ("FROM x\nCOPY --from=a --from=b c d", 2, 1, "duplicate flag specified: from"),
        ("FROM x\nCOPY a <<EOF\nx\nEOF", 2, 1, "COPY cannot accept a heredoc as a destination"),
        ("FROM x\nENV", 2, 1, "ENV requires at least one argument"),
        ("FROM x\nENV A", 2, 1, "ENV must have two arguments"),
        ("FROM x\nENV A=1 B", 2, 1, "Syntax error - can't find = in \"B\". Must be of the form: name=value"),
        ("FROM x\nENV =1", 2, 1, "ENV names can not be blank"),
        ("FROM x\nLABEL", 2, 1, "LABEL requires at least one argument"),
        ("FROM x\nLABEL a", 2, 1, "LABEL must have two arguments"),
        ("FROM x\nLABEL =b", 2, 1, "LABEL names can not be blank"),
        ("ARG", 1, 1, "ARG requires at least one argument"),
        ("ARG =x\nFROM y", 1, 1, "ARG names can not be blank"),
        ("FROM x\nWORKDIR", 2, 1, "WORKDIR requires exactly one argument"),
        ("FROM x\nUSER", 2, 1, "USER requires exactly one argument"),
        ("FROM x\nSTOPSIGNAL", 2, 1, "STOPSIGNAL requires exactly one argument"),
        ("FROM x\nMAINTAINER", 2, 1, "MAINTAINER requires exactly one argument"),
        ("FROM x\nWORKDIR --x=1 /a", 2, 1, "unknown flag: x"),
        ("FROM x\nEXPOSE", 2, 1, "EXPOSE requires at least one argument"),
        ("FROM x\nVOLUME", 2, 1, "VOLUME requires at least one argument"),
        ("FROM x\nVOLUME []", 2, 1, "VOLUME requires at least one argument"),
        ("FROM x\nVOLUME [\"\"]", 2, 1, "VOLUME specified can not be an empty string"),
        ("FROM x\nHEALTHCHECK", 2, 1, "HEALTHCHECK requires at least one argument"),
        ("FROM x\nHEALTHCHECK NONE x", 2, 1, "HEALTHCHECK NONE takes no arguments"),
        ("FROM x\nHEALTHCHECK CMD", 2, 1, "Missing command after HEALTHCHECK CMD"),
        ("FROM x\nHEALTHCHECK CMD []", 2, 1, "Missing command after HEALTHCHECK CMD"),
        ("FROM x\nHEALTHCHECK CMS true", 2, 1, "Unknown type \"CMS\" in HEALTHCHECK (try CMD)"),
        ("FROM x\nHEALTHCHECK --foo=1 CMD true", 2, 1, "unknown flag: foo"),
        ("FROM x\nHEALTHCHECK --interval CMD true", 2, 1, "missing a value on flag: interval"),
        ("FROM x\nONBUILD", 2, 1, "ONBUILD requires at least one argument"),
        ("FROM x\nONBUILD ONBUILD RUN x", 2, 1, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM x\nONBUILD FROM y", 2, 1, "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM x\nonbuild maintainer me", 2, 1, "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM x\nONBUILD FOO x", 2, 9, "unknown instruction: FOO"),
        ("FROM x\nONBUILD RUN", 2, 9, "RUN requires at least one argument"),
        ("FROM x\nRUN <<EOF\necho", 2, 1, "unterminated heredoc: EOF"),
        ("FROM x\nRUN <<A <<B\na\nA\nb", 2, 1, "unterminated heredoc: B"),
        ("FROM x\nRUN <<-EOF\n\techo\n  EOF", 2, 1, "unterminated heredoc: EOF"),
        ("FROM x\n\n  COPY <<EOF /a\n", 3, 3, "unterminated heredoc: EOF"),
        ("# escape=x\nFROM y", 1, 1, "invalid escape token 'x' does not match ` or \\"),
        ("# escape=\\\\\nFROM y", 1, 1, "invalid escape token '\\\\' does not match ` or \\"),
        ("# escape=`\n# escape=\\\nFROM y", 2, 1, "only one escape parser directive can be used"),
        ("# syntax=a\n# SYNTAX=b\nFROM y", 2, 1, "only one syntax parser directive can be used"),
        ("# check=a\n#check=b\nFROM y", 2, 1, "only one check parser directive can be used"),
        // Errors are reported for the first bad instruction.
        ("FROM x\nRUN ok\nCOPY a\nFOO", 3, 1, "COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
    ];
    // A bare CMD or ENTRYPOINT is no error: the shell form of nothing, as in BuildKit.
    for keyword in ["CMD", "ENTRYPOINT"] {
        let parsed = parse(&format!("FROM x\n{keyword}")).expect("bare instruction");
        assert!(
            matches!(
                &parsed.instructions[1].kind,
                InstructionKind::Cmd(Command::Shell(s)) | InstructionKind::Entrypoint(Command::Shell(s)) if s.is_empty()
            ),
            "{keyword}: {:?}",
            parsed.instructions[1].kind
        );
    }
    let mut failures = Vec::new();
    for (i, (src, line, column, message)) in rows.iter().enumerate() {
        match parse(src) {
            Err(e) if e.line == *line && e.column == *column && e.message == *message => {}
            other => failures.push(format!(
                "row {i}: {src:?}: want {line}:{column} {message:?}, got {other:?}"
            )),
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
    let e = parse("FROM x\nFOO").unwrap_err();
    assert_eq!(e.to_string(), "line 2: unknown instruction: FOO");
}

/// A small deterministic generator (no extra crates).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn no_panic_on_malformed_input() {
    let valid = "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine\nFROM --platform=$BUILDPLATFORM ${BASE:-alpine} AS build\n\
                 ENV A=\"x y\" B='z' C=d\\ e\nLABEL \"k\"=v\nRUN --mount=type=cache,target=/c \\\n  # c\n  echo \"$A\" && \\\n\n  ls\n\
                 RUN <<-EOF <<'B'\n\techo $A\n\tEOF\nbody\nB\nCOPY --from=build --chmod=755 [\"a b\", \"/c/\"]\nADD <<X /y\nz\nX\n\
                 HEALTHCHECK --interval=5s CMD [\"true\"]\nONBUILD RUN <<E\nq\nE\nSHELL [\"sh\", \"-c\"]\nCMD echo ${A:?no}\n\
                 VOLUME [\"/v\"]\nEXPOSE 80/tcp\nUSER 1:1\nWORKDIR /w\nSTOPSIGNAL 9\nMAINTAINER m\nENTRYPOINT [\"e\"]\n";
    assert!(parse(valid).is_ok(), "{:?}", parse(valid));
    let chars: Vec<char> = valid.chars().collect();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let odd = [
        '\\', '`', '"', '\'', '\n', '\r', '$', '{', '}', '[', ']', '<', '-', '=', '#', '\t',
        '\u{0}', 'é', '\u{feff}', ' ',
    ];
    let expand_all = |df: &Dockerfile| {
        for inst in &df.instructions {
            let _ = super::super::expand_word(&inst.original, df.directives.escape, &|_| None);
        }
    };
    for cut in 0..=chars.len() {
        let truncated: String = chars[..cut].iter().collect();
        if let Ok(df) = parse(&truncated) {
            expand_all(&df);
        }
        let tail: String = chars[cut..].iter().collect();
        let _ = parse(&tail);
    }
    for _ in 0..3000 {
        let mut s = chars.clone();
        let edits = 1 + (rng.next() % 6) as usize;
        for _ in 0..edits {
            let pos = (rng.next() % (s.len() as u64 + 1)) as usize;
            match rng.next() % 3 {
                0 if pos < s.len() => {
                    s.remove(pos);
                }
                1 => s.insert(pos, odd[(rng.next() % odd.len() as u64) as usize]),
                _ if pos < s.len() => s[pos] = odd[(rng.next() % odd.len() as u64) as usize],
                _ => {}
            }
        }
        let text: String = s.into_iter().collect();
        if let Ok(df) = parse(&text) {
            expand_all(&df);
        }
    }
    let oddities = [
        "\\", "`", "\n\n\n", "FROM", "FROM x\nRUN <<", "FROM x\nRUN <<-", "FROM x\nCOPY <<EOF",
        "FROM x\nONBUILD ONBUILD", "FROM x\nHEALTHCHECK CMD [", "# escape=`\nFROM x\nRUN `",
        "FROM x\nRUN \\\n\\\n\\", "\u{feff}", "\r", "\r\n", "FROM x\nENV \"", "FROM x\nLABEL ='",
        "FROM x\nRUN --=", "FROM x\nRUN --", "FROM x\nRUN -- ", "FROM x\nARG ==", "é\né",
        "FROM x\nRUN [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]",
        "FROM x\nONBUILD  \u{3000}RUN x", "\u{3000}FROM x", "FROM x\nCOPY 9<<EOF a\nEOF",
    ];
    for o in oddities {
        let _ = parse(o);
    }
}
