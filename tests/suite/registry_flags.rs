//! The registry flags CI scripts bring from podman and kaniko: `--creds` (never shown, not
//! even in the process list), `--tls-verify=false`/`--skip-tls-verify` and `--retry`, against
//! real registries on loopback.

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::registry::{all_output, fails, ok, rbuild_cmd};
use crate::support::flaky_proxy::FlakyProxy;
use crate::support::registry::{Registry, RegistryOptions};
use crate::support::{busybox_oci_archive, describe_output, file, TestEnv};

const PASSWORD: &str = "Cr3ds-only-Here";

#[test]
fn creds_authenticate_one_command_and_the_password_is_never_shown() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start_with(RegistryOptions {
        basic_auth: Some(("tester".into(), PASSWORD.into())),
        tls: true,
        token: None,
    }) else {
        return;
    };
    let host = registry.host.clone();
    registry.seed_busybox(
        &fixture,
        "library/busybox:latest",
        Some(&format!("tester:{PASSWORD}")),
    );
    let env = TestEnv::new();
    let image = format!("{host}/library/busybox:latest");
    let creds = format!("tester:{PASSWORD}");

    let stderr = fails(&env, &["pull", &image]);
    assert!(stderr.contains("requires authentication"), "{stderr}");
    let stderr = fails(&env, &["pull", "--creds", "tester:wrong", &image]);
    assert!(stderr.contains("wrong user name or password"), "{stderr}");

    // As a global flag before the command, and after it.
    let pulled = ok(&env, &["--creds", &creds, "pull", &image]);
    let context = env.context(&[(
        "Dockerfile",
        file(format!("FROM {image}\nRUN echo built > /built\n")),
    )]);
    let context = context.to_str().expect("utf-8");
    let target = format!("{host}/team/creds:1");
    let built = ok(
        &env,
        &[
            "build", "--pull", "--creds", &creds, "-t", &target, "--push", context,
        ],
    );
    // The password from the environment, the user on the command line.
    let mut push = rbuild_cmd(&env, &["push", "--creds", "tester", &target]);
    push.env("RBUILD_PASSWORD", PASSWORD);
    let pushed = push.output().expect("run rbuild push");
    assert!(pushed.status.success(), "{}", describe_output(&pushed));
    let stderr = fails(&env, &["push", "--creds", "tester", &target]);
    assert!(stderr.contains("RBUILD_PASSWORD"), "{stderr}");

    // skopeo reads the pushed image back with the same credentials.
    let inspect = crate::support::tools::skopeo_inspect_with(
        &format!("docker://{target}"),
        &["--tls-verify=false", "--creds", &creds],
    )
    .expect("skopeo");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(2));

    for output in [&pulled, &built, &pushed] {
        assert!(
            !all_output(output).contains(PASSWORD),
            "the password was printed"
        );
    }
    // Credentials of one command are not saved anywhere.
    for saved in [
        "docker/config.json",
        "config/containers/auth.json",
        "run/containers/auth.json",
    ] {
        assert!(!env.path(saved).exists(), "{saved} was written");
    }
}

#[test]
fn a_password_on_the_command_line_is_blanked_in_the_process_list() {
    let env = TestEnv::new();
    // Stdin stays open: rbuild waits for a Dockerfile there, alive, after its start.
    let mut child = rbuild_cmd(
        &env,
        &["build", "--creds", &format!("tester:{PASSWORD}"), "-"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn rbuild");
    // The runner (setpriv) execs rbuild in place: the child's pid is rbuild's once it runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let cmdline = || {
        let mut bytes = Vec::new();
        std::fs::File::open(format!("/proc/{}/cmdline", child.id()))
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map(|_| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default()
    };
    let mut seen = String::new();
    while Instant::now() < deadline {
        seen = cmdline();
        if !seen.starts_with("setpriv") && seen.contains("tester:***************") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().expect("poll rbuild").is_none(),
        "rbuild exited before it could be looked at"
    );
    assert!(
        seen.contains("tester:***************") && !seen.contains(PASSWORD),
        "the process list shows: {seen}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn tls_verify_false_talks_to_a_registry_whose_certificate_is_not_trusted() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start_with(RegistryOptions {
        basic_auth: None,
        tls: true,
        token: None,
    }) else {
        return;
    };
    let host = registry.host.clone();
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let env = TestEnv::new();
    // A loopback registry is insecure by default (as docker's); this one is made verified,
    // as podman treats every registry, and its self-signed certificate is trusted nowhere.
    env.write_tree(
        "config/rbuild",
        &[(
            "registries.json",
            file(format!(
                r#"{{"registries": {{"{host}": {{"insecure": false}}}}}}"#
            )),
        )],
    );
    let image = format!("{host}/library/busybox:latest");
    for verified in [
        vec!["pull"],
        vec!["pull", "--tls-verify"],
        vec!["pull", "--tls-verify=true"],
    ] {
        let mut args = verified.clone();
        args.push(&image);
        let stderr = fails(&env, &args);
        assert!(
            stderr.contains(&format!("https://{host}"))
                && stderr.to_lowercase().contains("certificate"),
            "{verified:?}: {stderr}"
        );
    }
    for unverified in [
        vec!["pull", "--tls-verify=false"],
        vec!["--tls-verify=false", "pull"],
        vec!["pull", "--skip-tls-verify"],
    ] {
        let mut args = unverified.clone();
        args.push(&image);
        let output = ok(&env, &args);
        assert!(
            all_output(&output).contains("sha256:"),
            "{unverified:?}: {}",
            describe_output(&output)
        );
    }
    let listed = ok(&env, &["images"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&format!("{host}/library/busybox")),
        "{}",
        describe_output(&listed)
    );
}

#[test]
fn retry_rides_out_registry_failures_that_pass() {
    let Some(fixture) = busybox_oci_archive() else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    registry.seed_busybox(&fixture, "library/busybox:latest", None);
    let proxy = FlakyProxy::start(&registry.host);
    let env = TestEnv::new();
    let image = format!("{}/library/busybox:latest", proxy.host);

    proxy.fail_next(1);
    let stderr = fails(&env, &["pull", "--retry", "0", &image]);
    assert!(stderr.contains("503"), "{stderr}");
    assert_eq!(proxy.served_failures(), 1);

    proxy.fail_next(2);
    let output = ok(&env, &["pull", "--retry", "2", &image]);
    assert_eq!(proxy.served_failures(), 3, "{}", describe_output(&output));
    // The image arrived whole: it runs.
    let context = env.context(&[(
        "Dockerfile",
        file(format!("FROM {image}\nRUN busybox echo ran > /ran\n")),
    )]);
    ok(
        &env,
        &[
            "build",
            "--pull=never",
            "-t",
            "ran",
            context.to_str().expect("utf-8"),
        ],
    );
}
