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
