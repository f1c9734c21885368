//! Multi-stage builds, mirroring BuildKit's frontend/dockerfile/dockerfile_test.go
//! (testMultiStageImplicitFrom, testMultiStageCaseInsensitive, testCopyFromImage,
//! testTargetStageNameArg...) and the reference's "Multi-stage builds" sections.
//!
//! Multi-stage builds beyond multistage.rs, mirroring BuildKit's dockerfile_test.go
//! (testMultiStageImplicitFrom, testMultiStageCaseInsensitive, testCopyFromStage...) and
//! reference.md "FROM", "COPY --from", "Multi-stage builds".

use crate::support::*;

fn build(env: &TestEnv, name: &str, dockerfile: &str, args: &[&str]) -> OciImage {
    let ctx = env.context(&[
        ("Dockerfile", file(dockerfile)),
        ("ctx.txt", file("from context\n")),
    ]);
    env.build_oci(name, args, &ctx).1
}

/// reference.md "FROM ... AS name", "COPY --from": by name, case-insensitively.
#[test]
fn copy_from_a_named_stage() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "ms-named",
        "FROM busybox:latest AS Builder\nRUN mkdir /out && echo built > /out/artifact && chown 1000:2000 /out/artifact\n\
         FROM scratch\nCOPY --from=builder /out/artifact /artifact\nCOPY --from=BUILDER /out /outdir\n",
        &[],
    );
    let tree = image.tree();
    assert_eq!(tree.text("artifact"), "built\n");
    assert_eq!(
        tree.node("artifact").owner(),
        (1000, 2000),
        "COPY --from keeps the source's owner"
    );
    assert_eq!(tree.text("outdir/artifact"), "built\n");
    assert_eq!(
        image.layer_count(),
        2,
        "scratch + two COPY layers; the builder's layers stay out"
    );
    assert!(!tree.contains("bin/busybox"));
}

/// dockerfile_test.go testCopyFromIndex / reference: `--from=<index>`.
#[test]
fn copy_from_stage_index_and_from_an_image() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "ms-index",
        "FROM busybox:latest\nRUN echo zero > /zero\nFROM scratch\nCOPY --from=0 /zero /zero\nCOPY --from=busybox:latest /bin/busybox /bin/busybox\n",
        &[],
    );
    assert_eq!(image.tree().text("zero"), "zero\n");
    assert!(image.tree().node("bin/busybox").is_file());
    assert_eq!(image.tree().node("bin/busybox").mode & 0o111, 0o111);
}

/// testMultiStageImplicitFrom: FROM <stage> inherits files, config and ENV.
#[test]
fn from_a_stage_inherits_its_filesystem_and_config() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "ms-inherit",
        "FROM busybox:latest AS base\nENV FROM_BASE=yes\nWORKDIR /app\nRUN echo base > base.txt\n\
         FROM base\nRUN echo \"child sees $FROM_BASE\" > child.txt\n",
        &[],
    );
    let tree = image.tree();
    assert_eq!(tree.text("app/base.txt"), "base\n");
    assert_eq!(tree.text("app/child.txt"), "child sees yes\n");
    assert!(image.runtime_config()["Env"]
        .to_string()
        .contains("FROM_BASE=yes"));
    assert_eq!(image.runtime_config()["WorkingDir"], "/app");
}

/// testTarget: `--target` builds the named stage, and only what it needs.
#[test]
fn target_builds_only_the_stages_it_needs() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest AS never\nRUN exit 9\n\
                      FROM busybox:latest AS dep\nRUN echo dep > /dep\n\
                      FROM busybox:latest AS wanted\nCOPY --from=dep /dep /dep\nRUN echo wanted > /wanted\n\
                      FROM scratch AS last\nCOPY --from=never /x /x\n";
    let image = build(&env, "ms-target", dockerfile, &["--target", "WANTED"]);
    assert_eq!(image.tree().text("wanted"), "wanted\n");
    assert_eq!(image.tree().text("dep"), "dep\n");
    let ctx = env.context(&[("Dockerfile", file(dockerfile))]);
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("Dockerfile:2:") && stderr.contains("exit code: 9"),
        "without --target the failing stage runs: {stderr}"
    );
    let stderr = env.rbuild_err(["build", "--target", "nope", ctx.to_str().expect("utf-8")]);
    assert!(stderr.contains("nope"), "{stderr}");
}

/// testMultiStageArgs / reference "Scope": global ARGs reach FROM; inside a stage only when
/// re-declared; TARGETARCH and friends are predefined.
#[test]
fn global_args_scope_and_predefined_platform_args() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "ms-args",
        "ARG BASE=busybox:latest\nARG GLOBAL=g\nFROM ${BASE} AS first\nARG GLOBAL\nARG TARGETARCH\nARG TARGETPLATFORM\n\
         RUN echo \"global=$GLOBAL arch=$TARGETARCH platform=$TARGETPLATFORM\" > /args\n\
         FROM first\nRUN echo \"undeclared=${GLOBAL:-unset}\" > /second\n",
        &["--build-arg", "GLOBAL=from-cli"],
    );
    let arch = image.config()["architecture"]
        .as_str()
        .expect("arch")
        .to_string();
    assert_eq!(
        image.tree().text("args"),
        format!("global=from-cli arch={arch} platform=linux/{arch}\n")
    );
    assert_eq!(
        image.tree().text("second"),
        "undeclared=from-cli\n",
        "FROM <stage> inherits the stage's ARGs"
    );
}

/// Stages that do not depend on each other build at the same time (--jobs >= 2): each waits
/// for a file the other writes in a shared cache mount, and gives up after 60 s.
#[test]
fn independent_stages_run_in_parallel() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let wait_for = |mine: &str, theirs: &str| {
        format!(
            "RUN --mount=type=cache,id=sync,target=/sync,sharing=shared \
             touch /sync/{mine} && i=0; while [ ! -e /sync/{theirs} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done; echo met > /{mine}\n"
        )
    };
    let dockerfile = format!(
        "FROM busybox:latest AS left\n{}FROM busybox:latest AS right\n{}FROM scratch\nCOPY --from=left /left /left\nCOPY --from=right /right /right\n",
        wait_for("left", "right"),
        wait_for("right", "left")
    );
    let image = build(&env, "ms-parallel", &dockerfile, &["--jobs", "2"]);
    assert_eq!(image.tree().text("left"), "met\n");
    assert_eq!(image.tree().text("right"), "met\n");
}

/// reference "ONBUILD": triggers stored in the image, run after the child's FROM, not passed on.
#[test]
fn onbuild_triggers_run_in_the_child_only() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let parent = env.context(&[("Dockerfile", file("FROM busybox:latest\nONBUILD RUN echo triggered > /triggered\nONBUILD ENV TRIGGERED=1\n"))]);
    let (_, parent_image) = env.build_oci("onbuild-parent", &["-t", "onbuild-parent:1"], &parent);
    assert_eq!(
        parent_image.runtime_config()["OnBuild"],
        serde_json::json!(["RUN echo triggered > /triggered", "ENV TRIGGERED=1"])
    );
    assert!(!parent_image.tree().contains("triggered"));
    let child = env.context(&[(
        "Dockerfile",
        file("FROM onbuild-parent:1\nRUN cat /triggered > /seen\n"),
    )]);
    let (_, child_image) = env.build_oci("onbuild-child", &[], &child);
    assert_eq!(child_image.tree().text("seen"), "triggered\n");
    assert!(child_image.runtime_config()["Env"]
        .to_string()
        .contains("TRIGGERED=1"));
    assert!(
        child_image
            .runtime_config()
            .get("OnBuild")
            .is_none_or(|v| v.is_null()),
        "triggers are cleared in the child"
    );
}

/// reference "--build-context": a directory and an image replace what FROM / COPY --from /
/// RUN --mount from= name; `--add-host` adds a line to the steps' /etc/hosts.
#[test]
fn named_build_contexts_and_extra_hosts() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let extra = env.write_tree("extra", &[("shared.txt", file("from a named dir\n"))]);
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM base\nCOPY --from=assets shared.txt /copied.txt\n\
             RUN --mount=from=assets,target=/assets cat /assets/shared.txt > /mounted.txt\n\
             RUN grep registry.internal /etc/hosts > /hosts-line && grep -w gw /etc/hosts > /gw-line\n",
        ),
    )]);
    let (_, image) = env.build_oci(
        "named",
        &[
            "--build-context",
            "base=docker-image://busybox:latest",
            "--build-context",
            &format!("assets={}", extra.display()),
            "--add-host",
            "registry.internal:10.1.2.3",
            "--add-host",
            "gw=host-gateway",
        ],
        &ctx,
    );
    let tree = image.tree();
    assert_eq!(tree.text("copied.txt"), "from a named dir\n");
    assert_eq!(tree.text("mounted.txt"), "from a named dir\n");
    assert_eq!(tree.text("hosts-line"), "10.1.2.3\tregistry.internal\n");
    assert_eq!(
        tree.text("gw-line"),
        "127.0.0.1\tgw\n",
        "host-gateway: the host"
    );
    assert!(
        tree.node("bin/busybox").is_file(),
        "FROM base is the busybox image"
    );
}

/// One build covering: ENV and WORKDIR inherited through two levels of `FROM <stage>`
/// (testMultiStageImplicitFrom), `COPY --from` source paths relative to the source stage's
/// root, not its WORKDIR (reference "COPY --from"), `--from` by index of a named stage,
/// `COPY --from --chown` (testCopyChownFromStage), a stage whose FROM is an ARG naming an
/// image (reference "Understand how ARG and FROM interact"), a FROM that expands to a stage
/// name, inner symlinks kept by COPY --from, and an unreferenced failing stage skipped
/// (BuildKit builds only what the target needs: testMultiStageSkip).
#[test]
fn stages_inherit_and_copy() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "ARG IMAGE=busybox:latest\n\
        ARG PARENT=middle\n\
        FROM ${IMAGE} AS base\n\
        ENV LEVEL=base\n\
        WORKDIR /work\n\
        RUN echo base > file.txt && ln -s file.txt link.txt && echo root > /at-root.txt\n\
        FROM base AS middle\n\
        ENV MIDDLE=yes\n\
        FROM busybox:latest AS broken\n\
        RUN exit 3\n\
        FROM ${PARENT}\n\
        RUN echo \"$LEVEL $MIDDLE $(pwd)\" > /inherited\n\
        COPY --from=base at-root.txt /copied-root.txt\n\
        COPY --from=0 /work/ /from-index/\n\
        COPY --from=middle --chown=1000:2000 /work/file.txt /chowned.txt\n";
    let image = build_df(&env, "dfms-inherit", dockerfile, &[], &[]);
    let tree = image.tree();
    assert_eq!(tree.text("inherited"), "base yes /work\n");
    assert_eq!(tree.text("copied-root.txt"), "root\n");
    assert_eq!(tree.text("from-index/file.txt"), "base\n");
    assert_eq!(
        tree.node("from-index/link.txt").symlink_target(),
        Some("file.txt")
    );
    assert_eq!(tree.node("chowned.txt").owner(), (1000, 2000));
    assert_eq!(config_field(&image, "WorkingDir"), "/work");
    assert_eq!(env_value(&image, "MIDDLE").as_deref(), Some("yes"));
}

/// Builds covering: `--target` picks an intermediate stage's config, not the last stage's
/// (reference "Specifying target build stage"), the target name is case-insensitive, and a
/// stage `FROM scratch` holding only what COPY --from put there (reference "Use multi-stage
/// builds": "leave behind everything you don't want").
#[test]
fn target_stage_config_and_scratch_results() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest AS Build\n\
        RUN mkdir /out && echo artifact > /out/bin\n\
        CMD [\"build-cmd\"]\n\
        LABEL stage=build\n\
        FROM scratch AS final\n\
        COPY --from=build /out/bin /bin/app\n\
        CMD [\"/bin/app\"]\n";
    let target = build_df(&env, "dfms-target", dockerfile, &[], &["--target", "build"]);
    assert_eq!(
        config_field(&target, "Cmd"),
        &serde_json::json!(["build-cmd"])
    );
    assert_eq!(config_field(&target, "Labels")["stage"], "build");
    assert!(target.tree().node("bin/busybox").is_file());
    let last = build_df(&env, "dfms-last", dockerfile, &[], &[]);
    assert_eq!(config_field(&last, "Cmd"), &serde_json::json!(["/bin/app"]));
    let mut paths: Vec<&str> = last.tree().paths().collect();
    paths.sort();
    assert_eq!(paths, vec!["bin", "bin/app"]);
    assert_eq!(last.layer_count(), 1);
    assert!(config_field(&last, "Labels").get("stage").is_none());
}

/// `--build-context NAME=oci-layout://PATH[:TAG][@DIGEST]`: the layout's image named by its
/// tag or its digest is the context (the tag is not dropped, the digest not read as a path);
/// one the layout does not hold is an error naming it.
#[test]
fn oci_layout_contexts_by_tag_and_digest() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let layout = env.path("layout");
    // Two images in one layout: each built into a layout dir, the second merged in.
    let mut digests = Vec::new();
    for (which, dest) in [("one", layout.clone()), ("two", env.path("layout-two"))] {
        let ctx = env.context(&[
            (
                "Dockerfile",
                file("FROM busybox:latest\nCOPY which /which\n"),
            ),
            ("which", file(format!("{which}\n"))),
        ]);
        env.rbuild_ok([
            "build",
            "-o",
            &format!(
                "type=oci,dest={},tar=false,name=app:{which}",
                dest.display()
            ),
            ctx.to_str().expect("utf-8"),
        ]);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dest.join("index.json")).expect("index"))
                .expect("json");
        digests.push(index["manifests"][0].clone());
    }
    for entry in std::fs::read_dir(env.path("layout-two/blobs/sha256")).expect("blobs") {
        let entry = entry.expect("blob");
        let target = layout.join("blobs/sha256").join(entry.file_name());
        if !target.exists() {
            std::fs::copy(entry.path(), target).expect("copy blob");
        }
    }
    let merged = serde_json::json!({"schemaVersion": 2, "manifests": digests});
    std::fs::write(layout.join("index.json"), merged.to_string()).expect("merged index");

    let consumer = env.context(&[("Dockerfile", file("FROM base\nRUN cp /which /seen\n"))]);
    let seen = |reference: &str| {
        let (_, image) = env.build_oci(
            "consumer",
            &[
                "--build-context",
                &format!("base=oci-layout://{}", reference),
            ],
            &consumer,
        );
        image.tree().text("seen")
    };
    let path = layout.display().to_string();
    assert_eq!(seen(&format!("{path}:two")), "two\n");
    assert_eq!(seen(&format!("{path}:one")), "one\n");
    let one_digest = digests[0]["digest"].as_str().expect("digest");
    assert_eq!(seen(&format!("{path}@{one_digest}")), "one\n");
    let stderr = env.rbuild_err([
        "build",
        "--build-context",
        &format!("base=oci-layout://{path}:three"),
        consumer.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("no image tagged three"), "{stderr}");
}
