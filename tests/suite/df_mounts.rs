//! RUN --mount beyond runmounts.rs, mirroring BuildKit's dockerfile_runmount_test.go,
//! dockerfile_mount_test.go and dockerfile_secrets_test.go, and reference.md "RUN --mount".

use crate::support::*;

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
/// from an environment variable (`--secret id=,env=`), testTmpfsMount with `size`, and
/// testNetworkHost-ish `--network=default` running normally.
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
            "-o",
            &format!("type=oci,dest={}", archive.display()),
            path_str(&ctx),
        ])
        .env("SECRET_FROM_ENV", "twelve chars")
        .output()
        .expect("run rbuild");
    assert!(output.status.success(), "{}", describe_output(&output));
    let image = OciImage::open(&archive);
    let tree = image.tree();
    assert_eq!(tree.text("secret-meta"), "1000:2000 440\n");
    assert_eq!(tree.text("secret-size").trim(), "11");
    assert_eq!(tree.text("env-secret-size").trim(), "12");
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
