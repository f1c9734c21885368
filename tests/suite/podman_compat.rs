//! What scripts bring from podman and buildah: a `Containerfile` and a `.containerignore`
//! when the context has no `Dockerfile` or `.dockerignore` (with both, docker's names win, as
//! docker reads only them; podman prefers its own, see the README), and `--pull=POLICY`.

use crate::support::*;

#[test]
fn containerfile_and_containerignore_stand_in_for_docker_s_names() {
    let env = TestEnv::new();
    // Only podman's names: they are used.
    let podman_only = env.context(&[
        (
            "Containerfile",
            file("FROM scratch\nCOPY . /ctx/\nLABEL from=containerfile\n"),
        ),
        (".containerignore", file("secret\n")),
        ("kept", file("kept\n")),
        ("secret", file("secret\n")),
    ]);
    let (_, image) = env.build_oci("podman-only", &[], &podman_only);
    assert_eq!(image.config()["config"]["Labels"]["from"], "containerfile");
    let tree = image.tree();
    assert!(tree.contains("ctx/kept"));
    assert!(!tree.contains("ctx/secret"), ".containerignore applies");

    // Both: Dockerfile and .dockerignore win.
    let both = env.context(&[
        (
            "Dockerfile",
            file("FROM scratch\nCOPY . /ctx/\nLABEL from=dockerfile\n"),
        ),
        (
            "Containerfile",
            file("FROM scratch\nLABEL from=containerfile\n"),
        ),
        (".dockerignore", file("by-docker\n")),
        (".containerignore", file("by-podman\n")),
        ("by-docker", file("x\n")),
        ("by-podman", file("y\n")),
    ]);
    let (_, image) = env.build_oci("both", &[], &both);
    assert_eq!(image.config()["config"]["Labels"]["from"], "dockerfile");
    let tree = image.tree();
    assert!(!tree.contains("ctx/by-docker") && tree.contains("ctx/by-podman"));

    // Neither: the error names both.
    let none = env.context(&[("other", file("x\n"))]);
    let stderr = env.rbuild_err(["build", none.to_str().expect("utf-8")]);
    assert!(stderr.contains("Dockerfile"), "{stderr}");
}

#[test]
fn pull_never_refuses_an_image_the_store_lacks() {
    let env = TestEnv::new();
    let ctx = env.context(&[("Dockerfile", file("FROM nowhere.invalid/app:1\nRUN true\n"))]);
    let stderr = env.rbuild_err(["build", "--pull=never", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("--pull=never") && stderr.contains("rbuild load"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:1"), "{stderr}");
    let stderr = env.rbuild_err(["build", "--pull=sometimes", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("sometimes") && stderr.contains("never"),
        "{stderr}"
    );
}

/// `--squash` (and kaniko's `--single-snapshot`): the build's layers become one over the
/// base's, with the same files as without it (a base file deleted stays deleted); history
/// keeps every instruction, and its non-empty entries still match the layers.
#[test]
fn squash_makes_one_layer_over_the_base() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(
                "FROM busybox:latest\n\
                 RUN echo one > /one && mkdir /d && echo x > /d/x\n\
                 COPY added /added\n\
                 RUN rm /one /etc/passwd && echo two > /d/x && ln -s /added /link\n\
                 LABEL k=v\n",
            ),
        ),
        ("added", file("added\n")),
    ]);
    let (_, plain) = env.build_oci("plain", &[], &ctx);
    let (_, squashed) = env.build_oci("squashed", &["--squash"], &ctx);
    let (_, single) = env.build_oci("single", &["--single-snapshot"], &ctx);
    let base_layers = OciImage::open(&busybox_oci_archive().expect("fixture")).layer_count();
    assert_eq!(plain.layer_count(), base_layers + 3);
    assert_eq!(squashed.layer_count(), base_layers + 1);
    assert_eq!(single.diff_ids(), squashed.diff_ids());
    assert_eq!(
        squashed.diff_ids()[..base_layers],
        plain.diff_ids()[..base_layers],
        "the base's layers are kept"
    );
    let listing = |image: &OciImage| -> Vec<(String, u32, String)> {
        let tree = image.tree();
        tree.nodes
            .iter()
            .map(|(path, node)| (path.clone(), node.mode, format!("{:?}", node.kind)))
            .collect()
    };
    assert_eq!(listing(&squashed), listing(&plain));
    let tree = squashed.tree();
    assert!(!tree.contains("one") && !tree.contains("etc/passwd"));
    assert_eq!(tree.text("d/x"), "two\n");
    let history = squashed.history();
    assert_eq!(
        history.len(),
        plain.history().len(),
        "one entry per instruction"
    );
    let non_empty = history
        .iter()
        .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
        .count();
    assert_eq!(non_empty, squashed.layer_count());
}
