//! docs/ci: each recipe's own lines (read from the doc between its `rbuild-recipe` markers),
//! run in the container its platform would start, made with the equivalent `docker run` line
//! on a private dockerd with Docker's default security, with the platform's variables set as
//! it sets them, against a basic-auth registry on loopback. The image must be pushed (skopeo
//! reads it back with the credentials) and a second run, from an empty store, must take every
//! step from the registry cache.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::docker::Dockerd;
use crate::support::registry::{Registry, RegistryOptions};
use crate::support::*;

const USER: &str = "ci-bot";
const PASSWORD: &str = "recipe-Pa55";

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/ci")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The lines between `# rbuild-recipe-begin` and `# rbuild-recipe-end`, as shell lines (YAML
/// list items lose their `- `).
fn recipe_script(text: &str) -> String {
    let body = text
        .split("# rbuild-recipe-begin")
        .nth(1)
        .and_then(|rest| rest.split("# rbuild-recipe-end").next())
        .expect("recipe markers");
    body.lines()
        .map(|line| line.trim_start())
        .map(|line| line.strip_prefix("- ").unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `args:` flow sequence on the line after `# rbuild-recipe-args` (JSON-compatible).
fn recipe_args(text: &str) -> Vec<String> {
    let line = text
        .split("# rbuild-recipe-args")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .expect("args marker");
    let list = line
        .trim()
        .strip_prefix("args:")
        .expect("an args: line")
        .trim();
    serde_json::from_str(list).expect("args as a JSON array")
}

struct World {
    docker: Dockerd,
    registry: Registry,
    env: TestEnv,
    /// A git repository served on loopback, with the context at tag v1.
    git_url: String,
    _git: crate::support::git::GitServer,
    context: PathBuf,
}

fn world() -> Option<World> {
    let image = std::env::var_os("RBUILD_IMAGE").map(PathBuf::from);
    if !gate(
        "the rbuild image (RBUILD_IMAGE=FILE after scripts/image FILE)",
        image.as_ref().is_some_and(|i| i.exists()),
    ) {
        return None;
    }
    let image = image?;
    let fixture = busybox_oci_archive()?;
    let docker = Dockerd::start()?;
    let registry = Registry::start_with(RegistryOptions {
        basic_auth: Some((USER.into(), PASSWORD.into())),
        tls: true,
        token: None,
    })?;
    registry.seed_busybox(
        &fixture,
        "library/busybox:latest",
        Some(&format!("{USER}:{PASSWORD}")),
    );
    docker.run_ok(&["load", "-i", image.to_str().expect("utf-8")]);
    let env = TestEnv::new();
    let dockerfile = format!(
        "FROM {}/library/busybox:latest\nCOPY app.txt /app.txt\nRUN echo $((6*7)) > /answer\n",
        registry.host
    );
    let context = env.context(&[
        ("Dockerfile", file(&dockerfile)),
        ("app.txt", file("the app\n")),
    ]);
    // The same context as a git repository, for the recipes that build from a URL.
    let repo = env.path("app.git");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("Dockerfile"), &dockerfile).expect("write");
    std::fs::write(repo.join("app.txt"), "the app\n").expect("write");
    let git = |args: &[&str]| crate::support::git::git_in(&repo, args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "app"]);
    git(&["tag", "v1"]);
    let server = crate::support::git::GitServer::serve(&env.path(""));
    Some(World {
        git_url: server.url("app.git"),
        _git: server,
        docker,
        registry,
        env,
        context,
    })
}

impl World {
    /// `docker run` of the rbuild image: default security, the host's network (the
    /// registry is on loopback), `extra` flags, then the command.
    fn run(&self, extra: &[&str], command: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--network", "host"];
        args.extend_from_slice(extra);
        args.push("rbuild:latest");
        args.extend_from_slice(command);
        self.docker.command(&args).output().expect("run docker")
    }

    /// A fresh directory for a volume.
    fn volume(&self, name: &str) -> PathBuf {
        let dir = self.env.path(name);
        std::fs::create_dir_all(&dir).expect("volume dir");
        dir
    }

    /// A docker config.json with the registry's credentials, in a fresh dir.
    fn docker_config(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let dir = self.volume(name);
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        std::fs::write(
            dir.join("config.json"),
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
                self.registry.host
            ),
        )
        .expect("config.json");
        dir
    }

    /// The pushed image, read back by skopeo with the credentials: it holds the context's
    /// file.
    fn check_pushed(&self, reference: &str) {
        let inspect = crate::support::tools::skopeo_inspect_with(
            &format!("docker://{reference}"),
            &[
                "--tls-verify=false",
                "--creds",
                &format!("{USER}:{PASSWORD}"),
            ],
        )
        .expect("skopeo");
        assert_eq!(
            inspect["Layers"].as_array().map(Vec::len),
            Some(3),
            "{inspect}"
        );
    }
}

/// Runs a recipe twice (fresh store each time): both succeed, the second takes the COPY and
/// the RUN from the registry cache.
fn twice(recipe: &str, run: &dyn Fn(usize) -> Output) {
    for round in 0..2 {
        let output = run(round);
        assert!(
            output.status.success(),
            "{recipe} run {round}: {}",
            describe_output(&output)
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !text.contains(PASSWORD),
            "{recipe}: the password was printed"
        );
        if round == 1 {
            assert_eq!(
                text.matches("] CACHED").count(),
                2,
                "{recipe}: the second run hits the registry cache: {text}"
            );
        }
    }
}

#[test]
fn gitlab_ci_recipe() {
    let Some(world) = world() else { return };
    let script = recipe_script(&doc("gitlab.md"));
    let project = "/builds/group/app";
    let image = format!("{}/group/app", world.registry.host);
    twice("gitlab", &|round| {
        let builds = world.volume(&format!("gitlab-builds-{round}"));
        std::fs::create_dir_all(builds.join("group")).expect("mkdir");
        run_ok(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(&world.context)
                .arg(builds.join("group/app")),
        );
        world.run(
            &[
                "--entrypoint",
                "",
                "-v",
                &format!("{}:/builds", builds.display()),
                "-w",
                project,
                "-e",
                "CI_BUILDS_DIR=/builds",
                "-e",
                &format!("CI_PROJECT_DIR={project}"),
                "-e",
                &format!("CI_REGISTRY={}", world.registry.host),
                "-e",
                &format!("CI_REGISTRY_IMAGE={image}"),
                "-e",
                &format!("CI_REGISTRY_USER={USER}"),
                "-e",
                &format!("CI_REGISTRY_PASSWORD={PASSWORD}"),
                "-e",
                "CI_COMMIT_SHORT_SHA=0a1b2c3d",
                // The job's variables.
                "-e",
                "RBUILD_ROOT=/builds/.rbuild-store",
            ],
            &["/bin/sh", "-e", "-c", &script],
        )
    });
    world.check_pushed(&format!("{image}:0a1b2c3d"));
}

#[test]
fn github_actions_container_job_recipe() {
    let Some(world) = world() else { return };
    let script = recipe_script(&doc("github-actions.md"));
    let image = format!("{}/owner/app", world.registry.host);
    twice("github", &|round| {
        let store = world.volume(&format!("github-store-{round}"));
        world.run(
            &[
                "--entrypoint",
                "",
                "-v",
                &format!("{}:/rbuild/store", store.display()),
                "-e",
                &format!("IMAGE={image}"),
                "-e",
                &format!("REGISTRY_USER={USER}"),
                "-e",
                &format!("REGISTRY_TOKEN={PASSWORD}"),
                "-e",
                &format!("SOURCE={}#v1", world.git_url),
            ],
            &["sh", "-e", "-c", &script],
        )
    });
    world.check_pushed(&format!("{image}:latest"));
}

#[test]
fn kubernetes_job_recipe() {
    let Some(world) = world() else { return };
    let args: Vec<String> = recipe_args(&doc("kubernetes-job.md"))
        .into_iter()
        .map(|arg| {
            arg.replace("registry.example.com", &world.registry.host)
                .replace("https://git.example.com/team/app.git", &world.git_url)
        })
        .collect();
    let config = world.docker_config("k8s-docker-config");
    let image = format!("{}/team/app:1", world.registry.host);
    twice("kubernetes", &|round| {
        let store = world.volume(&format!("k8s-store-{round}"));
        let mut command: Vec<&str> = Vec::new();
        command.extend(args.iter().map(String::as_str));
        world.run(
            &[
                "--user",
                "0",
                "-v",
                &format!("{}:/rbuild/store", store.display()),
                "-v",
                &format!("{}:/rbuild/.docker:ro", config.display()),
            ],
            &command,
        )
    });
    world.check_pushed(&image);
}

#[test]
fn tekton_task_recipe() {
    let Some(world) = world() else { return };
    let script = recipe_script(&doc("tekton.md"));
    let config = world.docker_config("tekton-docker-config");
    let image = format!("{}/team/tekton-app", world.registry.host);
    twice("tekton", &|round| {
        let store = world.volume(&format!("tekton-store-{round}"));
        world.run(
            &[
                "--entrypoint",
                "",
                "--user",
                "0",
                "-v",
                &format!("{}:/rbuild/store", store.display()),
                "-v",
                &format!("{}:/workspace/source:ro", world.context.display()),
                "-v",
                &format!("{}:/workspace/dockerconfig:ro", config.display()),
                "-e",
                &format!("IMAGE={image}"),
                "-e",
                "SOURCE=/workspace/source",
                "-e",
                "CONFIG=/workspace/dockerconfig",
            ],
            &["/rbuild/bin/sh", "-c", &script],
        )
    });
    world.check_pushed(&image);
}

#[test]
fn recipe_markers_hold_the_lines_the_docs_show() {
    let gitlab = recipe_script(&doc("gitlab.md"));
    assert_eq!(gitlab.lines().count(), 2, "{gitlab}");
    assert!(gitlab.starts_with("echo \"$CI_REGISTRY_PASSWORD\" | rbuild login"));
    let args = recipe_args(&doc("kubernetes-job.md"));
    assert_eq!(args.first().map(String::as_str), Some("build"));
    assert!(args.iter().any(|a| a == "--push"));
}
