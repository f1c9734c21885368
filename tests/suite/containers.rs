//! rbuild inside containers started with Docker's default security (a private dockerd, as
//! the CI-sandbox issue asks): where the container's profile forbids the namespaces rbuild
//! needs, the error names the way out.

use crate::support::docker::Dockerd;
use crate::support::*;

/// An image of `/rbuild` (the binary under test) and the merged-/usr links its loader path
/// goes through; /usr comes from the host, read-only, when it runs.
fn import_rbuild(docker: &Dockerd, env: &TestEnv, tag: &str) {
    let image = env.path("rbuild-image.tar");
    let binary = std::fs::read(rbuild_binary()).expect("rbuild binary");
    std::fs::write(
        &image,
        layer_tar(&[
            TarEntry::file("rbuild", binary).mode(0o755),
            TarEntry::symlink("lib", "usr/lib"),
            TarEntry::symlink("lib64", "usr/lib64"),
            TarEntry::symlink("bin", "usr/bin"),
            TarEntry::dir("tmp").mode(0o1777),
        ]),
    )
    .expect("image tar");
    docker.import_tar(&image, tag);
}

/// Runs the rbuild under test in a default container (the host's /usr mounted read-only for
/// its shared libraries) as `user`; returns its exit status and stderr.
fn rbuild_in_default_container(docker: &Dockerd, user: &str) -> (bool, String) {
    let output = docker
        .command(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            user,
            "-v",
            "/usr:/usr:ro",
            "rbuild-bin:1",
            "/rbuild",
            "--root",
            "/tmp/store",
            "build",
            "/tmp",
        ])
        .output()
        .expect("run docker");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn default_containers_get_an_error_that_names_the_way_out() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let env = TestEnv::new();
    import_rbuild(&docker, &env, "rbuild-bin:1");
    for (user, what) in [
        ("0:0", "cannot create a mount namespace"),
        ("1000:1000", "cannot create a user namespace"),
    ] {
        let (ok, stderr) = rbuild_in_default_container(&docker, user);
        assert!(!ok, "user {user}: {stderr}");
        assert!(stderr.contains(what), "user {user}: {stderr}");
        assert!(
            stderr.contains("rbuild runs in a container (/.dockerenv)")
                && stderr.contains(
                    "--security-opt seccomp=unconfined --security-opt apparmor=unconfined"
                )
                && stderr.contains("Unconfined"),
            "user {user}: the way out is named: {stderr}"
        );
        assert_eq!(
            stderr.matches("seccomp=unconfined").count(),
            1,
            "said once: {stderr}"
        );
    }
}

/// With user namespaces allowed (seccomp and AppArmor unconfined) and a non-root user: a
/// store on the container's own overlayfs is refused with the fix, and the same build with
/// the store on a volume works and writes the image.
#[test]
fn unconfined_containers_build_with_the_store_on_a_volume() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let env = TestEnv::new();
    import_rbuild(&docker, &env, "rbuild-bin:2");
    let ctx = env.context(&[
        ("Dockerfile", file("FROM scratch\nCOPY hello /hello\n")),
        ("hello", file("from a container\n")),
    ]);
    let volume = env.path("volume");
    std::fs::create_dir(&volume).expect("volume dir");
    run_ok(
        std::process::Command::new("chown")
            .arg("1000:1000")
            .arg(&volume),
    );
    let run = |root: &str| {
        docker
            .command(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--user",
                "1000:1000",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "-v",
                "/usr:/usr:ro",
                "-v",
                &format!("{}:/ctx:ro", ctx.display()),
                "-v",
                &format!("{}:/volume", volume.display()),
                "-e",
                "HOME=/tmp",
                "rbuild-bin:2",
                "/rbuild",
                "--root",
                root,
                "build",
                "-o",
                "type=oci,dest=/volume/image.tar",
                "/ctx",
            ])
            .output()
            .expect("run docker")
    };
    let on_overlay = run("/tmp/store");
    let stderr = String::from_utf8_lossy(&on_overlay.stderr);
    assert!(!on_overlay.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot hold layers") && stderr.contains("--root DIR"),
        "{stderr}"
    );
    let on_volume = run("/volume/store");
    assert!(
        on_volume.status.success(),
        "{}",
        describe_output(&on_volume)
    );
    let built = crate::support::oci::OciImage::open(&volume.join("image.tar"));
    assert_eq!(built.tree().text("hello"), "from a container\n");
}
