//! ONBUILD as BuildKit's dockerfile_test.go (testOnBuildCleared, testOnBuildWithCopy...) and
//! reference.md "ONBUILD" describe it: stored in the parent, run in the child right after its
//! FROM, in the child's context, and not passed on to grandchildren.

use serde_json::json;

use crate::support::*;

const PARENT: &str = "FROM busybox:latest\n\
    ONBUILD RUN echo first > /order && echo run >> /runs\n\
    ONBUILD RUN echo second >> /order\n\
    ONBUILD COPY ctx.txt /from-context.txt\n\
    ONBUILD ENV ONB_ENV=set\n\
    ONBUILD WORKDIR /onbuild-wd\n\
    ONBUILD LABEL onbuild.label=yes\n\
    ONBUILD ARG ONB_ARG=default-arg\n\
    ONBUILD RUN echo \"$ONB_ARG\" > /onb-arg\n";

/// Three builds (parent, child, grandchild) covering: reference "ONBUILD" (triggers stored
/// verbatim in the config's OnBuild, not executed in the parent), testOnBuildCleared
/// (the child's OnBuild holds only its own triggers; grandchildren do not rerun the
/// grandparent's), triggers run in order right after FROM and before the child's first
/// instruction, testOnBuildWithCopy (ONBUILD COPY reads the child's build context), ONBUILD
/// ENV, WORKDIR and LABEL reaching the child's config, ONBUILD ARG overridable with
/// --build-arg in the child, and the child's own ONBUILD running in the grandchild.
#[test]
fn onbuild_triggers_across_three_generations() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let parent = build_df(
        &env,
        "dfonbuild-parent",
        PARENT,
        &[("ctx.txt", file("parent context\n"))],
        &["-t", "onb-parent:1"],
    );
    let triggers: Vec<&str> = PARENT
        .lines()
        .skip(1)
        .map(|l| l.trim_start_matches("ONBUILD "))
        .collect();
    assert_eq!(config_field(&parent, "OnBuild"), &json!(triggers));
    assert!(!parent.tree().contains("order") && !parent.tree().contains("from-context.txt"));
    assert_eq!(
        config_field(&parent, "WorkingDir").as_str().unwrap_or(""),
        ""
    );

    let child = build_df(
        &env,
        "dfonbuild-child",
        "FROM onb-parent:1\nRUN cat /order > /seen-order && pwd > /pwd\nONBUILD RUN echo grandchild > /grand\n",
        &[("ctx.txt", file("child context\n"))],
        &["-t", "onb-child:1", "--build-arg", "ONB_ARG=from-cli"],
    );
    let tree = child.tree();
    assert_eq!(tree.text("order"), "first\nsecond\n");
    assert_eq!(tree.text("seen-order"), "first\nsecond\n");
    assert_eq!(tree.text("pwd"), "/onbuild-wd\n");
    assert_eq!(tree.text("from-context.txt"), "child context\n");
    assert_eq!(tree.text("onb-arg"), "from-cli\n");
    assert_eq!(env_value(&child, "ONB_ENV").as_deref(), Some("set"));
    assert_eq!(config_field(&child, "WorkingDir"), "/onbuild-wd");
    assert_eq!(config_field(&child, "Labels")["onbuild.label"], "yes");
    assert_eq!(
        config_field(&child, "OnBuild"),
        &json!(["RUN echo grandchild > /grand"])
    );

    let grandchild = build_df(&env, "dfonbuild-grandchild", "FROM onb-child:1\n", &[], &[]);
    assert_eq!(
        grandchild.tree().text("runs"),
        "run\n",
        "parent triggers ran once"
    );
    assert_eq!(grandchild.tree().text("grand"), "grandchild\n");
    assert!(config_field(&grandchild, "OnBuild")
        .as_array()
        .is_none_or(Vec::is_empty));
}

/// reference "ONBUILD": "Chaining ONBUILD instructions using ONBUILD ONBUILD isn't allowed",
/// and "The ONBUILD instruction may not trigger FROM or MAINTAINER instructions"
/// (dockerfile parser tests). Each row is its own build.
#[test]
fn onbuild_refuses_chaining_from_and_maintainer() {
    let env = TestEnv::new();
    for (trigger, word) in [
        ("ONBUILD ONBUILD RUN true", "ONBUILD"),
        ("ONBUILD FROM busybox:latest", "FROM"),
        ("ONBUILD MAINTAINER someone", "MAINTAINER"),
    ] {
        let stderr = build_df_err(&env, &format!("FROM scratch\n{trigger}\n"), &[], &[]);
        assert!(
            stderr.contains("Dockerfile:2") && stderr.contains(word),
            "{trigger}: {stderr}"
        );
        assert!(stderr.contains("allowed"), "{trigger}: {stderr}");
    }
}
