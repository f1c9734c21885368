//! RUN options: --mount (bind, cache, tmpfs, secret), --network, heredocs. Mirrors BuildKit's
//! dockerfile_runmount_test.go, dockerfile_secrets_test.go, dockerfile_heredoc_test.go and
//! reference.md "RUN --mount".
//!
//! RUN --mount beyond runmounts.rs, mirroring BuildKit's dockerfile_runmount_test.go,
//! dockerfile_mount_test.go and dockerfile_secrets_test.go, and reference.md "RUN --mount".

use crate::support::*;

fn build(env: &TestEnv, name: &str, entries: &[(&str, Content)], args: &[&str]) -> OciImage {
    let ctx = env.context(entries);
    env.build_oci(name, args, &ctx).1
}

/// testMountContext / reference "RUN --mount=type=bind": the context, read-only, not in the layer.
#[test]
fn bind_mount_of_the_context_is_read_only_and_leaves_no_trace() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "mount-bind",
        &[
            ("Dockerfile", file("FROM busybox:latest\nRUN --mount=target=/src cat /src/data.txt > /copied && (touch /src/new 2>/dev/null && echo rw || echo ro) > /state\nRUN --mount=type=bind,source=sub,target=/mnt/sub,rw echo scratch > /mnt/sub/written && ls /mnt/sub > /listing\n")),
            ("data.txt", file("context data\n")),
            ("sub/inner", file("inner\n")),
        ],
        &[],
    );
    let tree = image.tree();
    assert_eq!(tree.text("copied"), "context data\n");
    assert_eq!(tree.text("state"), "ro\n");
    assert_eq!(
        tree.text("listing"),
        "inner\nwritten\n",
        "rw: writes are visible during the step"
    );
    assert!(
        !tree.contains("src") && !tree.contains("mnt/sub/written"),
        "mount points and rw writes are not committed: {:?}",
        tree.children("")
    );
    assert!(
        !std::path::Path::new(&env.dir().join("context-0/sub/written")).exists(),
        "rw never writes into the context"
    );
}

/// testCacheMountDefault: a cache dir persists between builds and never enters a layer.
#[test]
fn cache_mount_persists_across_builds() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\nARG ROUND\nRUN --mount=type=cache,target=/cache echo $ROUND >> /cache/log && cat /cache/log > /seen\n";
    let first = build(
        &env,
        "cache-1",
        &[("Dockerfile", file(dockerfile))],
        &["--build-arg", "ROUND=one"],
    );
    assert_eq!(first.tree().text("seen"), "one\n");
    let second = build(
        &env,
        "cache-2",
        &[("Dockerfile", file(dockerfile))],
        &["--build-arg", "ROUND=two"],
    );
    assert_eq!(second.tree().text("seen"), "one\ntwo\n");
    assert!(!second.tree().contains("cache/log"));
}

/// testTmpfsMount.
#[test]
fn tmpfs_mount() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "mount-tmpfs",
        &[("Dockerfile", file("FROM busybox:latest\nRUN --mount=type=tmpfs,target=/scratch echo x > /scratch/f && grep /scratch /proc/mounts | cut -d' ' -f3 > /fstype\n"))],
        &[],
    );
    assert_eq!(image.tree().text("fstype"), "tmpfs\n");
    assert!(!image.tree().contains("scratch/f"));
}

/// dockerfile_secrets_test.go testSecretFileParams: the value reaches the step, never the
/// image, its history or its config.
#[test]
fn secrets_never_land_in_the_image() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let secret = env
        .write_tree("secrets", &[("token", file("s3cr3t-value-42"))])
        .join("token");
    // The expected value comes from a bind-mounted context file, so that it is not written in
    // the Dockerfile (whose RUN lines are the history).
    let ctx = env.context(&[
        ("expected", file("s3cr3t-value-42")),
        (
            "Dockerfile",
            file("FROM busybox:latest\nRUN --mount=target=/ctx --mount=type=secret,id=token [ \"$(cat /run/secrets/token)\" = \"$(cat /ctx/expected)\" ] && stat -c %a /run/secrets/token > /mode\nRUN --mount=target=/ctx --mount=type=secret,id=token,env=TOKEN [ \"$TOKEN\" = \"$(cat /ctx/expected)\" ] && echo ok > /env-ok\nRUN --mount=type=secret,id=absent echo optional > /optional\n"),
        ),
    ]);
    let (archive, image) = env.build_oci(
        "secrets",
        &["--secret", &format!("id=token,src={}", secret.display())],
        &ctx,
    );
    assert_eq!(image.tree().text("mode"), "400\n");
    assert_eq!(image.tree().text("env-ok"), "ok\n");
    assert_eq!(
        image.tree().text("optional"),
        "optional\n",
        "a secret not given is skipped unless required"
    );
    let bytes = std::fs::read(&archive).expect("read archive");
    assert!(
        !bytes.windows(15).any(|w| w == b"s3cr3t-value-42"),
        "the secret's value is nowhere in the archive"
    );
    let required = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=secret,id=missing,required true\n"),
    )]);
    let stderr = env.rbuild_err(["build", required.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("missing") && stderr.contains("Dockerfile:2:"),
        "{stderr}"
    );
}

/// testNetworkNone.
#[test]
fn network_none_has_only_loopback() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build(
        &env,
        "net-none",
        &[("Dockerfile", file("FROM busybox:latest\nRUN --network=none ls /sys/class/net > /nets\nRUN ls /sys/class/net | wc -l > /host-count\n"))],
        &[],
    );
    assert_eq!(image.tree().text("nets"), "lo\n");
}

/// dockerfile_heredoc_test.go testRunBasicHeredoc, testRunShebangHeredoc, testCopyHeredoc.
#[test]
fn heredocs_for_run_and_copy() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\nARG NAME=world\n\
RUN <<EOF\necho \"hello $NAME\" > /basic\necho second >> /basic\nEOF\n\
RUN <<EOF\n#!/bin/sh\necho \"shebang $0\" > /shebang\nEOF\n\
RUN cat <<A > /first && cat <<B > /second\none\nA\ntwo\nB\n\
COPY <<EOF /copied.txt\nname=$NAME\nEOF\n\
COPY <<'EOF' /literal.txt\nname=$NAME\nEOF\n";
    let image = build(&env, "heredocs", &[("Dockerfile", file(dockerfile))], &[]);
    let tree = image.tree();
    assert_eq!(tree.text("basic"), "hello world\nsecond\n");
    assert_eq!(tree.text("shebang"), "shebang /dev/pipes/EOF\n");
    assert_eq!(tree.text("first"), "one\n");
    assert_eq!(tree.text("second"), "two\n");
    assert_eq!(tree.text("copied.txt"), "name=world\n");
    assert_eq!(tree.text("literal.txt"), "name=$NAME\n");
    assert_eq!(tree.node("copied.txt").mode, 0o644);
    assert!(!tree.contains("dev/pipes"));
}

/// dockerfile_ssh_test.go testSSHSocketParams: the agent socket given with --ssh is mounted
/// at the default target and SSH_AUTH_SOCK points at it; without --ssh the mount is skipped.
#[test]
fn ssh_agent_socket_mount() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let socket = env.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind a unix socket");
    let _ = std::process::Command::new("chmod")
        .arg("0777")
        .arg(&socket)
        .status();
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=ssh [ -S \"$SSH_AUTH_SOCK\" ] && echo \"$SSH_AUTH_SOCK\" > /sock\nRUN --mount=type=ssh,id=other echo skipped > /skipped\n"),
    )]);
    let (_, image) = env.build_oci(
        "ssh",
        &["--ssh", &format!("default={}", socket.display())],
        &ctx,
    );
    assert_eq!(image.tree().text("sock"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(image.tree().text("skipped"), "skipped\n");
    assert!(
        !image.tree().contains("run/buildkit"),
        "the mount point is not committed"
    );
    let stderr = env.rbuild_err([
        "build",
        "--ssh",
        &format!("default={}", env.path("missing.sock").display()),
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("missing.sock"), "{stderr}");
}

/// One build covering: testMountFromStage (`type=bind,from=<stage>`), a bind from an image
/// (reference "RUN --mount=type=bind": `from` is "build stage, context, or image name"),
/// a bind of a single file, several mounts in one RUN, testCacheMountSharedId (one `id` shared by two targets),
/// testCacheMountUIDGIDMode (`uid`, `gid`, `mode` of a new cache dir), `sharing=locked`,
/// and mount points never left in the layer.
#[test]
fn bind_and_cache_mount_options() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest AS builder\n\
        RUN mkdir /out && echo from-stage > /out/artifact\n\
        FROM busybox:latest\n\
        RUN --mount=type=bind,from=builder,source=/out,target=/in cp /in/artifact /from-stage\n\
        RUN --mount=from=busybox:latest,source=/etc,target=/deep/new/etc grep -c : /deep/new/etc/passwd > /passwd-lines\n\
        RUN --mount=type=bind,source=data.txt,target=/etc/data.txt cat /etc/data.txt > /single-file\n\
        RUN --mount=target=/a --mount=from=builder,target=/b cat /a/data.txt /b/out/artifact > /both\n\
        RUN --mount=type=cache,id=shared,target=/cache-one echo shared > /cache-one/x\n\
        RUN --mount=type=cache,id=shared,target=/cache-two cat /cache-two/x > /shared-id\n\
        RUN --mount=type=cache,target=/owned,uid=1000,gid=2000,mode=0750 stat -c '%u:%g %a' /owned > /cache-owner\n\
        RUN --mount=type=cache,target=/locked,sharing=locked touch /locked/ok && ls /locked > /locked-list\n";
    let image = build_df(
        &env,
        "dfmounts-bind-cache",
        dockerfile,
        &[("data.txt", file("ctx data\n"))],
        &[],
    );
    let tree = image.tree();
    assert_eq!(tree.text("from-stage"), "from-stage\n");
    assert_eq!(tree.text("passwd-lines"), "3\n");
    assert_eq!(tree.text("single-file"), "ctx data\n");
    assert_eq!(tree.text("both"), "ctx data\nfrom-stage\n");
    assert_eq!(tree.text("shared-id"), "shared\n");
    assert_eq!(tree.text("cache-owner"), "1000:2000 750\n");
    assert_eq!(tree.text("locked-list"), "ok\n");
    for gone in [
        "in",
        "deep",
        "a",
        "b",
        "cache-one",
        "cache-two",
        "owned",
        "locked",
    ] {
        assert!(!tree.contains(gone), "mount point {gone} left in the image");
    }
    assert!(
        !tree.contains("etc/data.txt"),
        "a file mount point is not left behind"
    );
}

/// One build covering: testSecretFileParams (`target`, `uid`, `gid`, `mode`), a secret
/// from an environment variable (`--secret id=,env=` and `type=env,src=`), a bare `id=` (the
/// variable of that name when set, else the file of that name, as buildx), testTmpfsMount with
/// `size`, and testNetworkHost-ish `--network=default` running normally.
#[test]
fn secret_options_and_tmpfs_size() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let secret = env
        .write_tree("secrets", &[("token", file("file-secret"))])
        .join("token");
    let dockerfile = "FROM busybox:latest\n\
        RUN --mount=type=secret,id=tok,target=/custom/place,uid=1000,gid=2000,mode=0440 \
            stat -c '%u:%g %a' /custom/place > /secret-meta && wc -c < /custom/place > /secret-size\n\
        RUN --mount=type=secret,id=fromenv wc -c < /run/secrets/fromenv > /env-secret-size\n\
        RUN --mount=type=secret,id=typed --mount=type=secret,id=BARE_VAR --mount=type=secret,id=token \
            cat /run/secrets/typed /run/secrets/BARE_VAR /run/secrets/token > /other-secrets\n\
        RUN --mount=type=tmpfs,target=/small,size=1m grep ' /small ' /proc/mounts | grep -o 'size=[0-9a-z]*' > /tmpfs-size\n\
        RUN --network=default echo net > /net\n";
    let ctx = df_context(&env, dockerfile, &[]);
    let archive = env.path("dfmounts-secret.tar");
    let output = env
        .command([
            "build",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "--secret",
            "id=fromenv,env=SECRET_FROM_ENV",
            "--secret",
            "id=typed,type=env,src=SECRET_FROM_ENV",
            "--secret",
            "id=BARE_VAR",
            "--secret",
            "id=token",
            "-o",
            &format!("type=oci,dest={}", archive.display()),
            path_str(&ctx),
        ])
        .env("SECRET_FROM_ENV", "twelve chars")
        .env("BARE_VAR", "+bare+")
        .current_dir(secret.parent().expect("secrets dir"))
        .output()
        .expect("run rbuild");
    assert!(output.status.success(), "{}", describe_output(&output));
    let image = OciImage::open(&archive);
    let tree = image.tree();
    assert_eq!(tree.text("secret-meta"), "1000:2000 440\n");
    assert_eq!(tree.text("secret-size").trim(), "11");
    assert_eq!(tree.text("env-secret-size").trim(), "12");
    assert_eq!(tree.text("other-secrets"), "twelve chars+bare+file-secret");
    assert_eq!(tree.text("tmpfs-size"), "size=1024k\n");
    assert_eq!(tree.text("net"), "net\n");
    assert!(!tree.contains("custom"));
    let bytes = std::fs::read(&archive).expect("read archive");
    assert!(!bytes.windows(12).any(|w| w == b"twelve chars"));
}

/// reference "RUN --mount=type=bind": `source` is a "source path in the `from`", which may be a
/// single file of an image (as BuildKit's testMountFromImage-style cases bind /etc/passwd).
#[test]
fn bind_mount_of_a_single_file_from_an_image() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfmounts-image-file",
        "FROM busybox:latest\nRUN --mount=from=busybox:latest,source=/etc/passwd,target=/deep/new/passwd grep -c : /deep/new/passwd > /passwd-lines\n",
        &[],
        &[],
    );
    assert_eq!(image.tree().text("passwd-lines"), "3\n");
    assert!(!image.tree().contains("deep"));
}

/// BuildKit's convert_runmount.go: a relative mount `target` is joined to the WORKDIR.
#[test]
fn relative_mount_target_is_under_workdir() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let image = build_df(
        &env,
        "dfmounts-relative",
        "FROM busybox:latest\nWORKDIR /wd\nRUN --mount=type=bind,target=rel ls /wd/rel > /relative\n",
        &[("data.txt", file("ctx data\n"))],
        &[],
    );
    assert_eq!(image.tree().text("relative"), "Dockerfile\ndata.txt\n");
    assert!(!image.tree().contains("wd/rel"));
}
