//! Failing builds: the exit status, the message naming the line, and a store left clean (no
//! image, no tag, no temp files).

use crate::support::*;

fn temp_entries(env: &TestEnv) -> Vec<String> {
    let out = env
        .command_as_user("ls")
        .arg("-A")
        .arg(env.store().join("tmp"))
        .output()
        .expect("ls store tmp");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn failing_run_exits_1_with_the_step_exit_code_and_leaves_nothing() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let images_before = env.rbuild_ok(["images", "-q"]);
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo kept > /kept\nRUN echo about to fail && exit 7\nRUN echo never\n"),
    )]);
    let output = env.rbuild(["build", "-t", "broken:1", ctx.to_str().expect("utf-8")]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        describe_output(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Dockerfile:3:"), "names the line: {stderr}");
    assert!(
        stderr.contains("exit code: 7"),
        "names the step's exit code: {stderr}"
    );
    assert!(
        stderr.contains("about to fail"),
        "shows the step's output: {stderr}"
    );
    assert!(
        !stderr.contains("never"),
        "stops at the failing step: {stderr}"
    );
    assert_eq!(
        env.rbuild_ok(["images", "-q"]),
        images_before,
        "no new image"
    );
    assert!(
        env.rbuild(["inspect", "broken:1"]).status.code() == Some(1),
        "no tag"
    );
    assert_eq!(
        temp_entries(&env),
        Vec::<String>::new(),
        "no temp files left in the store"
    );
}

#[test]
fn missing_executable_in_exec_form_is_a_clear_error() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN [\"/no/such/program\", \"x\"]\n"),
    )]);
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("Dockerfile:2:") && stderr.contains("/no/such/program"),
        "{stderr}"
    );
    assert_eq!(temp_entries(&env), Vec::<String>::new());
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let env = TestEnv::new();
    let cases = [
        (
            "FROM scratch\nRUN echo ok\nFROOM x\n",
            3,
            "unknown instruction",
        ),
        ("FROM scratch\nENV\n", 2, "ENV"),
        ("FROM scratch\nCOPY onlyone\n", 2, "COPY"),
        ("FROM scratch\nSHELL /bin/sh\n", 2, "SHELL"),
        (
            "# escape=`\nFROM scratch\nRUN <<EOF\nnever closed\n",
            3,
            "EOF",
        ),
    ];
    for (dockerfile, line, word) in cases {
        let ctx = env.context(&[("Dockerfile", file(dockerfile))]);
        let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
        assert!(
            stderr.contains(&format!("Dockerfile:{line}:")),
            "{dockerfile:?} -> {stderr}"
        );
        assert!(stderr.contains(word), "{dockerfile:?} -> {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn unsupported_instructions_fail_instead_of_being_ignored() {
    let env = TestEnv::new();
    for (dockerfile, line) in [
        (
            "FROM scratch
ADD ftp://example.invalid/x.tgz /x
",
            2,
        ),
        (
            "FROM scratch
LABEL a=b
ADD s3://bucket/x.tgz /x
",
            3,
        ),
    ] {
        let ctx = env.context(&[("Dockerfile", file(dockerfile)), ("a", file("a"))]);
        let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
        assert!(
            stderr.contains("not supported yet"),
            "{dockerfile:?} -> {stderr}"
        );
        assert!(
            stderr.contains(&format!("Dockerfile:{line}:")),
            "{dockerfile:?} -> {stderr}"
        );
    }
}

#[test]
fn bad_flags_and_missing_things_are_refused_clearly() {
    let env = TestEnv::new();
    let ctx = env.context(&[("Dockerfile", file("FROM no-such-image:1\n"))]);
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("no-such-image:1") && stderr.contains("Dockerfile:1:"),
        "{stderr}"
    );
    let stderr = env.rbuild_err(["build", "-t", "Bad Name", ctx.to_str().expect("utf-8")]);
    assert!(stderr.contains("invalid reference format"), "{stderr}");
    let stderr = env.rbuild_err([
        "build",
        "-o",
        "type=tarball,dest=x",
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("type=tarball"), "{stderr}");
    let stderr = env.rbuild_err(["build", env.path("no-such-dir").to_str().expect("utf-8")]);
    assert!(stderr.contains("no-such-dir"), "{stderr}");
    let stderr = env.rbuild_err([
        "load",
        "-i",
        env.path("missing.tar").to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("missing.tar"), "{stderr}");
}

#[test]
fn syntax_directive_naming_another_frontend_warns_and_builds() {
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file("# syntax=example.com/not-dockerfile:1\nFROM scratch\nLABEL a=b\n"),
    )]);
    let output = env.rbuild(["build", ctx.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("Dockerfile:1"),
        "{stderr}"
    );
    let ctx = env.context(&[(
        "Dockerfile",
        file("# syntax=docker/dockerfile:1.7\nFROM scratch\nLABEL a=b\n"),
    )]);
    let output = env.rbuild(["build", ctx.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("warning"),
        "{stderr}"
    );
}

/// BuildKit's build checks (frontend/dockerfile/dockerfile_lint_test.go): warnings by rule
/// name and line; `--check` only checks; `# check=error=true` makes them fatal.
#[test]
fn build_checks_warn_fail_on_request_and_run_alone() {
    let env = TestEnv::new();
    let dockerfile =
        "FROM scratch AS Builder\nENV SECRET_TOKEN=x\nCMD echo hi\nCOPY ignored.txt /\n";
    let ctx = env.context(&[
        ("Dockerfile", file(dockerfile)),
        ("ignored.txt", file("x")),
        (".dockerignore", file("ignored.txt\n")),
    ]);
    let output = env.rbuild(["build", "--check", ctx.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for (rule, line) in [
        ("StageNameCasing", 1),
        ("SecretsUsedInArgOrEnv", 2),
        ("JSONArgsRecommended", 3),
        ("CopyIgnoredFile", 4),
    ] {
        assert!(
            stderr.contains(&format!("Dockerfile:{line}: {rule}:")),
            "{rule} at line {line}: {stderr}"
        );
    }
    assert!(!stderr.contains("[1/"), "--check builds nothing: {stderr}");

    let clean = env.context(&[("Dockerfile", file("FROM scratch\nCMD [\"x\"]\n"))]);
    let output = env.rbuild(["build", "--check", clean.to_str().expect("utf-8")]);
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stderr).contains("no warnings"),
        "{}",
        describe_output(&output)
    );

    let fatal = env.context(&[(
        "Dockerfile",
        file("# check=error=true\nFROM scratch\nCMD echo hi\n"),
    )]);
    let stderr = env.rbuild_err(["build", fatal.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("JSONArgsRecommended") && stderr.contains("check=error=true"),
        "{stderr}"
    );
    let skipped = env.context(&[(
        "Dockerfile",
        file("# check=error=true;skip=JSONArgsRecommended\nFROM scratch\nCMD echo hi\n"),
    )]);
    env.rbuild_ok(["build", skipped.to_str().expect("utf-8")]);

    // BUILDKIT_DOCKERFILE_CHECK replaces the directive: here it makes the warning fatal, and
    // turns on an experimental rule.
    let by_arg = |value: &str| {
        env.rbuild([
            "build",
            "--build-arg",
            &format!("BUILDKIT_DOCKERFILE_CHECK={value}"),
            skipped.to_str().expect("utf-8"),
        ])
    };
    let output = by_arg("error=true");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("JSONArgsRecommended"),
        "{stderr}"
    );
    let output = by_arg("skip=all;error=true");
    assert!(output.status.success(), "{}", describe_output(&output));
    let output = by_arg("skip");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("BUILDKIT_DOCKERFILE_CHECK")
            && stderr.contains("invalid check option"),
        "{stderr}"
    );
    let described = env.context(&[(
        "Dockerfile",
        file("# a note\nFROM scratch AS build\nfrom scratch\n"),
    )]);
    let stderr = String::from_utf8_lossy(
        &env.rbuild(["build", "--check", described.to_str().expect("utf-8")])
            .stderr,
    )
    .into_owned();
    assert!(
        stderr.contains("Dockerfile:3: ConsistentInstructionCasing:")
            && !stderr.contains("InvalidDefinitionDescription"),
        "{stderr}"
    );
    let output = env.rbuild([
        "build",
        "--check",
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=experimental=all",
        described.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Dockerfile:2: InvalidDefinitionDescription:"),
        "{stderr}"
    );
}
