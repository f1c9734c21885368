//! What the user sees while a build runs: each step (`[2/5] RUN ...`, or `[builder 2/5]` when
//! several stages build), its output, its duration, and notices. Stages running in parallel
//! share one `Progress`; each writes whole lines.

mod transfer;

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

pub use transfer::{JsonTransfers, Reporter, TerminalTransfers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Line-oriented output, the same on a TTY and in a CI log.
    Plain,
    /// Step headers and durations only; step output is shown only when a step fails.
    Tty,
    Quiet,
    /// One JSON object per line on standard error (`--progress=rawjson`), each with a
    /// `type` and these fields:
    /// - `step.started`: `step` (`[2/5]` or `[stage 2/5]`), `stage` (or null), `index`,
    ///   `total`, `name` (the instruction);
    /// - `log`: `step`, `data` (one line of the step's output, without its newline);
    /// - `step.finished`: `step`, `cached`, `seconds`;
    /// - `step.errored`: `step`;
    /// - `notice`: `message` (warnings and other notices);
    /// - `transfer`: `message` (a pull or push event), or `blob`, `done`, `total` (bytes).
    RawJson,
}

/// The rawjson line for `value`.
pub fn json_line(value: serde_json::Value) -> String {
    format!("{value}\n")
}

pub struct Progress {
    mode: ProgressMode,
    stderr: Mutex<()>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        Progress {
            mode,
            stderr: Mutex::new(()),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let _guard = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let _ = std::io::stderr().lock().write_all(bytes);
    }

    pub fn notice(&self, text: &str) {
        match self.mode {
            ProgressMode::Quiet => {}
            ProgressMode::RawJson => self.write(
                json_line(serde_json::json!({"type": "notice", "message": text})).as_bytes(),
            ),
            _ => self.write(format!("{text}\n").as_bytes()),
        }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// The reporter of one stage; `label` is None when the build has a single stage.
    pub fn stage(&self, label: Option<String>) -> StageProgress<'_> {
        StageProgress {
            progress: self,
            label,
            current: String::new(),
            held_output: Vec::new(),
        }
    }
}

pub struct StageProgress<'a> {
    progress: &'a Progress,
    label: Option<String>,
    current: String,
    /// Output of the running step, kept in Tty/Quiet modes to show it if the step fails.
    held_output: Vec<u8>,
}

impl StageProgress<'_> {
    pub fn step_started(&mut self, index: usize, total: usize, text: &str) {
        self.current = match &self.label {
            Some(label) => format!("[{label} {index}/{total}]"),
            None => format!("[{index}/{total}]"),
        };
        self.held_output.clear();
        match self.progress.mode {
            ProgressMode::Quiet => {}
            ProgressMode::RawJson => self.progress.write(
                json_line(serde_json::json!({
                    "type": "step.started",
                    "step": self.current,
                    "stage": self.label,
                    "index": index,
                    "total": total,
                    "name": text,
                }))
                .as_bytes(),
            ),
            _ => self
                .progress
                .write(format!("{} {text}\n", self.current).as_bytes()),
        }
    }

    pub fn step_output(&mut self, line: &[u8]) {
        match self.progress.mode {
            ProgressMode::Plain => {
                let mut out = Vec::with_capacity(line.len() + 8);
                out.extend_from_slice(b"  ");
                out.extend_from_slice(line);
                if !line.ends_with(b"\n") {
                    out.push(b'\n');
                }
                self.progress.write(&out);
            }
            ProgressMode::RawJson => {
                let data = String::from_utf8_lossy(line);
                self.progress.write(
                    json_line(serde_json::json!({
                        "type": "log",
                        "step": self.current,
                        "data": data.strip_suffix('\n').unwrap_or(&data),
                    }))
                    .as_bytes(),
                );
            }
            ProgressMode::Tty | ProgressMode::Quiet => self.held_output.extend_from_slice(line),
        }
    }

    pub fn step_finished(&mut self, elapsed: Duration, cached: bool) {
        match self.progress.mode {
            ProgressMode::Quiet => return,
            ProgressMode::RawJson => {
                return self.progress.write(
                    json_line(serde_json::json!({
                        "type": "step.finished",
                        "step": self.current,
                        "cached": cached,
                        "seconds": elapsed.as_secs_f64(),
                    }))
                    .as_bytes(),
                )
            }
            _ => {}
        }
        let line = if cached {
            format!("{} CACHED\n", self.current)
        } else {
            format!("{} DONE {:.2}s\n", self.current, elapsed.as_secs_f64())
        };
        self.progress.write(line.as_bytes());
    }

    /// The step failed: show what it printed if that was held back.
    pub fn step_failed(&mut self) {
        if self.progress.mode == ProgressMode::RawJson {
            self.progress.write(
                json_line(serde_json::json!({"type": "step.errored", "step": self.current}))
                    .as_bytes(),
            );
            return;
        }
        if !self.held_output.is_empty() {
            let held = std::mem::take(&mut self.held_output);
            self.progress.write(&held);
        }
    }

    pub fn notice(&self, text: &str) {
        self.progress.notice(text);
    }
}
