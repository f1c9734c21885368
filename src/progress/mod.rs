//! What the user sees while a build runs: each step (`[2/5] RUN ...`, or `[builder 2/5]` when
//! several stages build), its output, its duration, and notices. Stages running in parallel
//! share one `Progress`; each writes whole lines.

mod transfer;

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

pub use transfer::{Reporter, TerminalTransfers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Line-oriented output, the same on a TTY and in a CI log.
    Plain,
    /// Step headers and durations only; step output is shown only when a step fails.
    Tty,
    Quiet,
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
        if self.mode != ProgressMode::Quiet {
            self.write(format!("{text}\n").as_bytes());
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
        if self.progress.mode != ProgressMode::Quiet {
            self.progress
                .write(format!("{} {text}\n", self.current).as_bytes());
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
            ProgressMode::Tty | ProgressMode::Quiet => self.held_output.extend_from_slice(line),
        }
    }

    pub fn step_finished(&mut self, elapsed: Duration, cached: bool) {
        if self.progress.mode == ProgressMode::Quiet {
            return;
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
        if !self.held_output.is_empty() {
            let held = std::mem::take(&mut self.held_output);
            self.progress.write(&held);
        }
    }

    pub fn notice(&self, text: &str) {
        self.progress.notice(text);
    }
}
