//! What every integration test shares: a world-readable sandbox per test that runs the real
//! `rbuild` binary as an unprivileged user, capability gates, fixtures, and independent checkers.
//!
//! A typical test:
//!
//! ```ignore
//! let Some(env) = TestEnv::with_busybox() else { return };
//! let ctx = env.context(&[("Dockerfile", file("FROM busybox\nRUN echo hi > /hi\n"))]);
//! env.rbuild_ok(&["build", "-t", "t:1", ctx.to_str().unwrap()]);
//! let out = env.path("t.tar");
//! env.rbuild_ok(&["save", "-o", out.to_str().unwrap(), "t:1"]);
//! let image = OciImage::open(&out);
//! assert_eq!(image.tree().text("hi"), "hi\n");
//! ```

// Each test module uses a different part of this.
#![allow(dead_code)]

pub mod craft;
pub mod df;
pub mod docker;
pub mod flaky_proxy;
pub mod git;
pub mod local;
pub mod oci;
pub mod registry;
pub mod sshd;
pub mod tools;

// Re-exported for the test modules; each uses a different part.
#[allow(unused_imports)]
pub use craft::{layer_tar, ImageBuilder, TarEntry};
#[allow(unused_imports)]
pub use df::{build_df, build_df_err, config_field, created_by, df_context, env_value, path_str};
#[allow(unused_imports)]
pub use docker::Dockerd;
#[allow(unused_imports)]
pub use git::{git_in, GitServer};
pub use local::assert_dir_matches_tree;
#[allow(unused_imports)]
pub use oci::{Compression, Layer, Node, NodeKind, OciImage, Tree};
pub use test_support::tar::RawTar;
#[allow(unused_imports)]
pub use tools::{
    podman_load_and_run, podman_load_and_run_with, skopeo_inspect, umoci_unpack, Bundle,
};

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Where sandboxes live: CI's clone may sit under a directory the test user cannot enter.
const SANDBOX_PARENT: &str = "/var/tmp";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The user `scripts/test-deps` creates, used when root runs the tests without RBUILD_TEST_USER.
const DEFAULT_TEST_USER: &str = "rbuild-test";

// ---------------------------------------------------------------------------------------------
// Capability gates

/// True when CI=true: unmet capability gates then fail instead of skipping.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns `available`. When it is false, skips loudly (a message on stderr; the caller
/// returns) or, with CI=true, panics: CI machines install everything the suite needs.
pub fn gate(name: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if is_ci() {
        panic!("capability `{name}` is unavailable and CI=true (scripts/test-deps installs it)");
    }
    // Straight to the stderr handle: libtest captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: capability `{name}` is unavailable (with CI=true this fails)"
    );
    false
}

/// Gate on an executable found in PATH or the system directories.
pub fn require_command(name: &str) -> bool {
    gate(&format!("command `{name}`"), find_command(name).is_some())
}

/// Gate on the test process being root (for tools that need it, such as podman).
pub fn require_root() -> bool {
    gate("test process running as root", is_root())
}

/// The full path of an executable in PATH or the system directories.
pub fn find_command(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(SYSTEM_PATH.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---------------------------------------------------------------------------------------------
// Fixtures (made by scripts/make-fixtures into $RBUILD_FIXTURES)

/// The fixtures directory, or None (after the gate) when RBUILD_FIXTURES is unset or empty.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RBUILD_FIXTURES")
        .map(PathBuf::from)
        .filter(|dir| dir.join("busybox-oci.tar").is_file());
    if gate(
        "fixtures (RBUILD_FIXTURES=DIR after scripts/make-fixtures DIR)",
        dir.is_some(),
    ) {
        dir
    } else {
        None
    }
}

fn fixture(name: &str) -> Option<PathBuf> {
    let path = fixtures_dir()?.join(name);
    gate(&format!("fixture {}", path.display()), path.exists()).then_some(path)
}

/// The busybox base image as an OCI archive, its index tagged `busybox:latest`.
pub fn busybox_oci_archive() -> Option<PathBuf> {
    fixture("busybox-oci.tar")
}

/// The busybox base image as a docker-archive (`docker save` format), tagged `busybox:latest`.
pub fn busybox_docker_archive() -> Option<PathBuf> {
    fixture("busybox-docker.tar")
}

/// The busybox base image as an OCI layout directory, tag `latest`.
pub fn busybox_layout_dir() -> Option<PathBuf> {
    fixture("busybox-layout")
}

// ---------------------------------------------------------------------------------------------
// Who runs rbuild

/// The unprivileged identity that runs `rbuild`: the current user, or (when the test process is
/// root) the test user that setpriv switches to.
#[derive(Debug)]
enum Runner {
    CurrentUser { home: Option<PathBuf>, path: String },
    SwitchTo(TestUser),
}

#[derive(Debug)]
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let runner = pick_runner();
        assert_unprivileged(&runner);
        runner
    })
}

fn pick_runner() -> Runner {
    if !is_root() {
        return Runner::CurrentUser {
            home: std::env::var_os("HOME").map(PathBuf::from),
            path: std::env::var("PATH").unwrap_or_else(|_| SYSTEM_PATH.to_string()),
        };
    }
    let name = std::env::var("RBUILD_TEST_USER")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_USER.to_string());
    let user = nix::unistd::User::from_name(&name)
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
            "the tests run as root, so rbuild must run as an unprivileged user, but user `{name}` \
             does not exist: run scripts/test-deps (or use scripts/test, which does)"
        )
        });
    assert!(
        !user.uid.is_root(),
        "RBUILD_TEST_USER={name} is root: rootless tests would prove nothing"
    );
    Runner::SwitchTo(TestUser {
        name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
    })
}

/// A rootless test that passes only because rbuild ran as root proves nothing: check once that
/// the child really runs with uid != 0 and no effective capabilities.
fn assert_unprivileged(runner: &Runner) {
    let output = unprivileged_command(runner, Path::new("/bin/sh"))
        .args(["-c", "id -u; grep '^CapEff:' /proc/self/status"])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run `id -u` as the test user");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cannot run a command as the test user ({runner:?}): {}",
        describe_output(&output)
    );
    let mut lines = stdout.lines();
    let uid: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("uid from `id -u`");
    assert_ne!(uid, 0, "rbuild would run as root ({runner:?})");
    let cap_eff = lines.next().unwrap_or_default();
    assert!(
        cap_eff
            .trim_start_matches("CapEff:")
            .trim()
            .chars()
            .all(|c| c == '0'),
        "rbuild would run with capabilities ({cap_eff}; {runner:?})"
    );
}

/// A command that runs `program` as the runner, with a clean environment.
fn unprivileged_command(runner: &Runner, program: &Path) -> Command {
    let mut command;
    match runner {
        Runner::CurrentUser { home, path } => {
            command = Command::new(program);
            command.env_clear().env("PATH", path);
            if let Some(home) = home {
                command.env("HOME", home);
            }
            if let Ok(user) = std::env::var("USER") {
                command.env("USER", &user).env("LOGNAME", &user);
            }
        }
        Runner::SwitchTo(user) => {
            command = Command::new("setpriv");
            command
                .arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .args(["--init-groups", "--inh-caps=-all", "--"])
                .arg(program);
            command
                .env_clear()
                .env("PATH", SYSTEM_PATH)
                .env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
    }
    command.env("LANG", "C.UTF-8");
    for name in ["RUST_BACKTRACE", "RUST_LOG"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// Gives a path to the runner (when root switches to a test user); modes stay as they are.
fn hand_over(path: &Path) {
    if let Runner::SwitchTo(user) = runner() {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

// ---------------------------------------------------------------------------------------------
// The binary, copied where the test user can run it

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The rbuild binary under test, copied once per test process into a world-readable directory
/// (`/var/tmp/rbuild-bin.<pid>.*`), removed at exit; copies of dead test processes (killed
/// before exit) are removed on the way. `RBUILD_TEST_BINARY=PATH` tests another build of rbuild
/// (e.g. the commit before a fix, to see a regression test fail).
pub fn rbuild_binary() -> &'static Path {
    BINARY.get_or_init(|| {
        remove_stale_sandboxes();
        let dir = tempfile::Builder::new()
            .prefix(&format!("rbuild-bin.{}.", std::process::id()))
            .tempdir_in(SANDBOX_PARENT)
            .expect("create the binary's directory in /var/tmp")
            .keep();
        set_mode(&dir, 0o755);
        let binary = dir.join("rbuild");
        let tested = std::env::var_os("RBUILD_TEST_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rbuild")));
        fs::copy(&tested, &binary).expect("copy the rbuild binary");
        set_mode(&binary, 0o755);
        // SAFETY: registers a plain function; libtest leaves through exit(), which runs it.
        unsafe { libc::atexit(remove_binary_copy) };
        binary
    })
}

extern "C" fn remove_binary_copy() {
    if let Some(dir) = BINARY.get().and_then(|binary| binary.parent()) {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Removes binary copies and sandboxes whose test process is gone (a crash or an abort skips
/// Drop). Directory names carry the owning pid.
fn remove_stale_sandboxes() {
    let Ok(entries) = fs::read_dir(SANDBOX_PARENT) else {
        return;
    };
    let my_uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix("rbuild-bin.")
            .or_else(|| name.strip_prefix("rbuild-test."))
        else {
            continue;
        };
        let Some(pid) = rest
            .split('.')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let ours = is_root() || std::os::unix::fs::MetadataExt::uid(&metadata) == my_uid;
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree(&entry.path());
        }
    }
}

/// Removes a tree that may hold files of subordinate ids: plain removal as root; otherwise,
/// when that fails, from inside a user namespace that maps our subordinate ids.
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    let removed = Command::new("unshare")
        .args(["--map-root-user", "--map-auto", "rm", "-rf", "--"])
        .arg(path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !removed {
        eprintln!(
            "warning: could not remove {} (files of subordinate ids?)",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Build contexts and other trees written for the test user

/// One entry of a tree written by [`TestEnv::context`] or [`TestEnv::write_tree`].
#[derive(Clone, Debug)]
pub enum Content {
    File {
        bytes: Vec<u8>,
        mode: u32,
    },
    Dir {
        mode: u32,
    },
    Symlink(String),
    /// A hard link to another path of the same tree (written earlier in the list).
    Hardlink(String),
}

/// A regular file with mode 0644.
pub fn file(bytes: impl AsRef<[u8]>) -> Content {
    file_mode(bytes, 0o644)
}

/// A regular file with mode 0755.
pub fn executable(bytes: impl AsRef<[u8]>) -> Content {
    file_mode(bytes, 0o755)
}

/// A regular file with the given mode (setuid, setgid and sticky bits included).
pub fn file_mode(bytes: impl AsRef<[u8]>, mode: u32) -> Content {
    Content::File {
        bytes: bytes.as_ref().to_vec(),
        mode,
    }
}

/// A directory with mode 0755.
pub fn dir() -> Content {
    dir_mode(0o755)
}

pub fn dir_mode(mode: u32) -> Content {
    Content::Dir { mode }
}

pub fn symlink_to(target: &str) -> Content {
    Content::Symlink(target.to_string())
}

pub fn hardlink_to(path_in_tree: &str) -> Content {
    Content::Hardlink(path_in_tree.to_string())
}

// ---------------------------------------------------------------------------------------------
// The sandbox

/// A fresh world-accessible directory under /var/tmp with a store in it, owned by the user that
/// runs rbuild. Drop resets the store (its files belong to subordinate ids) and removes it all;
/// with RBUILD_TEST_KEEP=1 a failing test's sandbox is kept and its path printed.
pub struct TestEnv {
    dir: PathBuf,
    store: PathBuf,
    next_tree: Cell<u32>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        // First use checks that the runner is unprivileged and copies the binary.
        runner();
        rbuild_binary();
        let dir = tempfile::Builder::new()
            .prefix(&format!("rbuild-test.{}.", std::process::id()))
            .tempdir_in(SANDBOX_PARENT)
            .expect("create a sandbox in /var/tmp")
            .keep();
        set_mode(&dir, 0o755);
        hand_over(&dir);
        let store = dir.join("store");
        fs::create_dir(&store).expect("create the store directory");
        set_mode(&store, 0o755);
        hand_over(&store);
        TestEnv {
            dir,
            store,
            next_tree: Cell::new(0),
        }
    }

    /// A new sandbox whose store holds the busybox fixture as `busybox:latest`; None (after the
    /// gate) without fixtures.
    pub fn with_busybox() -> Option<TestEnv> {
        let archive = busybox_oci_archive()?;
        let env = TestEnv::new();
        env.rbuild_ok([OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
        Some(env)
    }

    /// The sandbox directory (owned by the test user; the working directory of every command).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store passed as `--root`.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// A path inside the sandbox, e.g. for `--iidfile` or `save -o`.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// `rbuild --root STORE ARGS...` as the test user, ready to run; add env, stdin or a
    /// working directory as needed (default: the sandbox directory).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = unprivileged_command(runner(), rbuild_binary());
        command
            .arg("--root")
            .arg(&self.store)
            .args(args)
            .current_dir(&self.dir);
        command
    }

    /// Any program (e.g. `sh`, `skopeo`) as the test user, in the sandbox directory.
    pub fn command_as_user(&self, program: &str) -> Command {
        let program = find_command(program).unwrap_or_else(|| PathBuf::from(program));
        let mut command = unprivileged_command(runner(), &program);
        command.current_dir(&self.dir);
        command
    }

    /// Runs rbuild; stdin is empty.
    pub fn rbuild<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        run(&mut command, None)
    }

    /// Runs rbuild with `stdin` as its standard input (e.g. `build -f - CONTEXT`).
    pub fn rbuild_with_stdin<I, S>(&self, args: I, stdin: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        run(&mut command, Some(stdin))
    }

    /// Runs rbuild, panics with its output unless it succeeds, and returns its stdout.
    pub fn rbuild_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        let output = run(&mut command, None);
        assert!(
            output.status.success(),
            "{} failed:\n{}",
            describe_command(&command),
            describe_output(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `rbuild build ARGS... -o type=oci,dest=NAME.tar CONTEXT` as the test user, then the
    /// archive opened (and verified) by the test's own reader. Returns the archive's path too.
    pub fn build_oci(&self, name: &str, args: &[&str], context: &Path) -> (PathBuf, OciImage) {
        let archive = self.path(&format!("{name}.tar"));
        let output = format!("type=oci,dest={}", archive.display());
        let mut all: Vec<&OsStr> = vec![OsStr::new("build")];
        all.extend(args.iter().map(OsStr::new));
        all.extend([OsStr::new("-o"), OsStr::new(&output), context.as_os_str()]);
        self.rbuild_ok(all);
        let image = OciImage::open(&archive);
        (archive, image)
    }

    /// Runs rbuild, panics unless it fails (non-zero exit, not a crash by signal), and returns
    /// its stderr.
    pub fn rbuild_err<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        let output = run(&mut command, None);
        assert!(
            output.status.code().is_some_and(|code| code != 0),
            "{} was expected to fail with an exit code:\n{}",
            describe_command(&command),
            describe_output(&output)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Writes a build context (a new directory in the sandbox) and returns its path.
    pub fn context(&self, entries: &[(&str, Content)]) -> PathBuf {
        let n = self.next_tree.get();
        self.next_tree.set(n + 1);
        self.write_tree(&format!("context-{n}"), entries)
    }

    /// Writes `entries` under `relative_dir` in the sandbox (created when missing, mode 0755);
    /// every file belongs to the test user. Missing parent directories get mode 0755.
    pub fn write_tree(&self, relative_dir: &str, entries: &[(&str, Content)]) -> PathBuf {
        let root = self.dir.join(relative_dir);
        create_dirs(&root);
        let mut modes = Vec::new();
        for (relative, content) in entries {
            let relative = relative.trim_start_matches('/');
            assert!(
                !relative.split('/').any(|c| c == ".."),
                "`..` in a tree path: {relative}"
            );
            let path = root.join(relative);
            if let Some(parent) = path.parent() {
                create_dirs(parent);
            }
            match content {
                Content::File { bytes, mode } => {
                    let mut out = fs::File::create(&path)
                        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
                    out.write_all(bytes)
                        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
                    modes.push((path, *mode));
                }
                Content::Dir { mode } => {
                    create_dirs(&path);
                    modes.push((path, *mode));
                }
                Content::Symlink(target) => {
                    symlink(target, &path)
                        .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
                }
                Content::Hardlink(other) => {
                    let target = root.join(other.trim_start_matches('/'));
                    fs::hard_link(&target, &path).unwrap_or_else(|e| {
                        panic!("link {} to {}: {e}", path.display(), target.display())
                    });
                }
            }
        }
        // Ownership first: chown clears setuid and setgid bits, so modes come after it.
        for entry in walkdir::WalkDir::new(&root).follow_links(false) {
            hand_over(entry.expect("walk the written tree").path());
        }
        for (path, mode) in modes {
            set_mode(&path, mode);
        }
        root
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("RBUILD_TEST_KEEP").is_some() {
            eprintln!("RBUILD_TEST_KEEP: kept the sandbox {}", self.dir.display());
            return;
        }
        let reset = self
            .command(["system", "reset"])
            .stdin(Stdio::null())
            .output();
        if fs::remove_dir_all(&self.dir).is_err() && self.dir.exists() {
            if let Ok(output) = &reset {
                if !output.status.success() {
                    eprintln!("`rbuild system reset` failed:\n{}", describe_output(output));
                }
            }
            remove_tree(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running commands

fn run(command: &mut Command, stdin: Option<&[u8]>) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", describe_command(command)));
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("child stdin");
        let bytes = bytes.to_vec();
        // A writer thread: a child that does not read its stdin must not deadlock the test.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {}: {e}", describe_command(command)))
}

/// The command line as a shell would show it.
pub fn describe_command(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exit status, stdout and stderr, for panic messages.
pub fn describe_output(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command (as the test process's own user) and panics with its output unless it
/// succeeds; returns stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command, None);
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        describe_command(command),
        describe_output(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn create_dirs(path: &Path) {
    let mut missing = Vec::new();
    let mut cursor = Some(path);
    while let Some(dir) = cursor {
        if dir.exists() {
            break;
        }
        missing.push(dir.to_path_buf());
        cursor = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        set_mode(&dir, 0o755);
    }
}
