//! The step's seccomp filter, compared with the oracle: a static probe calls the syscalls
//! Docker's default profile decides on, once under `docker run` (Debian's docker.io) and once
//! in a RUN step, and both must get the same answers. Plus what the filter must not break
//! (setuid binaries: no NO_NEW_PRIVS) and the `--security=insecure` entitlement.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The probe (tests/probes/syscalls.c), built static so it runs in an image of its own.
fn build_probe(env: &TestEnv) -> Option<PathBuf> {
    if !require_command("cc") {
        return None;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/syscalls.c");
    let out = env.path("probe");
    let output = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&source)
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "cc -static failed (libc6-dev provides the static libc):\n{}",
        describe_output(&output)
    );
    Some(out)
}

fn answers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, result)| (name.to_string(), result.to_string()))
        .collect()
}

#[test]
fn step_syscalls_get_the_answers_docker_run_gives() {
    let env = TestEnv::new();
    let Some(probe) = build_probe(&env) else {
        return;
    };
    let Some(docker) = Dockerd::start() else {
        return;
    };
    docker.import_file(&probe, "probe", "rbuild-probe:1");
    let under_docker = docker.run_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "rbuild-probe:1",
        "/probe",
    ]);
    let oracle = answers(&String::from_utf8_lossy(&under_docker.stdout));
    // The oracle itself filters (else the comparison proves nothing).
    assert!(
        oracle.contains(&("clone3".to_string(), "ENOSYS".to_string()))
            && oracle.contains(&("keyctl".to_string(), "EPERM".to_string())),
        "docker run did not apply its default seccomp profile: {oracle:?}"
    );

    let bytes = std::fs::read(&probe).expect("probe");
    let ctx = env.context(&[
        (
            "Dockerfile",
            file("FROM scratch\nCOPY probe /probe\nRUN [\"/probe\", \"/answers\"]\n"),
        ),
        ("probe", executable(bytes)),
    ]);
    let out = env.path("out");
    env.rbuild_ok([
        "build",
        "-o",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let in_step = answers(&std::fs::read_to_string(out.join("answers")).expect("answers"));
    assert_eq!(in_step.len(), oracle.len(), "{in_step:?}");
    for (ours, theirs) in in_step.iter().zip(&oracle) {
        assert_eq!(ours, theirs, "RUN step vs docker run");
    }
}

#[test]
fn the_filter_sets_no_no_new_privs_so_setuid_keeps_working() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status > /status\n\
             RUN su -s /bin/sh nobody -c 'id -u' > /su\n",
        ),
    )]);
    let (_, image) = env.build_oci("filtered", &[], &ctx);
    let tree = image.tree();
    let status = tree.text("status");
    assert!(
        status.contains("Seccomp:\t2"),
        "no filter on the step: {status}"
    );
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    assert_eq!(tree.text("su"), "65534\n");
}

#[test]
fn security_insecure_runs_unfiltered_only_when_allowed() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file(
            "FROM busybox:latest\n\
             RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status > /status\n",
        ),
    )]);
    let stderr = env.rbuild_err(["build", ctx.to_str().expect("utf-8")]);
    assert!(
        stderr.contains("Dockerfile:2") && stderr.contains("--allow security.insecure"),
        "{stderr}"
    );
    let (_, image) = env.build_oci("insecure", &["--allow", "security.insecure"], &ctx);
    let status = image.tree().text("status");
    assert!(status.contains("Seccomp:\t0"), "{status}");
    // every capability of the user namespace, CAP_SYS_ADMIN (bit 21) among them
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("CapEff");
    assert_ne!(cap_eff & (1 << 21), 0, "{status}");
}
