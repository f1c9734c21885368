//! Multi-stage builds beyond multistage.rs, mirroring BuildKit's dockerfile_test.go
//! (testMultiStageImplicitFrom, testMultiStageCaseInsensitive, testCopyFromStage...) and
//! reference.md "FROM", "COPY --from", "Multi-stage builds".

use crate::support::*;

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
