//! What a RUN step sees: its own user, pid, mount, ipc and uts namespaces, /proc, /dev, a
//! read-only /sys, bind-mounted /etc files that never reach the layer, Docker's default
//! capabilities, and no process outliving the step.

use crate::support::*;

#[test]
fn run_steps_are_sandboxed_like_docker_run() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN mkdir /out && echo $$ > /out/pid && hostname > /out/hostname \\\n\
              && cat /etc/hosts > /out/hosts && ls /dev > /out/devs \\\n\
              && (touch /sys/rbuild-probe 2>/dev/null && echo rw || echo ro) > /out/sys \\\n\
              && grep CapEff /proc/self/status > /out/capeff \\\n\
              && cat /proc/self/uid_map > /out/uid_map \\\n\
              && echo discarded > /dev/null && echo 10.9.9.9 extra >> /etc/hosts \\\n\
              && ls /proc | grep '^[0-9]' > /out/procs\n",
        ),
    )]);
    let (_, image) = env.build_oci("sandbox", &[], &ctx);
    let tree = image.tree();
    assert_eq!(
        tree.text("out/pid"),
        "1\n",
        "the command is pid 1 of a new pid namespace"
    );
    assert_eq!(
        tree.text("out/hostname"),
        "buildkitsandbox\n",
        "BuildKit's hostname"
    );
    assert!(tree.text("out/hosts").contains("localhost buildkitsandbox"));
    let devs = tree.text("out/devs");
    for dev in [
        "null", "zero", "full", "random", "urandom", "shm", "pts", "fd", "stdout",
    ] {
        assert!(devs.lines().any(|l| l == dev), "/dev/{dev} missing: {devs}");
    }
    assert_eq!(tree.text("out/sys"), "ro\n", "/sys is read-only");
    assert_eq!(
        tree.text("out/capeff"),
        "CapEff:\t00000000a80425fb\n",
        "Docker's default capability set"
    );
    let uid_map = tree.text("out/uid_map");
    let first: Vec<&str> = uid_map
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if std::env::var("RBUILD_TEST_USER").is_ok() {
        assert_eq!(first.first(), Some(&"0"), "{uid_map}");
        assert_ne!(
            first.get(1),
            Some(&"0"),
            "container root is the unprivileged caller, not host root: {uid_map}"
        );
        assert!(
            uid_map.lines().count() >= 2,
            "subordinate ids are mapped too: {uid_map}"
        );
    }
    let pids: Vec<u32> = tree
        .text("out/procs")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        pids.contains(&1) && pids.len() <= 4,
        "only the step's own processes are visible: {pids:?}"
    );
    let top = image.layer(image.layer_count() - 1);
    for path in top.paths() {
        assert!(
            !path.starts_with("etc")
                && !path.starts_with("proc")
                && !path.starts_with("dev")
                && !path.starts_with("sys"),
            "{path} leaked into the layer"
        );
    }
}

#[test]
fn background_processes_die_with_the_step() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    // If the sleeper survived, it would hold the output pipe open and the build would hang.
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN sleep 600 & echo started\nRUN echo next > /next\n"),
    )]);
    let started = std::time::Instant::now();
    let stderr = String::from_utf8_lossy(
        &env.rbuild(["build", "--progress", "plain", ctx.to_str().expect("utf-8")])
            .stderr,
    )
    .into_owned();
    assert!(
        stderr.contains("started") && stderr.contains("[3/3]"),
        "{stderr}"
    );
    assert!(
        started.elapsed().as_secs() < 300,
        "the step's background process was not killed"
    );
}

#[test]
fn network_is_shared_and_stdout_and_stderr_stream() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[("Dockerfile", file("FROM busybox:latest\nRUN echo to-stdout; echo to-stderr >&2; ls /sys/class/net > /nets\n"))]);
    let out = env.path("net.tar");
    let output = env.rbuild([
        "build",
        "--progress",
        "plain",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("to-stdout") && stderr.contains("to-stderr"),
        "{stderr}"
    );
    assert!(OciImage::open(&out).tree().text("nets").contains("lo"));
}

#[test]
fn root_in_the_initial_namespace_builds_too() {
    if !require_root() {
        return;
    }
    let Some(archive) = busybox_oci_archive() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("rbuild-root.")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let store = dir.path().join("store");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:latest\nRUN id -u > /uid && chown 1000:1000 /uid\n",
    )
    .expect("write");
    let out = dir.path().join("root.tar");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(rbuild_binary())
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()
            .expect("run rbuild as root");
        assert!(output.status.success(), "{}", describe_output(&output));
    };
    run(&["load", "-i", archive.to_str().expect("utf-8")]);
    run(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let image = OciImage::open(&out);
    assert_eq!(image.tree().text("uid"), "0\n");
    assert_eq!(image.tree().node("uid").owner(), (1000, 1000));
    run(&["system", "reset"]);
    assert!(!store.exists());
}

/// Runs rbuild as `rbuild-nosubid`, a user `scripts/test-deps` makes without subordinate ids.
fn run_as_user_without_subids(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid=rbuild-nosubid",
            "--regid=rbuild-nosubid",
            "--init-groups",
            "--inh-caps=-all",
        ])
        .arg("env")
        .arg("-i")
        .arg("HOME=/var/tmp")
        .arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(rbuild_binary())
        .arg("--root")
        .arg(dir.join("store"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run rbuild as rbuild-nosubid")
}

#[test]
fn without_subordinate_ids_a_single_mapping_is_used_and_unmapped_owners_fail_clearly() {
    let has_user = std::process::Command::new("id")
        .arg("rbuild-nosubid")
        .output()
        .is_ok_and(|o| o.status.success());
    if !require_root() || !gate("user rbuild-nosubid (scripts/test-deps)", has_user) {
        return;
    }
    let Some(archive) = busybox_oci_archive() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("rbuild-nosubid.")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::copy("/bin/busybox", ctx.join("busybox")).expect("copy busybox-static");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox echo ran > /ran\"]\n",
    )
    .expect("write");
    std::fs::write(
        ctx.join("Dockerfile.chown"),
        "FROM scratch\nCOPY --chown=1000:1000 busybox /bin/busybox\n",
    )
    .expect("write");
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg("rbuild-nosubid:")
        .arg(dir.path())
        .status()
        .expect("chown");
    assert!(status.success());
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");

    let out = dir.path().join("single.tar");
    let output = run_as_user_without_subids(
        dir.path(),
        &[
            "build",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "ctx",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        stderr.contains("single-id mapping") && stderr.contains("/etc/subuid"),
        "one notice naming the fix: {stderr}"
    );
    assert_eq!(stderr.matches("single-id mapping").count(), 1, "{stderr}");
    assert_eq!(OciImage::open(&out).tree().text("ran"), "ran\n");

    let output =
        run_as_user_without_subids(dir.path(), &["build", "-f", "ctx/Dockerfile.chown", "ctx"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile.chown:2:")
            && stderr.contains("not mapped")
            && stderr.contains("/etc/subuid"),
        "{stderr}"
    );

    // The fixture has files owned by uid 1000: loading it needs more than one id.
    let output = run_as_user_without_subids(
        dir.path(),
        &["load", "-i", archive.to_str().expect("utf-8")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/etc/subuid") || stderr.contains("subordinate"),
        "{stderr}"
    );
    let _ = run_as_user_without_subids(dir.path(), &["system", "reset"]);
}

/// `--ulimit` and `--shm-size` (docker's build flags) set what RUN steps start with: the
/// limits and /dev/shm's size read back from inside a step; a bad value is refused.
#[test]
fn ulimit_and_shm_size_reach_run_steps() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN ulimit -n > /soft && ulimit -Hn > /hard \
                 && df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm\n",
        ),
    )]);
    let (_, image) = env.build_oci(
        "limits",
        &["--ulimit", "nofile=256:512", "--shm-size", "16m"],
        &ctx,
    );
    let tree = image.tree();
    assert_eq!(tree.text("soft"), "256\n");
    assert_eq!(tree.text("hard"), "512\n");
    assert_eq!(tree.text("shm"), "16384\n");
    let stderr = env.rbuild_err(["build", "--ulimit", "files=1", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("unknown type") && stderr.contains("nofile"),
        "{stderr}"
    );
}
