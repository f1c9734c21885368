//! Pull and push against a real registry on loopback (Debian's docker-registry), seeded by
//! skopeo (an independent tool) and read back by skopeo.

use std::process::{Command, Output};

use crate::support::registry::{Registry, RegistryOptions};
use crate::support::tools::skopeo_inspect_with;
use crate::support::{busybox_oci_archive, describe_command, describe_output, file, TestEnv};

/// rbuild as the test user with its credential files inside the sandbox.
pub(crate) fn rbuild_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut command = env.command(args);
    command
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("XDG_CONFIG_HOME", env.path("config"))
        .env("XDG_RUNTIME_DIR", env.path("run"));
    command
}

fn run(mut command: Command) -> (Command, Output) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", describe_command(&command)));
    (command, output)
}

pub(crate) fn ok(env: &TestEnv, args: &[&str]) -> Output {
    let (command, output) = run(rbuild_cmd(env, args));
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&output)
    );
    output
}

pub(crate) fn fails(env: &TestEnv, args: &[&str]) -> String {
    let (command, output) = run(rbuild_cmd(env, args));
    assert!(
        output.status.code().is_some_and(|c| c != 0),
        "{} was expected to fail:\n{}",
        describe_command(&command),
        describe_output(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

pub(crate) fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn manifest_digest(reference: &str) -> String {
    let inspect = skopeo_inspect_with(reference, &["--tls-verify=false"]).expect("skopeo");
    inspect["Digest"]
        .as_str()
        .expect("skopeo shows a digest")
        .to_string()
}

#[test]
fn pull_by_tag_and_digest_build_from_it_and_push_the_result() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let host = &registry.host;
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let env = TestEnv::new();

    // By tag: the image id is the config digest skopeo reports.
    let by_tag = format!("{host}/library/busybox:latest");
    let pulled = ok(&env, &["pull", &by_tag]);
    let image_id = stdout(&pulled);
    assert!(image_id.starts_with("sha256:"), "{}", all_output(&pulled));
    let inspect = ok(&env, &["inspect", &format!("{host}/library/busybox")]);
    assert!(stdout(&inspect).contains(&image_id[7..19]) || stdout(&inspect).contains(&image_id));

    // Pulling again downloads nothing.
    let before = registry.requests("GET /v2/library/busybox/blobs/");
    let again = ok(&env, &["pull", &by_tag]);
    assert!(
        all_output(&again).contains("already present"),
        "{}",
        all_output(&again)
    );
    assert_eq!(
        registry.requests("GET /v2/library/busybox/blobs/"),
        before,
        "a second pull fetched blobs again"
    );

    // By digest, in a fresh store.
    let digest = manifest_digest(&format!("docker://{by_tag}"));
    let env2 = TestEnv::new();
    let by_digest = format!("{host}/library/busybox@{digest}");
    assert_eq!(stdout(&ok(&env2, &["pull", &by_digest])), image_id);
    ok(&env2, &["inspect", &by_digest]);
    // A wrong digest is refused.
    let missing = format!("{host}/library/busybox@sha256:{}", "0".repeat(64));
    let stderr = fails(&env2, &["pull", &missing]);
    assert!(stderr.contains("not found"), "{stderr}");

    // FROM pulls when the store lacks the image; --push uploads the new layer and config and
    // mounts the base layer from library/busybox.
    let env3 = TestEnv::new();
    let ctx = env3.context(&[(
        "Dockerfile",
        file(format!(
            "FROM {host}/library/busybox\nRUN echo built > /built\n"
        )),
    )]);
    let target = format!("{host}/team/app:1");
    let built = ok(
        &env3,
        &[
            "build",
            "--progress=plain",
            "--push",
            "-t",
            &target,
            ctx.to_str().expect("utf-8"),
        ],
    );
    let log = all_output(&built);
    assert!(log.contains("mounted from library/busybox"), "{log}");
    let pushed = skopeo_inspect_with(&format!("docker://{target}"), &["--tls-verify=false"])
        .expect("skopeo");
    assert_eq!(
        pushed["Layers"].as_array().map(Vec::len),
        Some(2),
        "{pushed}"
    );
    let config = skopeo_inspect_with(
        &format!("docker://{target}"),
        &["--tls-verify=false", "--config"],
    )
    .expect("skopeo");
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(2)
    );

    // Pushing again uploads no blob: every blob answers the HEAD.
    let uploads = registry.requests("POST /v2/team/app/blobs/uploads/");
    let again = ok(&env3, &["push", &target]);
    assert!(
        all_output(&again).contains("already in the registry"),
        "{}",
        all_output(&again)
    );
    assert_eq!(
        registry.requests("POST /v2/team/app/blobs/uploads/"),
        uploads,
        "a second push started uploads"
    );
    assert_eq!(registry.requests("PUT /v2/team/app/blobs/"), 2);

    // podman reads it back from the registry and runs it.
    if let Some(output) = crate::support::tools::podman_pull_and_run(&target, &["cat", "/built"]) {
        assert!(output.status.success(), "{}", describe_output(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "built");
    }

    // Another store pulls the pushed image and runs a step on it.
    let env4 = TestEnv::new();
    let ctx = env4.context(&[(
        "Dockerfile",
        file(format!("FROM {target}\nRUN cat /built > /copy\n")),
    )]);
    ok(
        &env4,
        &["build", "-t", "check", ctx.to_str().expect("utf-8")],
    );
}

#[test]
fn bad_references_and_missing_images_fail_clearly() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let env = TestEnv::new();
    let stderr = fails(&env, &["pull", "Busybox"]);
    assert!(stderr.contains("invalid reference format"), "{stderr}");
    let stderr = fails(
        &env,
        &["pull", &format!("{}/nothing/here:1", registry.host)],
    );
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn basic_auth_over_tls_with_login_and_docker_config() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let password = "s3cret-Pa55word";
    let Some(registry) = Registry::start_with(RegistryOptions {
        basic_auth: Some(("tester".into(), password.into())),
        tls: true,
        token: None,
    }) else {
        return;
    };
    let host = registry.host.clone();
    registry.seed_busybox(
        &fixture,
        "library/busybox:latest",
        Some(&format!("tester:{password}")),
    );
    let env = TestEnv::new();
    let image = format!("{host}/library/busybox:latest");

    let stderr = fails(&env, &["pull", &image]);
    assert!(stderr.contains("requires authentication"), "{stderr}");

    let mut wrong = rbuild_cmd(&env, &["login", &host, "-u", "tester", "--password-stdin"]);
    wrong.stdin(std::process::Stdio::piped());
    let output = pipe_stdin(wrong, b"wrong-password\n");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wrong user name or password"), "{stderr}");

    let mut login = rbuild_cmd(&env, &["login", &host, "-u", "tester", "--password-stdin"]);
    login.stdin(std::process::Stdio::piped());
    let output = pipe_stdin(login, format!("{password}\n").as_bytes());
    assert!(output.status.success(), "{}", describe_output(&output));
    let config = std::fs::read_to_string(env.path("docker/config.json"))
        .expect("login writes docker's config.json");
    assert!(config.contains(&host), "{config}");

    let pulled = ok(&env, &["pull", &image]);
    let pushed = ok(&env, &["push", &image, &format!("{host}/team/copy:1")]);
    for output in [&pulled, &pushed, &output] {
        assert!(
            !all_output(output).contains(password),
            "the password was printed"
        );
    }
    let logout = ok(&env, &["logout", &host]);
    assert!(stdout(&logout).contains("Removed"), "{}", stdout(&logout));
    let stderr = fails(&env, &["pull", &format!("{host}/team/copy:1")]);
    assert!(stderr.contains("requires authentication"), "{stderr}");
    assert!(!stderr.contains(password));
}

pub(crate) fn pipe_stdin(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", describe_command(&command)));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Writes `bytes` as a blob of the OCI layout at `dir`; returns its descriptor.
fn put_layout_blob(dir: &std::path::Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    use sha2::Digest as _;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("write blob");
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

fn read_layout_blob(dir: &std::path::Path, digest: &str) -> serde_json::Value {
    let path = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).expect("read blob")).expect("json blob")
}

#[test]
fn a_multi_platform_index_resolves_to_the_requested_platform() {
    let Some(fixtures) = crate::support::fixtures_dir() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    // An index made by hand from the busybox layout: the real amd64 image plus an "arm64"
    // entry with its own config (same layer), copied to the registry by skopeo --all.
    let layout = tempfile::tempdir().expect("temp dir");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(fixtures.join("busybox-layout/."))
        .arg(layout.path())
        .status()
        .expect("cp");
    assert!(copy.success());
    let dir = layout.path();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("json");
    let amd64_desc = index["manifests"][0].clone();
    let amd64_digest = amd64_desc["digest"].as_str().expect("digest");
    let amd64_manifest = read_layout_blob(dir, amd64_digest);
    let amd64_config_digest = amd64_manifest["config"]["digest"].as_str().expect("config");
    let mut arm_config = read_layout_blob(dir, amd64_config_digest);
    arm_config["architecture"] = "arm64".into();
    arm_config["variant"] = "v8".into();
    let arm_config_desc = put_layout_blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&arm_config).expect("json"),
    );
    let mut arm_manifest = amd64_manifest.clone();
    arm_manifest["config"] = arm_config_desc.clone();
    let arm_desc = put_layout_blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&arm_manifest).expect("json"),
    );
    let mut entries = Vec::new();
    for (desc, arch, variant) in [
        (amd64_desc.clone(), "amd64", None),
        (arm_desc, "arm64", Some("v8")),
    ] {
        let mut entry = serde_json::json!({
            "mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
            "platform": {"os": "linux", "architecture": arch},
        });
        if let Some(variant) = variant {
            entry["platform"]["variant"] = variant.into();
        }
        entries.push(entry);
    }
    let inner = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
    let mut inner_desc = put_layout_blob(
        dir,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&inner).expect("json"),
    );
    inner_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "multi"});
    let outer = serde_json::json!({"schemaVersion": 2, "manifests": [inner_desc]});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&outer).expect("json"),
    )
    .expect("write");
    let target = format!("{}/multi/busybox:latest", registry.host);
    crate::support::run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", dir.display()),
        &format!("docker://{target}"),
    ]));

    let env = TestEnv::new();
    let arm = ok(&env, &["pull", "--platform", "linux/arm64", &target]);
    assert_eq!(
        stdout(&arm),
        arm_config_desc["digest"].as_str().expect("digest")
    );
    let env2 = TestEnv::new();
    let host = ok(&env2, &["pull", &target]);
    let host_config = match std::env::consts::ARCH {
        "aarch64" => arm_config_desc["digest"].as_str().expect("digest"),
        _ => amd64_config_digest,
    };
    assert_eq!(stdout(&host), host_config, "{}", all_output(&host));
    let stderr = fails(&env2, &["pull", "--platform", "linux/s390x", &target]);
    assert!(
        stderr.contains("no image for platform linux/s390x"),
        "{stderr}"
    );
    assert!(stderr.contains("linux/arm64/v8"), "{stderr}");
}

#[test]
fn bearer_tokens_anonymous_for_pull_and_credentials_from_an_auth_file_for_push() {
    use crate::support::registry::TokenIssuer;
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let password = "t0ken-Pa55word";
    let Some(issuer) = TokenIssuer::start("tester", password) else {
        return;
    };
    let Some(registry) = Registry::start_with(RegistryOptions {
        token: Some((issuer.realm.clone(), issuer.certificate())),
        ..RegistryOptions::default()
    }) else {
        return;
    };
    let host = registry.host.clone();
    registry.seed_busybox(
        &fixture,
        "library/busybox:latest",
        Some(&format!("tester:{password}")),
    );
    let env = TestEnv::new();
    let image = format!("{host}/library/busybox:latest");
    // Anonymous token flow: pull access only.
    let pulled = ok(&env, &["pull", &image]);
    let copy = format!("{host}/team/copy:1");
    let stderr = fails(&env, &["push", &image, &copy]);
    assert!(stderr.contains("requires authentication"), "{stderr}");

    // Credentials from a containers auth file ($REGISTRY_AUTH_FILE).
    let auth_file = env.path("auth.json");
    let encoded = base64_encode(format!("tester:{password}").as_bytes());
    std::fs::write(
        &auth_file,
        serde_json::json!({"auths": {host.clone(): {"auth": encoded}}}).to_string(),
    )
    .expect("write auth.json");
    let mut push = rbuild_cmd(&env, &["push", &image, &copy]);
    push.env("REGISTRY_AUTH_FILE", &auth_file);
    let (command, pushed) = run(push);
    assert!(
        pushed.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&pushed)
    );
    let inspect = skopeo_inspect_with(
        &format!("docker://{copy}"),
        &["--tls-verify=false", &format!("--creds=tester:{password}")],
    )
    .expect("skopeo");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));
    // The same file named with podman's --authfile (global, before or after the command).
    let other = format!("{host}/team/other:1");
    let (command, by_flag) = run(rbuild_cmd(
        &env,
        &[
            "push",
            "--authfile",
            auth_file.to_str().expect("utf-8"),
            &image,
            &other,
        ],
    ));
    assert!(
        by_flag.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&by_flag)
    );
    skopeo_inspect_with(
        &format!("docker://{other}"),
        &["--tls-verify=false", &format!("--creds=tester:{password}")],
    )
    .expect("skopeo");

    let tokens = issuer.tokens();
    assert!(tokens.len() >= 3, "the issuer was not used: {tokens:?}");
    let everything = format!("{}{}{}", all_output(&pulled), stderr, all_output(&pushed));
    for secret in tokens.iter().map(String::as_str).chain([password]) {
        assert!(!everything.contains(secret), "a secret was printed");
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Bytes that gzip cannot shrink (xorshift), so the layer blob is as big as the file.
fn incompressible(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

#[test]
fn an_interrupted_pull_resumes_with_a_range_request() {
    use crate::support::registry::ThrottlingProxy;
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    // An image with one big layer, pushed by rbuild.
    let env = TestEnv::new();
    let size = 6 * 1024 * 1024;
    let ctx = env.context(&[
        (
            "Dockerfile",
            file(format!(
                "FROM {}/library/busybox\nCOPY big /big\n",
                registry.host
            )),
        ),
        ("big", file(incompressible(size))),
    ]);
    let image = format!("{}/team/big:1", registry.host);
    // Uploads show live per-layer progress on a terminal (forced here).
    let pushed = ok(
        &env,
        &[
            "build",
            "--progress",
            "tty",
            "--push",
            "-t",
            &image,
            ctx.to_str().expect("utf-8"),
        ],
    );
    let shown = all_output(&pushed);
    assert!(shown.contains(" / 6.3 MB ("), "{shown}");
    assert!(shown.contains("uploaded 6.3 MB"), "{shown}");
    let inspect =
        skopeo_inspect_with(&format!("docker://{image}"), &["--tls-verify=false"]).expect("skopeo");
    let big_digest = inspect["Layers"][1]
        .as_str()
        .expect("layer digest")
        .to_string();

    let Some(proxy) = ThrottlingProxy::start(&registry.host) else {
        return;
    };
    let through_proxy = format!("{}/team/big:1", proxy.host);
    let env2 = TestEnv::new();
    let partial = env2.store().join("tmp").join(format!(
        "pull-{}.partial",
        big_digest.trim_start_matches("sha256:")
    ));
    let mut first = rbuild_cmd(&env2, &["pull", &through_proxy]);
    std::os::unix::process::CommandExt::process_group(&mut first, 0);
    let mut child = first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn rbuild pull");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cut_at = 1024 * 1024;
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < cut_at {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never reached {cut_at} bytes"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "rbuild pull ended before it was interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let kept = std::fs::metadata(&partial).map_or(0, |m| m.len());
    assert!(
        kept >= cut_at && kept < size as u64,
        "partial file: {kept} bytes"
    );

    // On a terminal (forced here), per-layer bytes and rates are redrawn in place.
    let second = ok(&env2, &["pull", "--progress", "tty", &through_proxy]);
    let shown = all_output(&second);
    assert!(shown.contains("resuming at"), "{shown}");
    assert!(shown.contains(" / 6.3 MB ("), "{shown}");
    assert!(shown.contains("\x1b[1A\x1b[J"), "{shown}");
    let requests = proxy.blob_requests();
    let resumed = requests
        .iter()
        .find(|(path, range, _, _)| path.contains(&big_digest) && range != "-")
        .unwrap_or_else(|| panic!("no Range request for the big layer: {requests:?}"));
    assert_eq!(resumed.2, 206, "{requests:?}");
    assert!(
        resumed.3 < size as u64,
        "the whole blob was sent again: {requests:?}"
    );
    assert!(!partial.exists(), "the partial file was left behind");
    // The pulled image is complete: a build on it reads the big file.
    let ctx = env2.context(&[(
        "Dockerfile",
        file(format!("FROM {through_proxy}\nRUN test -s /big\n")),
    )]);
    ok(&env2, &["build", ctx.to_str().expect("utf-8")]);
}

#[test]
fn pulls_go_through_configured_mirrors() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let host = &registry.host;
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    registry.seed_busybox(&fixture, "hub/library/busybox:latest", None);
    let env = TestEnv::new();

    // rbuild's own settings: a Docker Hub mirror, so `busybox` never reaches docker.io.
    let settings = env.path("registries.json");
    std::fs::write(
        &settings,
        serde_json::json!({"registries": {"docker.io": {"mirrors": [host]}}}).to_string(),
    )
    .expect("write settings");
    let mut pull = rbuild_cmd(&env, &["pull", "busybox"]);
    pull.env("RBUILD_REGISTRIES_CONFIG", &settings);
    let (command, output) = run(pull);
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&output)
    );
    assert!(all_output(&output).contains(&format!("from mirror {host}/library/busybox")));
    // The familiar name finds it, as a loaded busybox:latest would be.
    ok(&env, &["inspect", "busybox:latest"]);
    ok(&env, &["inspect", "docker.io/library/busybox"]);

    // containers registries.conf (v2): a mirror with a path for an unreachable registry.
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"unreachable.invalid\"\n\
             [[registry.mirror]]\nlocation = \"{host}/hub\"\n"
        ),
    )
    .expect("write registries.conf");
    let env2 = TestEnv::new();
    let mut pull = rbuild_cmd(&env2, &["pull", "unreachable.invalid/library/busybox"]);
    pull.env("CONTAINERS_REGISTRIES_CONF", &conf);
    let (command, output) = run(pull);
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&output)
    );
    assert!(all_output(&output).contains(&format!("from mirror {host}/hub/library/busybox")));
}

/// A one-file tar whose name is written raw, bypassing the tar crate's `..` and `/` guards.
fn raw_tar_with_name(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(content);
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    bytes.extend_from_slice(&[0u8; 1024]);
    bytes
}

#[test]
fn hostile_pulled_layers_never_write_outside_the_store() {
    use crate::support::{Compression, ImageBuilder, TarEntry};
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let Some(registry) = Registry::start() else {
        return;
    };
    // A canary the test user could write to, were a layer to reach it.
    let canary = tempfile::Builder::new()
        .prefix("rbuild-canary.")
        .tempdir_in("/var/tmp")
        .expect("canary dir");
    let canary_dir = canary.path().to_str().expect("utf-8").to_string();
    std::fs::set_permissions(canary.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let victim = canary.path().join("victim");
    std::fs::write(&victim, "original").expect("victim");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o666)).expect("chmod");

    let climb = "../".repeat(12);
    let attacks: Vec<(&str, ImageBuilder, bool)> = vec![
        (
            "symlink-write-through",
            ImageBuilder::new().layer(&[
                TarEntry::symlink("escape", &canary_dir),
                TarEntry::file("escape/pwned", "x"),
            ]),
            false,
        ),
        (
            "dotdot",
            ImageBuilder::new().raw_layer(
                raw_tar_with_name(&format!("{climb}{}/pwned", &canary_dir[1..]), b"x"),
                Compression::Gzip,
            ),
            true,
        ),
        (
            "absolute",
            ImageBuilder::new().raw_layer(
                raw_tar_with_name(&format!("{canary_dir}/pwned"), b"x"),
                Compression::None,
            ),
            false,
        ),
        (
            "hardlink-outside",
            ImageBuilder::new()
                .layer(&[TarEntry::hardlink("link", &format!("{canary_dir}/victim"))]),
            false,
        ),
        (
            "whiteout-device",
            ImageBuilder::new().layer(&[TarEntry::char_dev("fake-whiteout", 0, 0)]),
            true,
        ),
        (
            "overlay-xattr",
            ImageBuilder::new().layer(&[
                TarEntry::dir("d"),
                TarEntry::file("d/f", "x").xattr("user.overlay.opaque", "y"),
            ]),
            false,
        ),
    ];
    let env = TestEnv::new();
    for (name, image, must_fail) in attacks {
        let layout = tempfile::tempdir().expect("layout dir");
        image.tag("evil").write_layout(layout.path());
        let target = format!("{}/evil/{name}:1", registry.host);
        crate::support::run_ok(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}:evil", layout.path().display()),
            &format!("docker://{target}"),
        ]));
        let (_, output) = run(rbuild_cmd(&env, &["pull", &target]));
        if must_fail {
            assert!(
                !output.status.success(),
                "{name}: the pull should be refused:\n{}",
                describe_output(&output)
            );
        }
        let mut names: Vec<String> = std::fs::read_dir(canary.path())
            .expect("list canary")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["victim".to_string()],
            "{name} wrote into the canary"
        );
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "original"
        );
        assert_eq!(
            std::fs::metadata(&victim).expect("victim").nlink(),
            1,
            "{name} linked to the canary"
        );
    }
}

#[test]
fn build_pull_re_resolves_the_base_tag() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let host = &registry.host;
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let base = format!("{host}/library/busybox:latest");
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!("FROM {base}\nRUN echo v2 > /version\n")),
    )]);
    let first = ok(
        &env,
        &[
            "build",
            "--progress=plain",
            "-t",
            "v2",
            ctx.to_str().expect("utf-8"),
        ],
    );
    assert!(
        all_output(&first).contains("pulling"),
        "{}",
        all_output(&first)
    );
    // The tag moves in the registry: the base is now the v2 image.
    ok(&env, &["push", "v2", &base]);
    let again = ok(
        &env,
        &["build", "--progress=plain", ctx.to_str().expect("utf-8")],
    );
    assert!(
        !all_output(&again).contains("pulling"),
        "{}",
        all_output(&again)
    );
    let pulled = ok(
        &env,
        &[
            "build",
            "--progress=plain",
            "--pull",
            ctx.to_str().expect("utf-8"),
        ],
    );
    assert!(
        all_output(&pulled).contains("pulling"),
        "{}",
        all_output(&pulled)
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&env, &["inspect", &base]))).expect("inspect JSON");
    let v2: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&env, &["inspect", "v2"]))).expect("inspect JSON");
    let id = |v: &serde_json::Value| {
        let v = if v.is_array() {
            v[0].clone()
        } else {
            v.clone()
        };
        v["Id"]
            .as_str()
            .or(v["id"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(id(&inspect), id(&v2), "--pull did not move the base tag");
    // --pull=missing (the default) and --pull=never use the store's image; --pull=newer
    // resolves the tag again, as --pull does.
    for (policy, pulls) in [
        ("--pull=missing", false),
        ("--pull=never", false),
        ("--pull=newer", true),
    ] {
        let built = ok(
            &env,
            &[
                "build",
                "--progress=plain",
                policy,
                ctx.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(
            all_output(&built).contains("pulling"),
            pulls,
            "{policy}: {}",
            all_output(&built)
        );
    }
}

#[test]
fn credential_helpers_from_docker_config_are_used_for_pull_and_login() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let password = "h3lper-Pa55word";
    let Some(registry) = Registry::start_with(RegistryOptions {
        basic_auth: Some(("tester".into(), password.into())),
        tls: true,
        token: None,
    }) else {
        return;
    };
    let host = registry.host.clone();
    registry.seed_busybox(
        &fixture,
        "library/busybox:latest",
        Some(&format!("tester:{password}")),
    );
    let env = TestEnv::new();
    // A docker-credential helper that answers from (and stores into) a file.
    let secrets = env.path("helper-secrets.json");
    std::fs::write(
        &secrets,
        serde_json::json!({"ServerURL": host, "Username": "tester", "Secret": password})
            .to_string(),
    )
    .expect("write secrets");
    let helper = format!(
        "#!/bin/sh\nset -e\ncase \"$1\" in\n\
         get) read -r server || true; [ \"$server\" = \"{host}\" ] || {{ echo 'credentials not found' >&2; exit 1; }}; cat {s} ;;\n\
         store) cat > {s} ;;\n\
         erase) rm -f {s} ;;\n\
         esac\n",
        s = secrets.display()
    );
    env.write_tree(
        "bin",
        &[(
            "docker-credential-rbuildtest",
            crate::support::executable(helper),
        )],
    );
    std::fs::create_dir_all(env.path("docker")).expect("docker config dir");
    let config = env.path("docker/config.json");
    std::fs::write(
        &config,
        serde_json::json!({"credHelpers": {host.clone(): "rbuildtest"}}).to_string(),
    )
    .expect("write config.json");
    let with_helper = |args: &[&str]| {
        let mut command = rbuild_cmd(&env, args);
        command.env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                env.path("bin").display()
            ),
        );
        command
    };
    let (command, pulled) = run(with_helper(&["pull", &format!("{host}/library/busybox")]));
    assert!(
        pulled.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&pulled)
    );
    assert!(!all_output(&pulled).contains(password));

    // login stores through the helper: config.json never holds the password.
    std::fs::write(
        &config,
        serde_json::json!({"credsStore": "rbuildtest"}).to_string(),
    )
    .expect("write config.json");
    std::fs::remove_file(&secrets).expect("forget the secret");
    let mut login = with_helper(&["login", &host, "-u", "tester", "--password-stdin"]);
    login.stdin(std::process::Stdio::piped());
    let output = pipe_stdin(login, format!("{password}\n").as_bytes());
    assert!(output.status.success(), "{}", describe_output(&output));
    let stored = std::fs::read_to_string(&secrets).expect("the helper stored the secret");
    assert!(stored.contains(password), "{stored}");
    let config_text = std::fs::read_to_string(&config).expect("config.json");
    assert!(!config_text.contains(password), "{config_text}");
    let (_, pulled) = run(with_helper(&["pull", &format!("{host}/library/busybox")]));
    assert!(pulled.status.success(), "{}", describe_output(&pulled));
}

#[test]
fn zstd_gzip_and_plain_layers_pull_and_push_back_unchanged() {
    use crate::support::{Compression, ImageBuilder, TarEntry};
    let Some(fixtures) = crate::support::fixtures_dir() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let layout = tempfile::tempdir().expect("layout dir");
    ImageBuilder::from_layout(&fixtures.join("busybox-layout"), "latest")
        .tag("mixed")
        .layer_with(
            &[TarEntry::file("zstd.txt", "from zstd\n")],
            Compression::Zstd,
        )
        .layer_with(
            &[TarEntry::file("plain.txt", "from plain\n")],
            Compression::None,
        )
        .layer_with(
            &[TarEntry::file("gzip.txt", "from gzip\n")],
            Compression::Gzip,
        )
        .write_layout(layout.path());
    let source = format!("{}/mixed/app:1", registry.host);
    crate::support::run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:mixed", layout.path().display()),
        &format!("docker://{source}"),
    ]));
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM {source}\nRUN cat /zstd.txt /plain.txt /gzip.txt > /all.txt\n"
        )),
    )]);
    let target = format!("{}/mixed/out:1", registry.host);
    ok(
        &env,
        &[
            "build",
            "--push",
            "-t",
            &target,
            ctx.to_str().expect("utf-8"),
        ],
    );
    // The pulled blobs went back as they came: same digests and media types.
    let raw = |reference: &str| {
        skopeo_inspect_with(
            &format!("docker://{reference}"),
            &["--tls-verify=false", "--raw"],
        )
        .expect("skopeo")
    };
    let before = raw(&source);
    let after = raw(&target);
    for i in 0..4 {
        assert_eq!(
            after["layers"][i]["digest"], before["layers"][i]["digest"],
            "layer {i}"
        );
        assert_eq!(
            after["layers"][i]["mediaType"], before["layers"][i]["mediaType"],
            "layer {i}"
        );
    }
    assert_eq!(after["layers"].as_array().map(Vec::len), Some(5));
    if let Some(output) = crate::support::tools::podman_pull_and_run(&target, &["cat", "/all.txt"])
    {
        assert!(output.status.success(), "{}", describe_output(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "from zstd\nfrom plain\nfrom gzip\n"
        );
    }
}

#[test]
fn transient_registry_failures_are_retried() {
    use crate::support::registry::ThrottlingProxy;
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let Some(proxy) = ThrottlingProxy::start_failing(&registry.host, 2) else {
        return;
    };
    let env = TestEnv::new();
    ok(&env, &["pull", &format!("{}/library/busybox", proxy.host)]);
    let requests = proxy.blob_requests();
    let failed = requests.iter().filter(|r| r.2 == 503).count();
    let served = requests.iter().filter(|r| r.2 == 200).count();
    assert_eq!(failed, 2, "{requests:?}");
    assert!(
        served >= 2,
        "config and layer were fetched after the failures: {requests:?}"
    );
}

/// A manifest pulled by tag must be the one the registry names in `Docker-Content-Digest`
/// (by digest that was already checked): one swapped on the way is refused, nothing stored.
#[test]
fn a_manifest_that_is_not_the_one_the_registry_names_is_refused() {
    use crate::support::registry::ThrottlingProxy;
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let Some(proxy) = ThrottlingProxy::start_tampering(&registry.host) else {
        return;
    };
    let env = TestEnv::new();
    let (_, output) = run(rbuild_cmd(
        &env,
        &["pull", &format!("{}/library/busybox:latest", proxy.host)],
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", describe_output(&output));
    assert!(
        stderr.contains("sha256:0000000000000000000000000000000000000000000000000000000000000000"),
        "names the digest the registry announced: {stderr}"
    );
    assert!(
        env.rbuild_ok(["images"]).lines().count() <= 1,
        "nothing tagged"
    );
    // The honest registry behind it still works.
    let (_, output) = run(rbuild_cmd(
        &env,
        &["pull", &format!("{}/library/busybox:latest", registry.host)],
    ));
    assert!(output.status.success(), "{}", describe_output(&output));
}

/// `--push --metadata-file`: the digest the metadata file names is the manifest the registry
/// holds (it used to describe a manifest with base and created annotations that the push did
/// not carry, so deploying or signing by that digest got 404). The pushed manifest carries
/// the same annotations as the other outputs.
#[test]
fn the_metadata_digest_is_the_pushed_manifest() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let env = TestEnv::new();
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM {}/library/busybox:latest\nRUN echo pushed > /pushed\n",
            registry.host
        )),
    )]);
    let image = format!("{}/team/meta:1", registry.host);
    let metadata = env.path("metadata.json");
    ok(
        &env,
        &[
            "build",
            "--push",
            "-t",
            &image,
            "--metadata-file",
            metadata.to_str().expect("utf-8"),
            ctx.to_str().expect("utf-8"),
        ],
    );
    let described: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).expect("metadata")).expect("json");
    let digest = described["containerimage.digest"]
        .as_str()
        .expect("containerimage.digest")
        .to_string();
    let by_digest = format!("docker://{}/team/meta@{digest}", registry.host);
    let raw = skopeo_inspect_with(&by_digest, &["--tls-verify=false", "--raw"])
        .expect("the registry serves the manifest the metadata names");
    assert_eq!(
        raw["annotations"]["org.opencontainers.image.base.name"],
        format!("{}/library/busybox:latest", registry.host),
        "{raw}"
    );
    assert!(
        raw["annotations"]["org.opencontainers.image.created"].is_string(),
        "{raw}"
    );
    assert_eq!(
        raw["config"]["digest"], described["containerimage.config.digest"],
        "{raw}"
    );
}

/// `push --progress=rawjson`: every stderr line is a JSON event, the blobs' bytes among them.
#[test]
fn push_progress_as_json_events() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let target = format!("{}/json/busybox:1", registry.host);
    let tagged = env.rbuild(["tag", "busybox:latest", &target]);
    assert!(tagged.status.success(), "{}", describe_output(&tagged));
    let output = env.rbuild(["push", "--progress=rawjson", &target]);
    assert!(output.status.success(), "{}", describe_output(&output));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.iter().all(|e| e["type"] == "transfer"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["done"].is_u64() && e["done"] == e["total"] && e["blob"].is_string()),
        "a blob's last byte count: {events:?}"
    );
}

/// Where layer `index` of the image pushed as `target` is in `layout` (the image copied there
/// by skopeo), checking its media type ends in `kind` as the registry's manifest says.
fn pushed_layer_blob(
    layout: &std::path::Path,
    target: &str,
    index: usize,
    kind: &str,
) -> std::path::PathBuf {
    let manifest = skopeo_inspect_with(
        &format!("docker://{target}"),
        &["--tls-verify=false", "--raw"],
    )
    .expect("skopeo");
    let layer = &manifest["layers"][index];
    assert_eq!(
        layer["mediaType"],
        format!("application/vnd.oci.image.layer.v1.{kind}"),
        "{manifest}"
    );
    let digest = layer["digest"].as_str().expect("layer digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

#[test]
fn a_large_new_layer_pushes_as_one_gzip_member_and_as_zstd_that_standard_tools_read_back() {
    use flate2::read::GzDecoder;
    use std::io::Read;
    if !crate::support::tools::require_commands(&["gzip", "zstd", "skopeo"]) {
        return;
    }
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    let host = &registry.host;
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let env = TestEnv::new();
    // About 4 MB of compressible text: some 30 of the encoder's blocks, so the layer is
    // compressed in pieces on several threads and stitched back into one stream.
    let ctx = env.context(&[(
        "Dockerfile",
        file(format!(
            "FROM {host}/library/busybox\n\
             RUN seq 1 250000 > /numbers && seq 1 250000 | sed 's/$/ words/' > /words\n"
        )),
    )]);
    let gz_target = format!("{host}/team/big:gz");
    let zstd_target = format!("{host}/team/big:zstd");
    ok(
        &env,
        &[
            "build",
            "--push",
            "-t",
            &gz_target,
            ctx.to_str().expect("utf-8"),
        ],
    );
    // The same image pushed again elsewhere with zstd: its layer is compressed anew.
    ok(
        &env,
        &[
            "push",
            "--compression-format",
            "zstd",
            &gz_target,
            &zstd_target,
        ],
    );

    let layout = tempfile::tempdir().expect("layout dir");
    for (target, tag) in [(&gz_target, "gz"), (&zstd_target, "zstd")] {
        crate::support::run_ok(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{target}"),
            &format!("oci:{}:{tag}", layout.path().display()),
        ]));
    }
    let image = crate::support::OciImage::open_ref(layout.path(), "gz");
    let diff_ids = image.diff_ids();
    let gz_path = pushed_layer_blob(layout.path(), &gz_target, 1, "tar+gzip");
    // gzip(1) accepts it...
    crate::support::run_ok(Command::new("gzip").arg("-t").arg(&gz_path));
    // ...and it is one member: a single-member decoder reads the whole tar and leaves nothing.
    let gz = std::fs::read(&gz_path).expect("read the gzip blob");
    let mut decoder = GzDecoder::new(&gz[..]);
    let mut tar = Vec::new();
    decoder.read_to_end(&mut tar).expect("decode the gzip blob");
    let mut rest = Vec::new();
    decoder
        .into_inner()
        .read_to_end(&mut rest)
        .expect("read the rest");
    assert!(
        rest.is_empty(),
        "{} bytes after the first gzip member",
        rest.len()
    );
    assert!(tar.len() > 3_000_000, "layer tar of {} bytes", tar.len());
    assert_eq!(crate::support::oci::sha256_digest(&tar), diff_ids[1]);

    // The zstd push: zstd(1) reads it, and it holds the same tar (the same diff_id).
    let zstd_path = pushed_layer_blob(layout.path(), &zstd_target, 1, "tar+zstd");
    let decoded = Command::new("zstd")
        .arg("-dcq")
        .arg(&zstd_path)
        .output()
        .expect("run zstd");
    assert!(decoded.status.success(), "{}", describe_output(&decoded));
    assert_eq!(
        crate::support::oci::sha256_digest(&decoded.stdout),
        diff_ids[1],
        "the zstd blob holds another tar"
    );

    // umoci unpacks the gzip image (it checks every layer against its diff_id; Debian's umoci
    // has no zstd) to the files the step wrote.
    let Some(bundle) = crate::support::tools::umoci_unpack_tag(layout.path(), Some("gz")) else {
        return;
    };
    let numbers = std::fs::read_to_string(bundle.rootfs().join("numbers")).expect("numbers");
    assert_eq!(numbers.lines().count(), 250_000);
    assert_eq!(numbers.lines().last(), Some("250000"));
    let words = std::fs::read_to_string(bundle.rootfs().join("words")).expect("words");
    assert_eq!(words.lines().nth(41_999), Some("42000 words"));
}
