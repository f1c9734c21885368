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
        ("0:0", "cannot create a user namespace"),
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
                && stderr.contains("Unconfined")
                && stderr.contains("--isolation none"),
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
    let run_as = |user: &str, root: &str| {
        docker
            .command(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--user",
                user,
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
    let run = |root: &str| run_as("1000:1000", root);
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
    // Root in the same unconfined container: the namespaced sandbox too.
    std::fs::remove_file(volume.join("image.tar")).expect("remove the first image");
    let as_root = run_as("0:0", "/volume/root-store");
    assert!(as_root.status.success(), "{}", describe_output(&as_root));
    let built = crate::support::oci::OciImage::open(&volume.join("image.tar"));
    assert_eq!(built.tree().text("hello"), "from a container\n");
}

/// An image of `/rbuild` as `import_rbuild` makes it, plus `/etc/marker` ("as found"), to see
/// that an in-place build puts the container's root back.
fn import_none_image(docker: &Dockerd, env: &TestEnv, tag: &str) {
    let image = env.path("rbuild-none-image.tar");
    let binary = std::fs::read(rbuild_binary()).expect("rbuild binary");
    std::fs::write(
        &image,
        layer_tar(&[
            TarEntry::file("rbuild", binary).mode(0o755),
            TarEntry::symlink("lib", "usr/lib"),
            TarEntry::symlink("lib64", "usr/lib64"),
            TarEntry::symlink("bin", "usr/bin"),
            TarEntry::dir("tmp").mode(0o1777),
            TarEntry::dir("etc"),
            TarEntry::file("etc/marker", b"as found\n").mode(0o644),
        ]),
    )
    .expect("image tar");
    docker.import_tar(&image, tag);
}

/// `--isolation none`, kaniko's model, as root in a container with Docker's default security
/// (no namespace can be made there): a multi-stage build (COPY --from, a deletion, a new user,
/// a step as that user, a secret) gives the image the namespaced sandbox gives (same files,
/// kinds, modes, owners, contents and config), the secret is in no layer, and the container's
/// root is as it was afterwards (its files back, the build's gone), so a second build runs.
#[test]
fn isolation_none_builds_as_root_in_a_default_container_and_puts_the_root_back() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    import_none_image(&docker, &env, "rbuild-none:1");
    let dockerfile = "FROM busybox:latest AS build\n\
        RUN echo built > /artifact && mkdir -p /deep/dir && echo x > /deep/dir/y\n\
        FROM busybox:latest\n\
        COPY --from=build /artifact /artifact\n\
        COPY --from=build /deep /deep\n\
        RUN rm /bin/ls && echo $((6*7)) > /answer && echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd \
            && echo app:x:1000: >> /etc/group && mkdir -p /home/app && chown 1000:1000 /home/app\n\
        RUN --mount=type=secret,id=tok,mode=0444 cat /run/secrets/tok > /tok-copy\n\
        RUN --mount=type=cache,target=/var/cache/app echo kept > /var/cache/app/entry\n\
        RUN --mount=type=cache,target=/var/cache/app --mount=type=tmpfs,target=/scratch \
            cat /var/cache/app/entry > /from-cache && echo gone > /scratch/x\n\
        USER app\n\
        WORKDIR /home/app\n\
        RUN id -u > whoami && touch mine\n\
        CMD [\"sh\"]\n";
    let ctx = env.context(&[
        ("Dockerfile", file(dockerfile)),
        ("tok.txt", file("s3cret\n")),
    ]);
    // COPY onto a volume of the container, by its path or through a symlink: refused.
    let escape = env.context(&[
        (
            "Dockerfile",
            file("FROM busybox:latest\nRUN ln -s /out /link\nCOPY hello /link/escaped\n"),
        ),
        ("hello", file("must not reach the volume\n")),
        (
            "Dockerfile.bind",
            file("FROM busybox:latest\nRUN --mount=type=bind,target=/src cat /src/hello\n"),
        ),
        (
            "Dockerfile.netnone",
            file("FROM busybox:latest\nRUN --network=none true\n"),
        ),
        (
            "Dockerfile.mountvol",
            file("FROM busybox:latest\nRUN --mount=type=tmpfs,target=/out/tmpdir true\n"),
        ),
    ]);
    let out = env.path("out");
    std::fs::create_dir(&out).expect("out dir");
    // The namespaced build, on the host, as the oracle.
    let (_, sandboxed) = env.build_oci(
        "sandboxed",
        &[
            "--secret",
            &format!("id=tok,src={}", ctx.join("tok.txt").display()),
        ],
        &ctx,
    );
    let script = "set -e\n\
        R='/rbuild --root /store'\n\
        $R load -i /fixtures/busybox-oci.tar >/dev/null\n\
        $R build -q --isolation none --secret id=tok,src=/ctx/tok.txt -o type=oci,dest=/out/first.tar /ctx\n\
        cat /etc/marker\n\
        test ! -e /artifact && test ! -e /answer && test -L /bin\n\
        $R build -q --no-cache --secret id=tok,src=/ctx/tok.txt -o type=oci,dest=/out/second.tar /ctx\n\
        cat /etc/marker\n\
        if $R build -q /escape 2>/out/escape.err; then echo escaped; fi\n\
        if $R build -q -f /escape/Dockerfile.bind /escape 2>/out/bind.err; then echo bound; fi\n\
        if $R build -q -f /escape/Dockerfile.netnone /escape 2>/out/netnone.err; then echo isolated; fi\n\
        if $R build -q -f /escape/Dockerfile.mountvol /escape 2>/out/mountvol.err; then echo mounted; fi\n\
        cat /etc/marker\n";
    let output = docker
        .command(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0:0",
            "-v",
            "/usr:/usr:ro",
            "-v",
            &format!("{}:/fixtures:ro", fixtures.display()),
            "-v",
            &format!("{}:/ctx:ro", ctx.display()),
            "-v",
            &format!("{}:/out", out.display()),
            "-v",
            &format!("{}:/escape:ro", escape.display()),
            "--tmpfs",
            "/store:exec",
            // As the rbuild image presets it: `load` needs no namespace either.
            "-e",
            "RBUILD_ISOLATION=none",
            "rbuild-none:1",
            "/bin/sh",
            "-c",
            script,
        ])
        .output()
        .expect("run docker");
    assert!(output.status.success(), "{}", describe_output(&output));
    let refused = std::fs::read_to_string(out.join("escape.err")).unwrap_or_default();
    assert!(
        refused.contains("never writes at or below a mount point")
            && !out.join("escaped").exists()
            && !String::from_utf8_lossy(&output.stdout).contains("escaped"),
        "{refused}"
    );
    // What needs a mount or a namespace is refused, naming why.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!out.join("tmpdir").exists(), "nothing made in the volume");
    for (file, what) in [
        ("bind.err", "cannot mount"),
        ("netnone.err", "network namespace"),
        ("mountvol.err", "mount point of the container"),
    ] {
        let text = std::fs::read_to_string(out.join(file)).unwrap_or_default();
        assert!(text.contains(what), "{file}: {text}");
    }
    assert!(
        !stdout.contains("bound") && !stdout.contains("isolated") && !stdout.contains("mounted"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .matches("as found")
            .count(),
        3,
        "the root is put back after each build: {}",
        describe_output(&output)
    );
    for name in ["first.tar", "second.tar"] {
        let in_place = crate::support::oci::OciImage::open(&out.join(name));
        let (a, b) = (in_place.tree(), sandboxed.tree());
        let listing = |tree: &crate::support::oci::Tree| -> Vec<String> {
            tree.paths()
                .map(|p| {
                    let node = tree.node(p);
                    format!(
                        "{p} {:?} {:o} {}:{}",
                        node.kind, node.mode, node.uid, node.gid
                    )
                })
                .collect()
        };
        assert_eq!(
            listing(a),
            listing(b),
            "{name}: the same files, kinds, modes, owners"
        );
        for path in [
            "artifact",
            "deep/dir/y",
            "answer",
            "tok-copy",
            "from-cache",
            "home/app/whoami",
            "etc/passwd",
        ] {
            assert_eq!(a.text(path), b.text(path), "{name}: {path}");
        }
        assert_eq!(a.text("home/app/whoami"), "1000\n");
        assert_eq!(a.text("tok-copy"), "s3cret\n");
        assert!(
            !a.contains("bin/ls") && !a.contains("run/secrets"),
            "{name}"
        );
        assert_eq!(
            a.text("from-cache"),
            "kept\n",
            "{name}: the cache mount, moved in and back"
        );
        assert!(
            !a.contains("var/cache/app") && !a.contains("scratch"),
            "{name}"
        );
        assert_eq!(in_place.layer_count(), sandboxed.layer_count(), "{name}");
        for field in ["User", "WorkingDir", "Cmd", "Env"] {
            assert_eq!(
                in_place.config()["config"][field],
                sandboxed.config()["config"][field],
                "{name}: {field}"
            );
        }
        // The secret is in no layer.
        for index in 0..in_place.layer_count() {
            assert!(
                !in_place
                    .layer(index)
                    .paths()
                    .iter()
                    .any(|p| p.starts_with("run/secrets")),
                "{name}: layer {index}"
            );
        }
    }
}

/// Where rbuild sees no container (a chroot on a tmpfs in a private mount namespace: no
/// /.dockerenv or /run/.containerenv, no `container` variable, a tmpfs root, the machine's
/// own cgroup), `--isolation none` is refused, from the flag and from RBUILD_ISOLATION alike;
/// `--force-isolation-none` builds, and the chroot's root is put back afterwards.
#[test]
fn isolation_none_is_refused_where_no_container_is_seen() {
    if !require_root() || !require_command("unshare") || !require_command("chroot") {
        return;
    }
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo in-place > /built\n"),
    )]);
    let root = env.path("chroot");
    std::fs::create_dir(&root).expect("chroot dir");
    let script = format!(
        "set -e\n\
         D={root}\n\
         mount -t tmpfs tmpfs $D\n\
         mkdir -p $D/usr $D/proc $D/dev $D/tmp $D/store $D/ctx $D/fixtures $D/etc\n\
         ln -s usr/lib $D/lib && ln -s usr/lib64 $D/lib64 && ln -s usr/bin $D/bin\n\
         cp {rbuild} $D/rbuild\n\
         echo 'as found' > $D/etc/marker\n\
         cp -r {ctx}/. $D/ctx/\n\
         mount --bind /usr $D/usr && mount -t proc proc $D/proc && mount --bind /dev $D/dev\n\
         mount --bind {fixtures} $D/fixtures\n\
         exec chroot $D /usr/bin/env -i PATH=/usr/bin:/bin /bin/sh -c '\n\
           RBUILD_ISOLATION=none /rbuild --root /store load -i /fixtures/busybox-oci.tar >/dev/null\n\
           echo flag:; /rbuild --root /store build --isolation none /ctx 2>&1 || true\n\
           echo env:; RBUILD_ISOLATION=none /rbuild --root /store build /ctx 2>&1 || true\n\
           echo forced:; /rbuild --root /store build -q --isolation none --force-isolation-none \
             -o type=oci,dest=/tmp/image.tar /ctx 2>&1\n\
           echo after:; cat /etc/marker; test ! -e /built && echo no-build-files\n\
           tar -xOf /tmp/image.tar index.json >/dev/null && echo image-written'\n",
        root = root.display(),
        rbuild = rbuild_binary().display(),
        ctx = ctx.display(),
        fixtures = fixtures.display(),
    );
    let output = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", describe_output(&output));
    let section = |name: &str| -> String {
        stdout
            .split(&format!("{name}:\n"))
            .nth(1)
            .and_then(|rest| rest.split(":\n").next())
            .unwrap_or_default()
            .to_string()
    };
    for refused in ["flag", "env"] {
        assert!(
            section(refused).contains("does not look like a container")
                && section(refused).contains("--force-isolation-none"),
            "{refused}: {stdout}"
        );
    }
    assert!(
        stdout.contains("after:\nas found\nno-build-files\nimage-written"),
        "{}",
        describe_output(&output)
    );
}

/// The rbuild image (`scripts/image`, a docker-archive; CI makes it and names it in
/// RBUILD_IMAGE), loaded into a private dockerd and run as root in a default container, as a
/// CI job would: a multi-stage Dockerfile with a base pulled from a registry, RUN, COPY
/// --from and ADD of a git repository (git runs from the image's own /rbuild), then a second
/// build in the same container.
#[test]
fn the_rbuild_image_builds_in_a_default_container() {
    let image = std::env::var_os("RBUILD_IMAGE").map(std::path::PathBuf::from);
    if !gate(
        "the rbuild image (RBUILD_IMAGE=FILE after scripts/image FILE)",
        image.as_ref().is_some_and(|i| i.exists()),
    ) {
        return;
    }
    let Some(image) = image else { return };
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let Some(registry) = crate::support::registry::Registry::start() else {
        return;
    };
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let loaded = docker.run_ok(&["load", "-i", image.to_str().expect("utf-8")]);
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("rbuild"),
        "{}",
        describe_output(&loaded)
    );
    let env = TestEnv::new();
    let repo = env.path("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("notes.txt"), "from git\n").expect("write");
    let git = |args: &[&str]| crate::support::git::git_in(&repo, args);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    git(&["tag", "v1"]);
    let git_server = crate::support::git::GitServer::serve(&env.path(""));
    // By a name the static rbuild resolves (from /etc/hosts: no NSS library in the image).
    let port = registry.host.rsplit(':').next().expect("port");
    let base = format!("registry.test:{port}/library/busybox:latest");
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM {base} AS build\nRUN echo built > /artifact\n\
             FROM {base}\nCOPY --from=build /artifact /artifact\n\
             ADD {}#v1 /src\nRUN echo $((6*7)) > /answer\n",
            git_server.url("repo")
        )),
    )]);
    let out = env.path("out");
    std::fs::create_dir(&out).expect("out dir");
    // As GitLab runs a job in an image whose entrypoint is rbuild: `entrypoint: [""]` and a
    // script of lines for the image's shell.
    let script = "set -e\n\
        rbuild info | grep '^isolation: none'\n\
        rbuild --tls-verify=false build -q -o type=oci,dest=/out/first.tar /workspace\n\
        rbuild --tls-verify=false build -q --no-cache -t again -o type=oci,dest=/out/second.tar /workspace\n\
        test -x /rbuild/bin/rbuild && echo still-here\n";
    let output = docker
        .command(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--add-host",
            "registry.test:127.0.0.1",
            "-v",
            &format!("{}:/workspace:ro", ctx.display()),
            "-v",
            &format!("{}:/out", out.display()),
            "--entrypoint",
            "",
            "rbuild:latest",
            "/bin/sh",
            "-c",
            script,
        ])
        .output()
        .expect("run docker");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("still-here"),
        "{}",
        describe_output(&output)
    );
    for name in ["first.tar", "second.tar"] {
        let built = crate::support::oci::OciImage::open(&out.join(name));
        let tree = built.tree();
        assert_eq!(tree.text("artifact"), "built\n", "{name}");
        assert_eq!(tree.text("answer"), "42\n", "{name}");
        assert_eq!(tree.text("src/notes.txt"), "from git\n", "{name}");
        assert!(
            tree.node("bin/busybox").is_file(),
            "{name}: the pulled base"
        );
        assert!(
            !tree.contains("rbuild"),
            "{name}: nothing of the image's own"
        );
    }
}

/// `docker stop` during an in-place build (SIGTERM to rbuild, the container's PID 1): the
/// running step is ended and the container's root put back before rbuild exits.
#[test]
fn a_stopped_in_place_build_still_puts_the_root_back() {
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let env = TestEnv::new();
    import_none_image(&docker, &env, "rbuild-none:2");
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\nRUN echo changed > /changed && touch /out/started && sleep 120\n",
        ),
    )]);
    let out = env.path("out");
    std::fs::create_dir(&out).expect("out dir");
    let name = format!("rbuild-stop-{}", std::process::id());
    docker.run_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        "/usr:/usr:ro",
        "-v",
        &format!("{}:/fixtures:ro", fixtures.display()),
        "-v",
        &format!("{}:/ctx:ro", ctx.display()),
        "-v",
        &format!("{}:/out", out.display()),
        "--tmpfs",
        "/store:exec",
        "-e",
        "RBUILD_ISOLATION=none",
        "rbuild-none:2",
        "/bin/sh",
        "-c",
        "/rbuild --root /store load -i /fixtures/busybox-oci.tar >/dev/null && \
         exec /rbuild --root /store build /ctx",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !out.join("started").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let started = std::time::Instant::now();
    docker.run_ok(&["stop", "-t", "60", &name]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "rbuild ended the step rather than waiting for it"
    );
    let exported = env.path("root.tar");
    docker.run_ok(&["export", "-o", exported.to_str().expect("utf-8"), &name]);
    let logs = docker.run_ok(&["logs", &name]);
    let _ = docker.command(&["rm", "-f", &name]).output();
    let listing = run_ok(std::process::Command::new("tar").arg("-tf").arg(&exported));
    let paths: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .collect();
    assert!(
        paths.contains(&"etc/marker") && paths.contains(&"rbuild") && !paths.contains(&"changed"),
        "the root as found, without the step's file: {paths:?}\n{}",
        describe_output(&logs)
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("bin/")),
        "/bin is the image's link again, not busybox's dir: {paths:?}"
    );
}
