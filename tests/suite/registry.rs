//! Pull and push against a real registry on loopback (Debian's docker-registry), seeded by
//! skopeo (an independent tool) and read back by skopeo.

use std::process::{Command, Output};

use crate::support::registry::{Registry, RegistryOptions};
use crate::support::tools::skopeo_inspect_with;
use crate::support::{busybox_oci_archive, describe_command, describe_output, file, TestEnv};

/// rbuild as the test user with its credential files inside the sandbox.
fn rbuild_cmd(env: &TestEnv, args: &[&str]) -> Command {
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

fn ok(env: &TestEnv, args: &[&str]) -> Output {
    let (command, output) = run(rbuild_cmd(env, args));
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        describe_command(&command),
        describe_output(&output)
    );
    output
}

fn fails(env: &TestEnv, args: &[&str]) -> String {
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

fn all_output(output: &Output) -> String {
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

fn pipe_stdin(mut command: Command, input: &[u8]) -> Output {
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
