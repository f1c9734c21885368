//! Layer stacks: more layers than one mount-option page can name, more than overlayfs can
//! stack, layers shared between images, and the step cache reusing stored layers.

use crate::support::*;

#[test]
fn a_dockerfile_with_130_run_steps_builds() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let mut dockerfile = String::from("FROM busybox:latest\n");
    for i in 1..=130 {
        dockerfile.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    dockerfile.push_str("RUN cat /f1 /f64 /f130 > /seen\n");
    let ctx = env.context(&[("Dockerfile", file(dockerfile))]);
    let (_, image) = env.build_oci("many", &["-q"], &ctx);
    assert_eq!(image.layer_count(), 1 + 131);
    assert_eq!(
        image.tree().text("seen"),
        "1\n64\n130\n",
        "the last step saw every lower layer"
    );
    assert_eq!(image.tree().text("f77"), "77\n");
}

/// overlayfs stacks at most 500 lower dirs: the steps beyond see the bottom of the stack as
/// one flattened tree, deletions (whiteouts) included.
#[test]
fn a_dockerfile_with_more_layers_than_overlayfs_stacks_builds() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let mut dockerfile = String::from(
        "FROM busybox:latest\n\
         RUN rm /etc/group\n\
         RUN echo doomed > /gone\n\
         RUN rm /gone\n",
    );
    for i in 4..=520 {
        dockerfile.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    dockerfile.push_str(
        "RUN test ! -e /etc/group && test ! -e /gone && test -e /etc/passwd && \
         cat /f4 /f300 /f520 > /seen\n",
    );
    let ctx = env.context(&[("Dockerfile", file(dockerfile))]);
    let (_, image) = env.build_oci("deep", &["-q"], &ctx);
    assert_eq!(image.layer_count(), 1 + 521);
    assert_eq!(image.tree().text("seen"), "4\n300\n520\n");
    assert!(!image.tree().contains("etc/group"));
    assert!(!image.tree().contains("gone"));
    assert_eq!(image.tree().text("f499"), "499\n");
}

#[test]
fn unchanged_rebuild_hits_the_cache_and_reuses_layers() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        ("Dockerfile", file("FROM busybox:latest\nCOPY in.txt /in.txt\nRUN echo $RANDOM$RANDOM$RANDOM > /random\n")),
        ("in.txt", file("one\n")),
    ]);
    let first = env.path("first.tar");
    let second = env.path("second.tar");
    env.rbuild_ok([
        "build",
        "-o",
        &format!("type=oci,dest={}", first.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let output = env.rbuild([
        "build",
        "--progress",
        "plain",
        "-o",
        &format!("type=oci,dest={}", second.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("CACHED").count(),
        2,
        "COPY and RUN hit: {stderr}"
    );
    let (a, b) = (OciImage::open(&first), OciImage::open(&second));
    assert_eq!(a.diff_ids(), b.diff_ids(), "a hit reuses the stored layer");
    assert_eq!(a.tree().text("random"), b.tree().text("random"));

    let (_, c) = env.build_oci("third", &["--no-cache"], &ctx);
    assert_ne!(
        a.tree().text("random"),
        c.tree().text("random"),
        "--no-cache runs the step again"
    );
    assert_eq!(
        a.diff_ids()[..2],
        c.diff_ids()[..2],
        "the COPY layer is the same content"
    );
}
