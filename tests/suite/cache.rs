//! The build cache: what hits and what misses (BuildKit's rules), metadata steps that never
//! break the chain, --no-cache-filter, and several rbuild processes sharing one store.

use crate::support::*;

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Step numbers reported CACHED in plain progress output (`[3/7] CACHED`, `[name 3/7] CACHED`).
fn cached_steps(stderr: &str) -> Vec<usize> {
    stderr
        .lines()
        .filter_map(|line| line.strip_suffix("] CACHED"))
        .filter_map(|head| head.split('/').next())
        .filter_map(|head| head.rsplit(['[', ' ']).next())
        .filter_map(|number| number.parse().ok())
        .collect()
}

const DOCKERFILE: &str = "FROM busybox:latest\n\
COPY a.txt /a.txt\n\
LABEL stage=one\n\
ARG FLAVOUR=plain\n\
COPY b.txt /b.txt\n\
RUN echo \"$FLAVOUR $RANDOM$RANDOM\" > /flavour\n\
ENV MODE=fast\n\
RUN echo \"$MODE $RANDOM\" > /mode\n";

fn build(env: &TestEnv, ctx: &std::path::Path, args: &[&str]) -> (String, OciImage) {
    let out = env.path(&format!(
        "cache-{}.tar",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    let dest = format!("type=oci,dest={}", out.display());
    all.extend(["-o", &dest, ctx.to_str().expect("utf-8")]);
    let output = env.rbuild(all);
    assert!(output.status.success(), "{}", describe_output(&output));
    (stderr_of(&output), OciImage::open(&out))
}

#[test]
fn hit_and_miss_matrix() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[
        ("Dockerfile", file(DOCKERFILE)),
        ("a.txt", file("a\n")),
        ("b.txt", file("b\n")),
        ("ignored.log", file("1\n")),
        (".dockerignore", file("*.log\n")),
    ]);
    let (_, first) = build(&env, &ctx, &[]);
    // Unchanged: every step hits, the layers are reused, and the image is the same.
    let (stderr, again) = build(&env, &ctx, &[]);
    assert_eq!(cached_steps(&stderr), vec![2, 3, 4, 5, 6, 7, 8], "{stderr}");
    assert_eq!(again.diff_ids(), first.diff_ids());
    assert_eq!(
        again.tree().text("flavour"),
        first.tree().text("flavour"),
        "a hit reuses the stored layer"
    );
    assert_eq!(
        again.config_digest, first.config_digest,
        "same image id on a fully cached rebuild"
    );

    // Only the mtime changes: still a hit. An ignored file changes: still a hit.
    let touch = env
        .command_as_user("touch")
        .args(["-d", "2030-01-01"])
        .arg(ctx.join("a.txt"))
        .output()
        .expect("touch");
    assert!(touch.status.success());
    let write = env
        .command_as_user("sh")
        .arg("-c")
        .arg(format!("echo 2 > {}", ctx.join("ignored.log").display()))
        .output()
        .expect("write");
    assert!(write.status.success());
    let (stderr, _) = build(&env, &ctx, &[]);
    assert_eq!(
        cached_steps(&stderr),
        vec![2, 3, 4, 5, 6, 7, 8],
        "mtime and ignored files do not count: {stderr}"
    );

    // A build arg: misses from the first RUN after its ARG; the COPY after the ARG and the
    // metadata steps before that RUN hit. (Metadata steps after a miss get new timestamps.)
    let (stderr, changed) = build(&env, &ctx, &["--build-arg", "FLAVOUR=spicy"]);
    assert_eq!(cached_steps(&stderr), vec![2, 3, 4, 5], "{stderr}");
    assert!(changed.tree().text("flavour").starts_with("spicy "));
    assert_ne!(
        changed.tree().text("mode"),
        first.tree().text("mode"),
        "the RUN after a miss runs again"
    );

    // Content of a COPY source: misses from that COPY on.
    let write = env
        .command_as_user("sh")
        .arg("-c")
        .arg(format!("echo B > {}", ctx.join("b.txt").display()))
        .output()
        .expect("write");
    assert!(write.status.success());
    let (stderr, _) = build(&env, &ctx, &[]);
    assert_eq!(cached_steps(&stderr), vec![2, 3, 4], "{stderr}");

    // Its mode: a miss too.
    let chmod = env
        .command_as_user("chmod")
        .arg("600")
        .arg(ctx.join("b.txt"))
        .output()
        .expect("chmod");
    assert!(chmod.status.success());
    let (stderr, _) = build(&env, &ctx, &[]);
    assert_eq!(cached_steps(&stderr), vec![2, 3, 4], "{stderr}");

    // Its owner (root can change it; rbuild sees the new owner): a miss as well.
    if is_root() {
        // Readable again (mode 644, as in the first builds), but owned by someone else.
        let _ = std::process::Command::new("chmod")
            .arg("644")
            .arg(ctx.join("b.txt"))
            .status();
        let _ = std::process::Command::new("chown")
            .arg("4242")
            .arg(ctx.join("b.txt"))
            .status();
        let (stderr, _) = build(&env, &ctx, &[]);
        assert_eq!(
            cached_steps(&stderr),
            vec![2, 3, 4],
            "an owner change misses: {stderr}"
        );
    }

    // Only an xattr of a COPY source: a miss, and the new value is in the image (BuildKit
    // sends and copies xattrs; conformance case copy-090-xattrs).
    if xattr::set(ctx.join("b.txt"), "user.tag", b"one").is_ok() {
        let (stderr, _) = build(&env, &ctx, &[]);
        assert_eq!(cached_steps(&stderr), vec![2, 3, 4], "{stderr}");
        xattr::set(ctx.join("b.txt"), "user.tag", b"two").expect("set the xattr again");
        let (stderr, image) = build(&env, &ctx, &[]);
        assert_eq!(
            cached_steps(&stderr),
            vec![2, 3, 4],
            "an xattr change misses: {stderr}"
        );
        assert_eq!(
            image
                .tree()
                .node("b.txt")
                .xattrs
                .get("user.tag")
                .map(Vec::as_slice),
            Some(&b"two"[..])
        );
    }

    // ENV value: the RUN after it misses.
    let edited = DOCKERFILE.replace("MODE=fast", "MODE=slow");
    let ctx2 = env.context(&[
        ("Dockerfile", file(edited)),
        ("a.txt", file("a\n")),
        ("b.txt", file("B\n")),
    ]);
    let (stderr, _) = build(&env, &ctx2, &[]);
    assert!(!cached_steps(&stderr).contains(&8), "{stderr}");
}

#[test]
fn no_cache_filter_rebuilds_only_the_named_stage() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest AS one\nRUN echo $RANDOM > /one\nFROM busybox:latest AS two\nRUN echo $RANDOM > /two\nFROM scratch\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n"),
    )]);
    let (_, first) = build(&env, &ctx, &[]);
    let (_, second) = build(&env, &ctx, &["--no-cache-filter", "two"]);
    assert_eq!(first.tree().text("one"), second.tree().text("one"));
    assert_ne!(first.tree().text("two"), second.tree().text("two"));
}

/// Four rbuild processes on one store at once, sharing a base and one RUN step: all succeed,
/// each gets its own result, and the shared step ran once (it counts its runs in a cache
/// mount).
#[test]
fn concurrent_builds_share_one_store_and_run_a_shared_step_once() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=cache,id=counter,target=/count echo ran >> /count/runs && sleep 2 && echo shared > /shared\nARG N\nRUN echo $N > /n\n"),
    )]);
    let children: Vec<_> = (0..4)
        .map(|n| {
            let out = env.path(&format!("concurrent-{n}.tar"));
            let mut command = env.command([
                "build".to_string(),
                "-q".to_string(),
                "--build-arg".to_string(),
                format!("N={n}"),
                "-o".to_string(),
                format!("type=oci,dest={}", out.display()),
                ctx.to_str().expect("utf-8").to_string(),
            ]);
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            (out, command.spawn().expect("spawn rbuild"))
        })
        .collect();
    let mut shared_layers = Vec::new();
    for (n, (out, child)) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("wait");
        assert!(
            output.status.success(),
            "build {n}: {}",
            describe_output(&output)
        );
        let image = OciImage::open(&out);
        assert_eq!(image.tree().text("n"), format!("{n}\n"));
        assert_eq!(image.tree().text("shared"), "shared\n");
        shared_layers.push(image.diff_ids()[1].clone());
    }
    shared_layers.dedup();
    assert_eq!(shared_layers.len(), 1, "one layer for the shared step");
    let counter = env
        .store()
        .join("cache-mounts")
        .join(sha256_hex(b"counter"))
        .join("runs");
    let runs =
        std::fs::read_to_string(&counter).unwrap_or_else(|e| panic!("{}: {e}", counter.display()));
    assert_eq!(runs, "ran\n", "the shared step ran exactly once");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `rbuild df` and `rbuild prune`: cache-only layers and cache mounts go, what an image uses
/// stays; `--all` also drops images without a name.
#[test]
fn df_and_prune() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let kept = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo kept > /kept\n"),
    )]);
    env.rbuild_ok(["build", "-q", "-t", "kept:1", kept.to_str().expect("utf-8")]);
    let temporary = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN --mount=type=cache,target=/c echo x > /c/x && echo gone > /gone\nRUN echo second > /second\n"),
    )]);
    let untagged = env.rbuild_ok(["build", "-q", temporary.to_str().expect("utf-8")]);
    let usage = env.rbuild_ok(["df"]);
    let row = |name: &str| {
        usage
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().rev().nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        row("Images"),
        "3",
        "busybox, kept:1 and the untagged one: {usage}"
    );
    assert_eq!(row("Cache mounts"), "1", "{usage}");

    let report = env.rbuild_ok(["prune"]);
    assert!(report.contains("1 cache mounts"), "{report}");
    let usage = env.rbuild_ok(["df"]);
    assert!(
        usage
            .lines()
            .any(|l| l.starts_with("Build cache") && l.contains(" 0 ")),
        "{usage}"
    );
    // Images still export whole, and a rebuild runs again (its cache is gone).
    let out = env.path("kept.tar");
    env.rbuild_ok(["save", "-o", out.to_str().expect("utf-8"), "kept:1"]);
    assert_eq!(OciImage::open(&out).tree().text("kept"), "kept\n");
    let rebuilt = env.rbuild([
        "build",
        "--progress",
        "plain",
        kept.to_str().expect("utf-8"),
    ]);
    assert!(
        !String::from_utf8_lossy(&rebuilt.stderr).contains("CACHED"),
        "{}",
        describe_output(&rebuilt)
    );

    let report = env.rbuild_ok(["prune", "--all"]);
    assert!(
        report.contains("Deleted 1 images") || report.contains("Deleted 2 images"),
        "{report}"
    );
    let images = env.rbuild_ok(["images", "-q"]);
    assert!(
        !images.contains(&untagged.trim()[7..19]),
        "the untagged image is gone: {images}"
    );
    let stderr = env.rbuild_err(["prune", "--filter", "since=1h"]);
    assert!(stderr.contains("until"), "{stderr}");
}

/// --cache-to / --cache-from type=local: a cache exported from store A makes every step of the
/// same build hit in a fresh store B, with the same image id; only the blobs of hits are read;
/// mounts=true carries cache mounts too; an unchanged export writes nothing new.
#[test]
fn cache_travels_between_stores_through_a_directory() {
    let Some(a) = TestEnv::with_busybox() else {
        return;
    };
    let Some(b) = TestEnv::with_busybox() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\nCOPY in.txt /in.txt\nENV K=v\n\
                      RUN --mount=type=cache,id=travel,target=/c echo from-a > /c/file && echo $RANDOM$RANDOM > /random\n\
                      LABEL done=yes\n";
    let cache_dir = a.path("shared-cache");
    let ctx_a = a.context(&[("Dockerfile", file(dockerfile)), ("in.txt", file("in\n"))]);
    let to = format!(
        "type=local,dest={},mode=max,mounts=true",
        cache_dir.display()
    );
    let id_a = a.rbuild_ok([
        "build",
        "-q",
        "--cache-to",
        &to,
        ctx_a.to_str().expect("utf-8"),
    ]);
    let out_a = a.path("a.tar");
    a.rbuild_ok(["save", "-o", out_a.to_str().expect("utf-8"), id_a.trim()]);

    let ctx_b = b.context(&[("Dockerfile", file(dockerfile)), ("in.txt", file("in\n"))]);
    let from = format!("type=local,src={}", cache_dir.display());
    let output = b.rbuild([
        "build",
        "--progress",
        "plain",
        "--iidfile",
        b.path("iid").to_str().expect("utf-8"),
        "--cache-from",
        &from,
        ctx_b.to_str().expect("utf-8"),
    ]);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        cached_steps(&stderr),
        vec![2, 3, 4, 5],
        "every step hits from the imported cache: {stderr}"
    );
    let id_b = b
        .command_as_user("cat")
        .arg(b.path("iid"))
        .output()
        .expect("cat");
    assert_eq!(
        String::from_utf8_lossy(&id_b.stdout),
        id_a.trim(),
        "the same image id in both stores"
    );
    let out_b = b.path("b.tar");
    b.rbuild_ok(["save", "-o", out_b.to_str().expect("utf-8"), id_a.trim()]);
    assert_eq!(
        OciImage::open(&out_b).tree().text("random"),
        OciImage::open(&out_a).tree().text("random")
    );

    // The cache mount came along.
    let reader = b.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\nRUN --mount=type=cache,id=travel,target=/c cat /c/file > /seen\n",
        ),
    )]);
    let (_, seen) = b.build_oci("seen", &["--cache-from", &from], &reader);
    assert_eq!(seen.tree().text("seen"), "from-a\n");

    // Exporting the unchanged cache again writes no new blob.
    let output = a.rbuild(["build", "--cache-to", &to, ctx_a.to_str().expect("utf-8")]);
    let stderr = stderr_of(&output);
    assert!(
        output.status.success() && stderr.contains("0 new blobs"),
        "{stderr}"
    );
}

/// The same through a registry on loopback: `--cache-to type=registry,ref=...` from store A,
/// `--cache-from` in a fresh store B hits every step with the same image id; exporting the
/// unchanged cache again uploads no blob.
#[test]
fn cache_travels_through_a_registry() {
    let Some(a) = TestEnv::with_busybox() else {
        return;
    };
    let Some(b) = TestEnv::with_busybox() else {
        return;
    };
    let Some(registry) = crate::support::registry::Registry::start() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\nCOPY in.txt /in.txt\nRUN echo $RANDOM$RANDOM > /random\nLABEL via=registry\n";
    let reference = format!("{}/team/cache:main", registry.host);
    let ctx_a = a.context(&[("Dockerfile", file(dockerfile)), ("in.txt", file("in\n"))]);
    let to = format!("type=registry,ref={reference},mode=max");
    let id_a = a.rbuild_ok([
        "build",
        "-q",
        "--cache-to",
        &to,
        ctx_a.to_str().expect("utf-8"),
    ]);

    let ctx_b = b.context(&[("Dockerfile", file(dockerfile)), ("in.txt", file("in\n"))]);
    // docker's shorthand: a bare reference is type=registry,ref=REF.
    let from = reference.clone();
    let output = b.rbuild([
        "build",
        "--progress",
        "plain",
        "--iidfile",
        b.path("iid").to_str().expect("utf-8"),
        "--cache-from",
        &from,
        ctx_b.to_str().expect("utf-8"),
    ]);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(cached_steps(&stderr), vec![2, 3, 4], "{stderr}");
    let id_b = b
        .command_as_user("cat")
        .arg(b.path("iid"))
        .output()
        .expect("cat");
    assert_eq!(String::from_utf8_lossy(&id_b.stdout), id_a.trim());

    let output = a.rbuild(["build", "--cache-to", &to, ctx_a.to_str().expect("utf-8")]);
    let stderr = stderr_of(&output);
    assert!(
        output.status.success() && stderr.contains("0 new blobs"),
        "nothing uploaded again: {stderr}"
    );
}

/// A cached RUN does not prepare its mounts: the cache is looked up first. Here another
/// process holds a `sharing=locked` cache mount; the fully cached rebuild does not wait for
/// the lock (it used to take it before the lookup, and so hung until the holder let go).
#[test]
fn a_cached_run_prepares_no_mounts() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    if !require_command("flock") {
        return;
    }
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN --mount=type=cache,id=shared-tools,sharing=locked,target=/c \
             --mount=type=secret,id=token,target=/run/token,required=false \
             echo $RANDOM > /built\n",
        ),
    )]);
    build(&env, &ctx, &[]);
    let locks: Vec<std::path::PathBuf> = std::fs::read_dir(env.store().join("cache-mounts"))
        .expect("cache mounts")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    // The holder runs as the test user too, so it shares the lock file's permissions.
    let mut holder = env
        .command_as_user("flock")
        .arg(&locks[0])
        .args(["sleep", "60"])
        .spawn()
        .expect("hold the cache mount");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut rebuild = env
        .command(["build", "--progress", "plain", ctx.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rebuild");
    let started = std::time::Instant::now();
    let finished = loop {
        if let Some(status) = rebuild.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    let Some(status) = finished else {
        let _ = rebuild.kill();
        panic!("the cached rebuild waited for the cache mount's lock");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut rebuild.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(status.success(), "{stderr}");
    assert_eq!(cached_steps(&stderr), [2], "{stderr}");
}

/// `--cache-to type=inline` (and BuildKit's `--build-arg BUILDKIT_INLINE_CACHE=1`): the pushed
/// image's config carries the records of its own steps; `--cache-from IMAGE` in a fresh store
/// hits every step from it and makes the same image; an image built FROM it does not inherit
/// the records.
#[test]
fn inline_cache_travels_inside_the_pushed_image() {
    let Some(a) = TestEnv::with_busybox() else {
        return;
    };
    let Some(registry) = crate::support::registry::Registry::start() else {
        return;
    };
    let dockerfile = "FROM busybox:latest\nCOPY in.txt /in.txt\nRUN echo $RANDOM$RANDOM > /random\nLABEL via=inline\n";
    let image = format!("{}/team/inline:1", registry.host);
    let ctx_a = a.context(&[("Dockerfile", file(dockerfile)), ("in.txt", file("in\n"))]);
    let id_a = a.rbuild_ok([
        "build",
        "-q",
        "--cache-to",
        "type=inline",
        "-t",
        &image,
        "--push",
        ctx_a.to_str().expect("utf-8"),
    ]);
    let config = crate::support::tools::skopeo_inspect_with(
        &format!("docker://{image}"),
        &["--tls-verify=false", "--config", "--raw"],
    )
    .expect("skopeo");
    let records = config["rbuild.cache.v1"]["records"]
        .as_object()
        .unwrap_or_else(|| panic!("no inline cache in {config}"));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    let layered: Vec<&serde_json::Value> = records
        .values()
        .filter_map(|r| r.get("diff_id").filter(|d| !d.is_null()))
        .collect();
    assert_eq!(layered.len(), 2, "the COPY and the RUN: {records:?}");
    assert!(layered.iter().all(|d| diff_ids.contains(d)), "{config}");

    for (round, inline) in [
        ("cache-to", "--cache-to=type=inline"),
        ("build-arg", "--build-arg=BUILDKIT_INLINE_CACHE=1"),
    ] {
        // A fresh store each round: nothing but the pushed image to hit.
        let Some(b) = TestEnv::with_busybox() else {
            return;
        };
        let ctx_b = b.context(&[("Dockerfile", file(dockerfile)), ("in.txt", file("in\n"))]);
        let iid = b.path(&format!("iid-{round}"));
        let output = b.rbuild([
            "build",
            "--progress",
            "plain",
            inline,
            "--iidfile",
            iid.to_str().expect("utf-8"),
            "--cache-from",
            &image,
            ctx_b.to_str().expect("utf-8"),
        ]);
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{stderr}");
        assert_eq!(cached_steps(&stderr), vec![2, 3, 4], "{round}: {stderr}");
        assert!(!stderr.contains("not consumed"), "{stderr}");
        let id_b = b.command_as_user("cat").arg(&iid).output().expect("cat");
        assert_eq!(
            String::from_utf8_lossy(&id_b.stdout),
            id_a.trim(),
            "{round}"
        );
    }

    let child = a.context(&[(
        "Dockerfile",
        file(format!("FROM {image}\nRUN echo child > /child\n")),
    )]);
    let (_, built) = build(&a, &child, &[]);
    assert!(
        built.config().get("rbuild.cache.v1").is_none(),
        "the base's inline cache is not inherited"
    );
}
