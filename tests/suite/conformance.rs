//! The differential harness (`scripts/conformance`): each case under `conformance/cases/ID/`
//! is a Dockerfile, its context and a `case.json`; it is built by rbuild and compared with what
//! an oracle built — Docker's BuildKit (Debian's docker.io 20.10, `DOCKER_BUILDKIT=1`) —
//! recorded in `conformance/golden/ID.json`. The comparison is a normalized summary (see
//! `conformance/NORMALIZE.md`): the config, the history (count, `empty_layer`, `created_by`),
//! the layer count and the final file tree (type, mode, owner, size, content digest, link
//! target, hard-link groups, xattrs); for a failing case, the instruction it fails at.
//!
//! Where the oracle is not today's BuildKit (dockerd 20.10 carries BuildKit v0.8), `case.json`
//! records the current behaviour and the source that decides it: `"decided": [{"at":
//! "/summary/history[1]/created_by", "expect": ..., "source": "..."}]`, applied over the
//! golden file before comparing (the golden file itself stays what the oracle built).
//!
//! Hard links and xattrs, which git cannot store, are listed in `case.json` (`"hardlinks"`,
//! `"xattrs"`) and made in the copied context.
//!
//! In CI every case runs against its golden file, without the oracle. `scripts/conformance
//! --refresh` (the ignored test `conformance_refresh`) rebuilds the golden files with the
//! oracle. A case rbuild does not match yet says so in `case.json` (`"pending"`, with why):
//! it must still differ (a fix must remove the marker), and it is listed on every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::docker::Dockerd;
use crate::support::oci::{NodeKind, OciImage, Tree};
use crate::support::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// One case: its id, its dir, and what `case.json` says.
struct Case {
    id: String,
    dir: PathBuf,
    meta: Value,
}

impl Case {
    fn build_args(&self) -> Vec<String> {
        self.meta["build_args"]
            .as_object()
            .map(|args| {
                args.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn pending(&self) -> Option<&str> {
        self.meta["pending"].as_str()
    }

    fn golden_path(&self) -> PathBuf {
        root().join("golden").join(format!("{}.json", self.id))
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(root().join("cases"))
        .expect("conformance/cases")
        .filter_map(Result::ok)
        .map(|entry| {
            let dir = entry.path();
            let meta = std::fs::read(dir.join("case.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_else(|| json!({}));
            Case {
                id: entry.file_name().to_string_lossy().into_owned(),
                dir,
                meta,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    cases
}

/// The summary of a tree entry: `kind mode uid:gid` plus what identifies its content.
fn node_summary(tree: &Tree, path: &str, links: &BTreeMap<String, String>) -> String {
    let node = tree.node(path);
    let what = match &node.kind {
        NodeKind::File { sha256, size, .. } => format!("file {size} {sha256}"),
        NodeKind::Hardlink(target) => {
            let file = tree.node(target);
            match &file.kind {
                NodeKind::File { sha256, size, .. } => format!("file {size} {sha256}"),
                other => format!("{other:?}"),
            }
        }
        NodeKind::Dir => "dir".to_string(),
        NodeKind::Symlink(target) => format!("symlink {target}"),
        other => format!("{other:?}"),
    };
    let mut text = format!("{what} {:o} {}:{}", node.mode, node.uid, node.gid);
    if let Some(group) = links.get(path) {
        text.push_str(&format!(" linked:{group}"));
    }
    for (name, value) in &node.xattrs {
        text.push_str(&format!(" xattr:{name}={}", hex::encode(value)));
    }
    text
}

/// Hard-link groups: each member path to the group's first path (in path order).
fn link_groups(tree: &Tree) -> BTreeMap<String, String> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in tree.paths() {
        if let NodeKind::Hardlink(target) = &tree.node(path).kind {
            groups
                .entry(target.clone())
                .or_default()
                .push(path.to_string());
        }
    }
    let mut out = BTreeMap::new();
    for (target, mut members) in groups {
        members.push(target);
        members.sort();
        let first = members[0].clone();
        for member in members {
            out.insert(member, first.clone());
        }
    }
    out
}

/// The summaries of the busybox base's entries (the fixture every case's FROM names).
fn base_tree() -> &'static BTreeMap<String, String> {
    static BASE: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let Some(archive) = busybox_oci_archive() else {
            return BTreeMap::new();
        };
        let image = OciImage::open(&archive);
        let tree = image.tree();
        let links = link_groups(tree);
        tree.paths()
            .map(|p| (p.to_string(), node_summary(tree, p, &links)))
            .collect()
    })
}

/// The normalized summary of an image (NORMALIZE.md says what is left out and why).
fn summary(image: &OciImage) -> Value {
    let config = image.config();
    let inner = &config["config"];
    let mut kept = serde_json::Map::new();
    for field in [
        "User",
        "Env",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ] {
        let value = inner.get(field).cloned().unwrap_or(Value::Null);
        // An empty list, map or string is what an absent field means.
        let empty = match &value {
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        if !value.is_null() && !empty {
            kept.insert(field.to_string(), value);
        }
    }
    let history: Vec<Value> = image
        .history()
        .iter()
        .map(|h| {
            json!({
                "created_by": normalize_created_by(h["created_by"].as_str().unwrap_or_default()),
                "empty_layer": h["empty_layer"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    let tree = image.tree();
    let links = link_groups(tree);
    // Only what differs from the busybox base every case starts from (absent: removed).
    let base = base_tree();
    let mut files: BTreeMap<String, String> = tree
        .paths()
        .map(|p| (p.to_string(), node_summary(tree, p, &links)))
        .filter(|(p, summary)| base.get(p) != Some(summary))
        .collect();
    for path in base.keys() {
        if tree.get(path).is_none() {
            files.insert(path.clone(), "absent".to_string());
        }
    }
    json!({
        "config": kept,
        "architecture": config["architecture"],
        "os": config["os"],
        "history": history,
        "layers": image.layer_count(),
        "tree": files,
    })
}

/// `created_by` without BuildKit's ` # buildkit` comment (Docker's `docker save` of a
/// BuildKit image and rbuild both write it; older BuildKit writes `/bin/sh -c #(nop)`-less
/// forms alike), so the instruction text itself is compared.
fn normalize_created_by(text: &str) -> String {
    text.trim_end_matches(" # buildkit").to_string()
}

/// Where a failing build stopped, as the text of the Dockerfile's instruction: from rbuild's
/// excerpt (`   3 | RUN false`), BuildKit's step (` > [2/3] RUN false:`), or the line number
/// an error names (`line 3:`, `Dockerfile:3`, for errors before any step runs).
fn failing_instruction(output: &str, dockerfile: &str) -> Option<String> {
    let line_text = |number: usize| {
        dockerfile
            .lines()
            .nth(number.checked_sub(1)?)
            .map(|l| l.trim().to_string())
    };
    for line in output.lines() {
        let line = line.trim();
        if let Some((number, text)) = line.split_once(" | ") {
            if number.trim().parse::<u32>().is_ok() {
                return Some(text.trim().to_string());
            }
        }
        if let Some(rest) = line.strip_prefix("> [") {
            if let Some((_, text)) = rest.split_once("] ") {
                return Some(text.trim_end_matches(':').trim().to_string());
            }
        }
        // buildah: `error building at STEP "RUN false": ...`
        if let Some((_, rest)) = line.split_once("at STEP \"") {
            if let Some((text, _)) = rest.split_once("\": ") {
                return Some(text.trim().to_string());
            }
        }
    }
    for marker in ["line ", "Dockerfile:"] {
        for (at, _) in output.match_indices(marker) {
            let digits: String = output[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Some(text) = digits.parse().ok().and_then(line_text) {
                return Some(text);
            }
        }
    }
    None
}

/// The case's context: its dir minus `case.json` (copied, so the file is not in the context).
fn context_of(env: &TestEnv, case: &Case) -> PathBuf {
    let dir = env.path(&format!("case-{}", case.id));
    run_ok(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&case.dir)
            .arg(&dir),
    );
    let _ = std::fs::remove_file(dir.join("case.json"));
    // Hard links git cannot keep: `"hardlinks": [["existing", "new"], ...]`.
    for pair in case.meta["hardlinks"].as_array().into_iter().flatten() {
        if let (Some(from), Some(to)) = (pair[0].as_str(), pair[1].as_str()) {
            std::fs::hard_link(dir.join(from), dir.join(to)).expect("hard link in the context");
        }
    }
    run_ok(
        std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dir),
    );
    // xattrs git cannot keep: `"xattrs": [["path", "name", "hex value"], ...]`, set after the
    // chmod (which would not clear them; a chown would clear security.capability).
    for item in case.meta["xattrs"].as_array().into_iter().flatten() {
        if let (Some(path), Some(name), Some(value)) =
            (item[0].as_str(), item[1].as_str(), item[2].as_str())
        {
            let value = hex::decode(value).expect("xattr value in hex");
            xattr::set(dir.join(path), name, &value).expect("set an xattr in the context");
        }
    }
    dir
}

/// rbuild's result for `case`: `{"summary": ...}` or `{"fails_at": ...}`.
fn rbuild_result(env: &TestEnv, case: &Case) -> Value {
    let context = context_of(env, case);
    let archive = env.path(&format!("case-{}.tar", case.id));
    let mut args = vec!["build".to_string(), "-q".to_string()];
    for arg in case.build_args() {
        args.extend(["--build-arg".to_string(), arg]);
    }
    args.extend([
        "-o".to_string(),
        format!("type=oci,dest={}", archive.display()),
        context.display().to_string(),
    ]);
    let output = env.rbuild(&args);
    if output.status.success() {
        json!({ "summary": summary(&OciImage::open(&archive)) })
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap_or_default();
        json!({ "fails_at": failing_instruction(&stderr, &dockerfile) })
    }
}

/// Sets the value at `at` (`/key/list[2]/key`, the paths `differences` prints) in `value`.
fn set_at(value: &mut Value, at: &str, new: Value) {
    // A tree path is one key, slashes and all (`/summary/tree/dir/file`).
    if let Some(path) = at.strip_prefix("/summary/tree/") {
        value["summary"]["tree"][path] = new;
        return;
    }
    let mut here = value;
    for part in at.split('/').filter(|p| !p.is_empty()) {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        here = &mut here[key];
        if let Some(i) = index {
            here = &mut here[i];
        }
    }
    *here = new;
}

/// The golden result with the case's decisions applied.
fn expected(case: &Case, golden: &Value) -> Value {
    let mut result = golden["result"].clone();
    for decision in case.meta["decided"].as_array().into_iter().flatten() {
        let at = decision["at"].as_str().expect("a decision names where");
        assert!(
            decision["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{}: a decision names its source",
            case.id
        );
        if at.is_empty() {
            result = decision["expect"].clone();
        } else {
            set_at(&mut result, at, decision["expect"].clone());
        }
    }
    result
}

/// What differs between two results, path by path.
fn differences(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_values("", expected, actual, &mut out);
    out
}

fn diff_values(at: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for key in keys {
                let (ev, av) = (
                    e.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                );
                diff_values(&format!("{at}/{key}"), ev, av, out);
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() && at != "/summary/config" => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff_values(&format!("{at}[{i}]"), ev, av, out);
            }
        }
        _ if expected != actual => out.push(format!("{at}: oracle {expected}, rbuild {actual}")),
        _ => {}
    }
}

/// Where buildah's golden file (the second oracle) and BuildKit's (with the case's
/// decisions) differ on what buildah can judge, the case must say why buildah cannot judge
/// it (`"buildah": "..."` in case.json); a marker where they agree must go.
fn oracles_disagree(case: &Case, golden: &Value) -> Option<String> {
    let buildah: Value =
        serde_json::from_slice(&std::fs::read(buildah_golden_path(case)).ok()?).ok()?;
    let buildkit = buildah_view(&expected(case, golden));
    let buildah = buildah_view(&buildah["result"]);
    // An error buildah finds before any step (parsing, resolving stages) names no
    // instruction: both failing is all it can say.
    let both_fail = buildah == json!({ "fails_at": null }) && buildkit.get("fails_at").is_some();
    let found = if both_fail {
        Vec::new()
    } else {
        differences(&buildkit, &buildah)
    };
    match (case.meta["buildah"].as_str(), found.is_empty()) {
        (None, false) => Some(format!(
            "{}: buildah and BuildKit disagree; say in case.json \"buildah\" why buildah cannot judge it:\n  {}",
            case.id,
            found.join("\n  ").replace("rbuild", "buildah")
        )),
        (Some(_), true) => Some(format!(
            "{}: buildah agrees with BuildKit now: remove its \"buildah\" marker",
            case.id
        )),
        _ => None,
    }
}

#[test]
fn conformance_cases_match_their_golden_files() {
    let Some(env) = TestEnv::with_busybox() else {
        return;
    };
    let mut failures = Vec::new();
    let mut pending = Vec::new();
    let mut compared = 0;
    for case in cases() {
        let Ok(golden) = std::fs::read(case.golden_path()) else {
            failures.push(format!(
                "{}: no golden file (scripts/conformance --refresh)",
                case.id
            ));
            continue;
        };
        let golden: Value = serde_json::from_slice(&golden).expect("golden json");
        if let Some(problem) = oracles_disagree(&case, &golden) {
            failures.push(problem);
        }
        let actual = rbuild_result(&env, &case);
        let found = differences(&expected(&case, &golden), &actual);
        compared += 1;
        match (case.pending(), found.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!("{}:\n  {}", case.id, found.join("\n  "))),
            (Some(why), false) => {
                pending.push(format!("{} ({why}): {} differences", case.id, found.len()))
            }
            (Some(_), true) => failures.push(format!(
                "{}: matches the oracle now: remove its \"pending\" marker",
                case.id
            )),
        }
    }
    if !pending.is_empty() {
        eprintln!(
            "conformance: {} pending:\n  {}",
            pending.len(),
            pending.join("\n  ")
        );
    }
    eprintln!(
        "conformance: {compared} cases compared, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `conformance/COVERAGE.md` maps the reference to the cases: it names every case, and
/// only cases that exist.
#[test]
fn coverage_map_names_every_case_and_only_cases() {
    let map = std::fs::read_to_string(root().join("COVERAGE.md")).expect("COVERAGE.md");
    let ids: Vec<String> = cases().into_iter().map(|c| c.id).collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !map.contains(id.as_str())).collect();
    assert!(
        missing.is_empty(),
        "cases missing from COVERAGE.md: {missing:?}"
    );
    // Every word shaped like a case id (`area-NNN-...`) is one.
    let unknown: Vec<&str> = map
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            let parts: Vec<&str> = w.splitn(3, '-').collect();
            parts.len() == 3
                && parts[0].chars().all(|c| c.is_ascii_lowercase())
                && parts[1].len() == 3
                && parts[1].chars().all(|c| c.is_ascii_digit())
        })
        .filter(|w| !ids.iter().any(|id| id == w))
        .collect();
    assert!(
        unknown.is_empty(),
        "COVERAGE.md names no such case: {unknown:?}"
    );
    assert!(ids.len() >= 200, "{} cases", ids.len());
}

/// Builds `case` with Docker's BuildKit on `docker` and returns its result.
fn buildkit_result(docker: &Dockerd, env: &TestEnv, case: &Case) -> Value {
    let context = context_of(env, case);
    let tag = format!("conformance/{}:1", case.id.to_ascii_lowercase());
    // The host's network for RUN, as rbuild's default: the private dockerd has no bridge.
    let mut args: Vec<String> = ["build", "--progress=plain", "--network", "host", "-t", &tag]
        .iter()
        .map(|a| a.to_string())
        .collect();
    for arg in case.build_args() {
        args.extend(["--build-arg".to_string(), arg]);
    }
    args.push(context.display().to_string());
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = docker
        .command(&arg_refs)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("docker build");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("Sending build context to Docker daemon"),
        "{}: the legacy builder answered, not BuildKit:\n{text}",
        case.id
    );
    if !output.status.success() {
        let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap_or_default();
        let at = failing_instruction(&text, &dockerfile);
        if at.is_none() {
            eprintln!(
                "{}: the oracle failed before any instruction:\n{text}",
                case.id
            );
        }
        return json!({ "fails_at": at });
    }
    let saved = env.path(&format!("oracle-{}.tar", case.id));
    docker.run_ok(&["save", "-o", saved.to_str().expect("utf-8"), &tag]);
    json!({ "summary": summary(&OciImage::open(&saved)) })
}

/// Buildah (Debian's 1.28, `bud --layers --isolation chroot`), the second oracle, in a store
/// of its own under /var/tmp, with the busybox fixture as `busybox:latest`.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn start(fixtures: &Path) -> Option<Buildah> {
        if !require_command("buildah") {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rbuild-buildah.")
            .tempdir_in("/var/tmp")
            .expect("buildah dir");
        let buildah = Buildah { dir };
        let archive = fixtures.join("busybox-oci.tar");
        run_ok(
            buildah
                .command()
                .args(["pull", "-q"])
                .arg(format!("oci-archive:{}", archive.display())),
        );
        run_ok(buildah.command().args([
            "tag",
            "localhost/busybox:latest",
            "docker.io/library/busybox:latest",
        ]));
        Some(buildah)
    }

    fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new("buildah");
        command
            .arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs"]);
        command
    }

    fn version(&self) -> String {
        run_ok(self.command().arg("--version")).trim().to_string()
    }

    /// Builds `case` and returns its result, as `buildkit_result` does.
    fn result(&self, env: &TestEnv, case: &Case) -> Value {
        let context = context_of(env, case);
        let tag = format!("localhost/conformance/{}:1", case.id);
        let mut command = self.command();
        command.args([
            "bud",
            "-q",
            "--layers",
            "--isolation",
            "chroot",
            "--pull-never",
            // Docker's format keeps what OCI's config has no field for (Healthcheck, Shell,
            // OnBuild), as Docker's BuildKit writes it.
            "--format",
            "docker",
            "-t",
            &tag,
        ]);
        for arg in case.build_args() {
            command.args(["--build-arg", &arg]);
        }
        let output = command.arg(&context).output().expect("buildah bud");
        if !output.status.success() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let dockerfile =
                std::fs::read_to_string(context.join("Dockerfile")).unwrap_or_default();
            return json!({ "fails_at": failing_instruction(&text, &dockerfile) });
        }
        let saved = env.path(&format!("buildah-{}.tar", case.id));
        run_ok(
            self.command()
                .args(["push", "-q", &tag])
                .arg(format!("docker-archive:{}", saved.display())),
        );
        json!({ "summary": summary(&OciImage::open(&saved)) })
    }
}

/// What buildah can judge of a result (NORMALIZE.md): the config (without buildah's own
/// `io.buildah.version` label), the platform and the file tree, or where a build fails.
/// History and layer shape are BuildKit's alone: buildah commits differently by design.
fn buildah_view(result: &Value) -> Value {
    let Some(summary) = result.get("summary").filter(|s| !s.is_null()) else {
        // Buildah prints the failing step its own way (`ONBUILD onbuild`, an exec form
        // joined): the instruction's keyword is what both oracles can be compared on.
        let keyword = result["fails_at"]
            .as_str()
            .and_then(|at| at.split_whitespace().next())
            .map(str::to_ascii_uppercase);
        return json!({ "fails_at": keyword });
    };
    let mut config = summary["config"].clone();
    if let Some(labels) = config.get_mut("Labels").and_then(Value::as_object_mut) {
        labels.remove("io.buildah.version");
        if labels.is_empty() {
            config.as_object_mut().map(|c| c.remove("Labels"));
        }
    }
    // The empty stubs buildah's chroot isolation leaves after a RUN (its bind mounts of
    // /etc/hosts, /etc/resolv.conf, /etc/hostname and /run); BuildKit removes its own.
    let mut tree = summary["tree"].clone();
    if let Some(tree) = tree.as_object_mut() {
        for (path, stub) in BUILDAH_STUBS {
            if tree.get(path).and_then(Value::as_str) == Some(stub) {
                tree.remove(path);
            }
        }
    }
    json!({
        "config": config,
        "architecture": summary["architecture"],
        "os": summary["os"],
        "tree": tree,
    })
}

const EMPTY_FILE_STUB: &str =
    "file 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 755 0:0";

/// Mount stubs buildah leaves in a RUN's layer, as the summary shows them.
const BUILDAH_STUBS: [(&str, &str); 4] = [
    ("run", "dir 755 0:0"),
    ("etc/hosts", EMPTY_FILE_STUB),
    ("etc/resolv.conf", EMPTY_FILE_STUB),
    ("etc/hostname", EMPTY_FILE_STUB),
];

fn buildah_golden_path(case: &Case) -> PathBuf {
    root()
        .join("golden-buildah")
        .join(format!("{}.json", case.id))
}

/// `scripts/conformance --refresh`: every case built by the oracle, its golden file rewritten.
#[test]
#[ignore = "runs the oracle: scripts/conformance --refresh"]
fn conformance_refresh() {
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let Some(docker) = Dockerd::start() else {
        return;
    };
    docker.run_ok(&[
        "load",
        "-i",
        fixtures.join("busybox-docker.tar").to_str().expect("utf-8"),
    ]);
    let version = docker.run_ok(&["version", "--format", "{{.Server.Version}}"]);
    let oracle = format!(
        "Docker BuildKit (dockerd {})",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let env = TestEnv::new();
    let only: Vec<String> = std::env::var("CONFORMANCE_CASES")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    for case in cases() {
        if !only.is_empty() && !only.contains(&case.id) {
            continue;
        }
        let result = buildkit_result(&docker, &env, &case);
        let golden = json!({ "oracle": oracle, "result": result });
        let mut text = serde_json::to_string_pretty(&golden).expect("json");
        text.push('\n');
        std::fs::write(case.golden_path(), text).expect("write golden");
        eprintln!("refreshed {}", case.id);
    }
}

/// `scripts/conformance --refresh-buildah`: every case built by buildah, the second oracle,
/// into `conformance/golden-buildah/`.
#[test]
#[ignore = "runs buildah: scripts/conformance --refresh-buildah"]
fn conformance_refresh_buildah() {
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let Some(buildah) = Buildah::start(&fixtures) else {
        return;
    };
    let oracle = buildah.version();
    let env = TestEnv::new();
    let only: Vec<String> = std::env::var("CONFORMANCE_CASES")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    std::fs::create_dir_all(root().join("golden-buildah")).expect("golden-buildah dir");
    for case in cases() {
        if !only.is_empty() && !only.contains(&case.id) {
            continue;
        }
        let result = buildah.result(&env, &case);
        let golden = json!({ "oracle": oracle, "result": result });
        let mut text = serde_json::to_string_pretty(&golden).expect("json");
        text.push('\n');
        std::fs::write(buildah_golden_path(&case), text).expect("write golden");
        eprintln!("refreshed {} (buildah)", case.id);
    }
}
