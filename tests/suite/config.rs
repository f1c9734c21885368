//! The image config and history a build writes, read back from the exported archive and by
//! skopeo: what `docker buildx build` would record for the same Dockerfile.

use serde_json::json;

use crate::support::*;

const DOCKERFILE: &str = r#"FROM busybox:latest
ARG VERSION=1.0
ENV APP_HOME=/srv/app PATH_EXTRA="a b"
LABEL org.example.version=$VERSION "quoted key"="quoted value"
WORKDIR $APP_HOME
RUN echo "v=$VERSION" > version.txt
USER app:extra
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["wget", "-q", "localhost"]
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo hello
MAINTAINER someone@example.com
"#;

#[test]
fn config_fields_match_the_dockerfile() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[("Dockerfile", file(DOCKERFILE))]);
    let (_, image) = env.build_oci(
        "config",
        &[
            "-t",
            "cfg:1",
            "--build-arg",
            "VERSION=2.5",
            "--label",
            "from-cli=yes",
        ],
        &ctx,
    );
    let config = image.runtime_config();
    assert_eq!(
        config["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_HOME=/srv/app",
            "PATH_EXTRA=a b"
        ])
    );
    assert_eq!(config["WorkingDir"], json!("/srv/app"));
    assert_eq!(config["User"], json!("app:extra"));
    assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(
        config["Cmd"],
        json!(["/bin/sh", "-ec", "echo hello"]),
        "shell-form CMD uses SHELL"
    );
    assert_eq!(
        config["ExposedPorts"],
        json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
    );
    assert_eq!(config["Volumes"], json!({"/data": {}, "/cache": {}}));
    assert_eq!(config["StopSignal"], json!("SIGTERM"));
    assert_eq!(
        config["Labels"],
        json!({"org.example.version": "2.5", "quoted key": "quoted value", "from-cli": "yes"})
    );
    assert_eq!(
        config["Healthcheck"],
        json!({"Test": ["CMD", "wget", "-q", "localhost"], "Interval": 30_000_000_000u64, "Timeout": 5_000_000_000u64, "Retries": 3})
    );
    assert_eq!(config["Shell"], json!(["/bin/sh", "-ec"]));
    assert_eq!(image.config()["author"], json!("someone@example.com"));
    assert_eq!(image.config()["os"], json!("linux"));
    assert_eq!(
        image.tree().text("srv/app/version.txt"),
        "v=2.5\n",
        "ARG reaches RUN as env"
    );
    assert!(
        config.get("VERSION").is_none() && !config["Env"].to_string().contains("VERSION"),
        "ARG is not persisted"
    );
}

#[test]
fn history_is_written_as_buildkit_does() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[("Dockerfile", file(DOCKERFILE))]);
    let (_, image) = env.build_oci("history", &["--build-arg", "VERSION=2.5"], &ctx);
    let history = image.history();
    let ours: Vec<(String, bool)> = history[1..]
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or("").to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let expected: Vec<(&str, bool)> = vec![
        ("ARG VERSION=2.5", true),
        ("ENV APP_HOME=/srv/app PATH_EXTRA=a b", true),
        ("LABEL org.example.version=2.5 quoted key=quoted value", true),
        ("WORKDIR /srv/app", false),
        ("RUN |1 VERSION=2.5 /bin/sh -c echo \"v=$VERSION\" > version.txt # buildkit", false),
        ("USER app:extra", true),
        ("EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]", true),
        ("VOLUME [/data /cache]", true),
        ("STOPSIGNAL SIGTERM", true),
        ("HEALTHCHECK &{[\"CMD\" \"wget\" \"-q\" \"localhost\"] \"30s\" \"5s\" \"0s\" \"0s\" '\\x03'}", true),
        ("SHELL [/bin/sh -ec]", true),
        ("ENTRYPOINT [\"/bin/sh\" \"-c\"]", true),
        ("CMD [\"/bin/sh\" \"-ec\" \"echo hello\"]", true),
        ("MAINTAINER someone@example.com", true),
    ];
    let expected: Vec<(String, bool)> = expected
        .into_iter()
        .map(|(s, e)| (s.to_string(), e))
        .collect();
    assert_eq!(ours, expected);
    for entry in &history[1..] {
        assert_eq!(entry["comment"], json!("buildkit.dockerfile.v0"));
        assert!(
            entry["created"].as_str().is_some_and(|c| c.ends_with('Z')),
            "created: {entry}"
        );
    }
    let non_empty = history
        .iter()
        .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
        .count();
    assert_eq!(
        non_empty,
        image.diff_ids().len(),
        "one non-empty history entry per layer"
    );
}

#[test]
fn entrypoint_clears_inherited_cmd_and_default_path_is_added() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let base = env.context(&[("Dockerfile", file("FROM scratch\nCMD [\"from-base\"]\n"))]);
    env.rbuild_ok([
        "build",
        "-t",
        "base-with-cmd",
        base.to_str().expect("utf-8"),
    ]);
    let child = env.context(&[(
        "Dockerfile",
        file("FROM base-with-cmd\nENTRYPOINT [\"/app\"]\n"),
    )]);
    let (_, image) = env.build_oci("child", &[], &child);
    assert_eq!(image.runtime_config()["Entrypoint"], json!(["/app"]));
    assert!(
        image
            .runtime_config()
            .get("Cmd")
            .is_none_or(|c| c.is_null()),
        "inherited CMD is cleared: {}",
        image.runtime_config()
    );
    assert_eq!(
        image.runtime_config()["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(
        image.layer_count(),
        0,
        "metadata-only image from scratch has no layers"
    );
}

#[test]
fn skopeo_reads_the_oci_output() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let ctx = env.context(&[(
        "Dockerfile",
        file("FROM busybox:latest\nRUN echo hi > /hi\nCMD [\"cat\", \"/hi\"]\n"),
    )]);
    let (out, _) = env.build_oci("skopeo", &["-t", "sk:1"], &ctx);
    let Some(inspect) = skopeo_inspect(&format!("oci-archive:{}", out.display())) else {
        return;
    };
    let image = OciImage::open(&out);
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(image.layer_count())
    );
    assert_eq!(inspect["Architecture"], image.config()["architecture"]);
    assert_eq!(image.ref_names(), vec!["sk:1".to_string()]);
}
