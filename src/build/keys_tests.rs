//! Cache keys from Dockerfile snippets, with a worker that runs nothing: each row builds two
//! variants in fresh stores and says whether the key of the last step must differ. No
//! namespace, mount or process is involved: the keys come from the plan and the step
//! handlers alone, before any effect a step would have.

// Fixtures: contexts and layer dirs these tests make in their own temp dirs.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;

use rbuild_runtime::{OutputStream, RuntimeError, StepOutcome, StepSpec};

use super::{build_on, BuildOptions};
use crate::progress::{Progress, ProgressMode};
use crate::store::{Lease, Store};
use crate::worker::{Executor, OverlaySnapshotter, Snapshot, Snapshotter, Worker, WorkerError};

/// Runs nothing: every RUN "succeeds" and changes nothing.
struct NoRun;

impl Executor for NoRun {
    fn name(&self) -> &'static str {
        "none (tests)"
    }

    fn run(
        &self,
        _spec: &StepSpec,
        _on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<StepOutcome, RuntimeError> {
        Ok(StepOutcome {
            exit_code: 0,
            stubs: Vec::new(),
            notices: Vec::new(),
        })
    }
}

/// A plain directory per step (no overlay: nothing is mounted); what COPY writes there is
/// committed as the overlay snapshotter commits an upper dir.
struct PlainDirs;

impl Snapshotter for PlainDirs {
    fn name(&self) -> &'static str {
        "plain dirs (tests)"
    }

    fn prepare(&self, store: &Store, _: &[String], purpose: &str) -> Result<Snapshot, WorkerError> {
        let temp = store.temp_dir(purpose)?;
        let upper = temp.path().join("upper");
        std::fs::create_dir(&upper).map_err(|source| WorkerError::Io {
            action: "create",
            path: upper.clone(),
            source,
        })?;
        let rootfs = rbuild_runtime::RootfsSpec {
            lower_dirs: Vec::new(),
            upper_dir: upper.clone(),
            work_dir: upper.clone(),
            merged_dir: upper,
            plain: false,
        };
        Ok(Snapshot::new(rootfs, temp))
    }

    fn commit(
        &self,
        store: &Store,
        lease: &Lease,
        snapshot: Snapshot,
    ) -> Result<Option<String>, WorkerError> {
        OverlaySnapshotter::default().commit(store, lease, snapshot)
    }
}

/// One variant of a build: its Dockerfile, context files, build args and secrets.
#[derive(Clone, Default)]
struct Variant {
    dockerfile: &'static str,
    files: Vec<(&'static str, &'static str)>,
    build_args: Vec<(&'static str, &'static str)>,
    secrets: Vec<(&'static str, &'static str)>,
    /// Set the mtime of every context file to this.
    mtime: Option<i64>,
}

fn variant(dockerfile: &'static str) -> Variant {
    Variant {
        dockerfile,
        ..Variant::default()
    }
}

impl Variant {
    fn file(mut self, name: &'static str, content: &'static str) -> Variant {
        self.files.push((name, content));
        self
    }
    fn arg(mut self, name: &'static str, value: &'static str) -> Variant {
        self.build_args.push((name, value));
        self
    }
    fn secret(mut self, id: &'static str, value: &'static str) -> Variant {
        self.secrets.push((id, value));
        self
    }
    fn mtime(mut self, mtime: i64) -> Variant {
        self.mtime = Some(mtime);
        self
    }

    /// The key of the build's last step, built in a fresh store.
    fn last_key(&self) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let context = dir.path().join("context");
        std::fs::create_dir(&context).expect("context dir");
        std::fs::write(context.join("Dockerfile"), self.dockerfile).expect("Dockerfile");
        for (name, content) in &self.files {
            let path = context.join(name);
            std::fs::write(&path, content).expect("context file");
            if let Some(mtime) = self.mtime {
                let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64);
                let file = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .expect("open");
                file.set_modified(time).expect("mtime");
            }
        }
        let store = Store::open(&dir.path().join("store")).expect("store");
        let options = BuildOptions {
            context_dir: context,
            build_args: self
                .build_args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secrets: self
                .secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect::<BTreeMap<_, _>>(),
            jobs: 1,
            quiet_warnings: true,
            ..BuildOptions::default()
        };
        let worker = Worker {
            executor: Box::new(NoRun),
            snapshotter: Box::new(PlainDirs),
        };
        let progress = Progress::new(ProgressMode::Quiet);
        let outcome = build_on(&store, &options, &progress, worker)
            .unwrap_or_else(|e| panic!("{}: {}", self.dockerfile, crate::error_chain(&e)));
        outcome.cache.all.last().cloned().expect("a step key")
    }
}

/// (what, variant a, variant b, must the last step's key differ)
fn rows() -> Vec<(&'static str, Variant, Variant, bool)> {
    let run = |df| variant(df);
    vec![
        (
            "the same Dockerfile",
            run("FROM scratch\nRUN make\n"),
            run("FROM scratch\nRUN make\n"),
            false,
        ),
        (
            "the command",
            run("FROM scratch\nRUN make\n"),
            run("FROM scratch\nRUN make all\n"),
            true,
        ),
        (
            "an ENV before the RUN",
            run("FROM scratch\nENV A=1\nRUN make\n"),
            run("FROM scratch\nENV A=2\nRUN make\n"),
            true,
        ),
        (
            "a LABEL before the RUN (metadata never moves the chain)",
            run("FROM scratch\nLABEL a=1\nRUN make\n"),
            run("FROM scratch\nLABEL a=2\nRUN make\n"),
            false,
        ),
        (
            "the value of an ARG the RUN sees",
            run("FROM scratch\nARG V\nRUN make\n").arg("V", "1"),
            run("FROM scratch\nARG V\nRUN make\n").arg("V", "2"),
            true,
        ),
        (
            "a build arg declared only after the RUN",
            run("FROM scratch\nRUN make\nARG V\n").arg("V", "1"),
            run("FROM scratch\nRUN make\nARG V\n").arg("V", "2"),
            false,
        ),
        (
            "a proxy build arg (it reaches the RUN, not its key)",
            run("FROM scratch\nRUN make\n").arg("http_proxy", "http://a:3128"),
            run("FROM scratch\nRUN make\n").arg("http_proxy", "http://b:3128"),
            false,
        ),
        (
            "USER",
            run("FROM scratch\nUSER 1000\nRUN make\n"),
            run("FROM scratch\nUSER 1001\nRUN make\n"),
            true,
        ),
        (
            "WORKDIR",
            run("FROM scratch\nWORKDIR /a\nRUN make\n"),
            run("FROM scratch\nWORKDIR /b\nRUN make\n"),
            true,
        ),
        (
            "--network",
            run("FROM scratch\nRUN make\n"),
            run("FROM scratch\nRUN --network=none make\n"),
            true,
        ),
        (
            "a secret's value (never in a key)",
            run("FROM scratch\nRUN --mount=type=secret,id=s make\n").secret("s", "one"),
            run("FROM scratch\nRUN --mount=type=secret,id=s make\n").secret("s", "two"),
            false,
        ),
        (
            "a cache mount's target",
            run("FROM scratch\nRUN --mount=type=cache,target=/c make\n"),
            run("FROM scratch\nRUN --mount=type=cache,target=/d make\n"),
            true,
        ),
        (
            "the content of a copied file",
            run("FROM scratch\nCOPY f /f\n").file("f", "one"),
            run("FROM scratch\nCOPY f /f\n").file("f", "two"),
            true,
        ),
        (
            "only the mtime of a copied file",
            run("FROM scratch\nCOPY f /f\n")
                .file("f", "one")
                .mtime(1_000_000),
            run("FROM scratch\nCOPY f /f\n")
                .file("f", "one")
                .mtime(2_000_000),
            false,
        ),
        (
            "a file the COPY does not select",
            run("FROM scratch\nCOPY f /f\n")
                .file("f", "one")
                .file("g", "1"),
            run("FROM scratch\nCOPY f /f\n")
                .file("f", "one")
                .file("g", "2"),
            false,
        ),
        (
            "a step before the RUN changes every key after it",
            run("FROM scratch\nCOPY f /f\nRUN make\n").file("f", "one"),
            run("FROM scratch\nCOPY f /f\nRUN make\n").file("f", "two"),
            true,
        ),
    ]
}

#[test]
fn each_input_moves_exactly_the_keys_it_should() {
    let mut wrong = Vec::new();
    for (what, a, b, differ) in rows() {
        if (a.last_key() != b.last_key()) != differ {
            let want = if differ { "differ" } else { "match" };
            wrong.push(format!("{what}: the keys should {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
