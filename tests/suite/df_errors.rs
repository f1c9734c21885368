//! Errors as BuildKit's dockerfile_test.go and the parser/instructions tests report them
//! (testErrorsSourceMap, testCircularDependency, testInvalidStageName...): the build fails,
//! names the Dockerfile line, and says what is wrong.

use crate::support::*;

/// Table-driven: each row is its own failing build. `line` 0: BuildKit names no single line.
/// (A duplicate stage name and a `--chown` name the image lacks are not errors: BuildKit
/// warns DuplicateStageName, and its readUser leaves an unknown name at 0.)
/// Rows mirror, in order: testInvalidStageName ("name can't start with a number"), parser "file with no
/// instructions", "no build stage in current context", instructions/parse_test ENV "must have
/// two arguments", "unknown flag", USER / WORKDIR / ARG "requires ... argument", EXPOSE
/// "invalid containerPort", HEALTHCHECK "invalid duration", runmount "unsupported mount
/// type", an ARG left empty in FROM
/// ("invalid reference format"), STOPSIGNAL "invalid signal", ADD of a missing source,
/// testErrorsSourceMap for a failing RUN in a stage another stage copies from.
#[test]
fn dockerfile_errors_name_line_and_cause() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let rows: [(&str, usize, &[&str]); 15] = [
        ("FROM busybox:latest AS 1-bad\n", 1, &["1-bad"]),
        ("# only a comment\n", 0, &["instructions"]),
        ("RUN true\n", 1, &["FROM"]),
        ("FROM busybox:latest\nENV ONLYKEY\n", 2, &["ENV"]),
        ("FROM busybox:latest\nCOPY --nope a.txt /a\n", 2, &["nope"]),
        ("FROM busybox:latest\nUSER\n", 2, &["USER"]),
        ("FROM busybox:latest\nWORKDIR\n", 2, &["WORKDIR"]),
        ("FROM busybox:latest\nARG\n", 2, &["ARG"]),
        ("FROM busybox:latest\nEXPOSE notaport\n", 2, &["notaport"]),
        ("FROM busybox:latest\nHEALTHCHECK --interval=soon CMD true\n", 2, &["soon"]),
        ("FROM busybox:latest\nRUN --mount=type=nope true\n", 2, &["nope"]),
        ("ARG TAG\nFROM busybox:$TAG\n", 2, &["busybox:"]),
        ("FROM busybox:latest\nSTOPSIGNAL SIGNOPE\n", 2, &["SIGNOPE"]),
        ("FROM busybox:latest\nADD missing.tar /x/\n", 2, &["missing.tar"]),
        (
            "FROM busybox:latest AS dep\nRUN echo failing && exit 42\nFROM busybox:latest\nCOPY --from=dep /x /x\n",
            2,
            &["exit code: 42"],
        ),
    ];
    for (dockerfile, line, words) in rows {
        let stderr = build_df_err(&env, dockerfile, &[("a.txt", file("a"))], &[]);
        if line > 0 {
            assert!(
                stderr.contains(&format!("Dockerfile:{line}")),
                "{dockerfile:?}: line {line} in {stderr}"
            );
        }
        for word in words {
            assert!(
                stderr.contains(word),
                "{dockerfile:?}: {word:?} in {stderr}"
            );
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Build checks (dockerfile_lint_test.go): each rule warns by name and line while the build
/// still succeeds and produces the image. One build covering testRuleUndefinedArgInFrom,
/// testRuleWorkdirRelativePath (the dir is still created under /), testRuleLegacyKeyValueFormat
/// (the legacy ENV still sets the variable), testRuleUndefinedVar (in ENV, expanding to empty;
/// RUN's shell variables are not checked).
#[test]
fn build_check_warnings_do_not_stop_the_build() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "ARG BASE=busybox:latest\n\
        FROM ${BASE}${MISSING_TAG}\n\
        WORKDIR relative\n\
        ENV LEGACY value\n\
        ENV FROM_UNDEFINED=x$NEVER_DEFINED\n\
        RUN echo \"$SHELL_ONLY\" > /undefined\n\
        COPY a.txt /a.txt\n";
    let ctx = df_context(&env, dockerfile, &[("a.txt", file("a"))]);
    let archive = env.path("dferrors-checks.tar");
    let output = env.rbuild([
        "build",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
        path_str(&ctx),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for (rule, line) in [
        ("UndefinedArgInFrom", 2),
        ("WorkdirRelativePath", 3),
        ("LegacyKeyValueFormat", 4),
        ("UndefinedVar", 5),
    ] {
        assert!(
            stderr.contains(&format!("Dockerfile:{line}")) && stderr.contains(rule),
            "{rule} at line {line}: {stderr}"
        );
    }
    let image = OciImage::open(&archive);
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("UndefinedVar") && l.contains("SHELL_ONLY")),
        "UndefinedVar leaves RUN's shell variables alone: {stderr}"
    );
    assert_eq!(image.tree().text("undefined"), "\n");
    assert_eq!(env_value(&image, "FROM_UNDEFINED").as_deref(), Some("x"));
    assert!(image.tree().node("relative").is_dir());
    assert_eq!(env_value(&image, "LEGACY").as_deref(), Some("value"));
    assert_eq!(config_field(&image, "WorkingDir"), "/relative");
}

/// BuildKit's dockerfile2llb (validateCircularDependency): a cycle through `--from` fails
/// with "circular dependency detected on stage" (before the use of a later stage would).
#[test]
fn circular_stage_dependency_is_detected() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let stderr = build_df_err(
        &env,
        "FROM busybox:latest AS a\nCOPY --from=b /x /x\nFROM busybox:latest AS b\nCOPY --from=a /y /y\n",
        &[],
        &[],
    );
    assert!(stderr.contains("circular"), "{stderr}");
}
