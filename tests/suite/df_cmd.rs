//! CMD and ENTRYPOINT as BuildKit's dockerfile_test.go (testCmdShell, testEntrypointShell,
//! testEntrypointClearsCmd...) and reference.md "CMD", "ENTRYPOINT", "SHELL" and
//! "Understand how CMD and ENTRYPOINT interact" describe them. The busybox base has Cmd ["sh"].

use serde_json::{json, Value};

use crate::support::*;

/// Table-driven: each row is its own (metadata-only) build, checking Entrypoint and Cmd.
#[test]
fn cmd_and_entrypoint_forms() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let rows: [(&str, &str, Value, Value); 12] = [
        // reference "CMD": exec form stored as is
        (
            "exec-cmd",
            "CMD [\"echo\", \"hi\"]",
            Value::Null,
            json!(["echo", "hi"]),
        ),
        // testCmdShell: shell form wrapped in /bin/sh -c
        (
            "shell-cmd",
            "CMD echo hi",
            Value::Null,
            json!(["/bin/sh", "-c", "echo hi"]),
        ),
        // testEntrypointShell: shell form ENTRYPOINT; inherited CMD cleared
        (
            "shell-ep",
            "ENTRYPOINT exec top -b",
            json!(["/bin/sh", "-c", "exec top -b"]),
            Value::Null,
        ),
        // reference "Understand how CMD and ENTRYPOINT interact": exec + exec
        (
            "ep-and-cmd",
            "ENTRYPOINT [\"top\", \"-b\"]\nCMD [\"-c\"]",
            json!(["top", "-b"]),
            json!(["-c"]),
        ),
        // a CMD set in the same stage before ENTRYPOINT is kept (only an inherited one is reset)
        (
            "cmd-then-ep",
            "CMD [\"-c\"]\nENTRYPOINT [\"top\", \"-b\"]",
            json!(["top", "-b"]),
            json!(["-c"]),
        ),
        // reference "CMD": only the last CMD takes effect
        (
            "last-cmd",
            "CMD [\"first\"]\nCMD [\"second\"]",
            Value::Null,
            json!(["second"]),
        ),
        // reference "SHELL": shell form uses the SHELL in effect
        (
            "shell-instr",
            "SHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nCMD echo hi",
            Value::Null,
            json!(["/bin/ash", "-eo", "pipefail", "-c", "echo hi"]),
        ),
        // reference "Environment replacement": CMD is not expanded at build time
        (
            "no-expansion",
            "ENV X=1\nCMD echo $X",
            Value::Null,
            json!(["/bin/sh", "-c", "echo $X"]),
        ),
        // reference "Shell and exec form": JSON escapes in exec form
        (
            "escapes",
            "CMD [\"echo\", \"a \\\"quoted\\\" \\\\ b\"]",
            Value::Null,
            json!(["echo", "a \"quoted\" \\ b"]),
        ),
        // reference "Shell and exec form": invalid JSON falls back to shell form
        (
            "bad-json",
            "CMD [echo, hi]",
            Value::Null,
            json!(["/bin/sh", "-c", "[echo, hi]"]),
        ),
        // reference "CMD": the base image's CMD is inherited when nothing sets it
        ("inherited", "LABEL x=y", Value::Null, json!(["sh"])),
        // testEntrypointClearsCmd with CMD after: a new CMD after ENTRYPOINT applies
        (
            "ep-shell-cmd-after",
            "ENTRYPOINT [\"/bin/echo\"]\nCMD hello",
            json!(["/bin/echo"]),
            json!(["/bin/sh", "-c", "hello"]),
        ),
    ];
    for (name, instructions, entrypoint, cmd) in rows {
        let image = build_df(
            &env,
            &format!("dfcmd-{name}"),
            &format!("FROM busybox:latest\n{instructions}\n"),
            &[],
            &[],
        );
        assert_eq!(
            config_field(&image, "Entrypoint"),
            &entrypoint,
            "{name}: Entrypoint"
        );
        assert_eq!(config_field(&image, "Cmd"), &cmd, "{name}: Cmd");
    }
}

/// Builds covering: an inherited ENTRYPOINT kept while the child sets CMD (reference
/// "ENTRYPOINT": "command line arguments ... appended after all elements in an exec form
/// ENTRYPOINT"; the child only replaces CMD), the reference's note that setting ENTRYPOINT
/// resets an inherited CMD, and BuildKit's history lines for CMD and ENTRYPOINT.
#[test]
fn inherited_entrypoint_and_history() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    build_df(
        &env,
        "dfcmd-base",
        "FROM busybox:latest\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"base\"]\n",
        &[],
        &["-t", "ep-base:1"],
    );
    let child = build_df(
        &env,
        "dfcmd-child",
        "FROM ep-base:1\nCMD [\"child\"]\n",
        &[],
        &[],
    );
    assert_eq!(config_field(&child, "Entrypoint"), &json!(["/bin/echo"]));
    assert_eq!(config_field(&child, "Cmd"), &json!(["child"]));
    assert!(created_by(&child).contains(&"CMD [\"child\"]".to_string()));
    let reset = build_df(
        &env,
        "dfcmd-reset",
        "FROM ep-base:1\nENTRYPOINT [\"/bin/cat\"]\n",
        &[],
        &[],
    );
    assert_eq!(config_field(&reset, "Entrypoint"), &json!(["/bin/cat"]));
    assert_eq!(config_field(&reset, "Cmd"), &Value::Null);
    assert!(
        created_by(&reset).contains(&"ENTRYPOINT [\"/bin/cat\"]".to_string()),
        "{:?}",
        created_by(&reset)
    );
}
