//! What the user sees while a build runs: each step (`[2/5] RUN ...`), its output, its
//! duration, and notices. `plain` writes lines to stderr; `quiet` keeps only errors.

mod transfer;

use std::io::Write;
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
    current: String,
    /// Output of the running step, kept in Tty/Quiet modes to show it if the step fails.
    held_output: Vec<u8>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        Progress {
            mode,
            current: String::new(),
            held_output: Vec::new(),
        }
    }

    pub fn step_started(&mut self, index: usize, total: usize, text: &str) {
        self.current = format!("[{index}/{total}]");
        self.held_output.clear();
        if self.mode != ProgressMode::Quiet {
            eprintln!("{} {text}", self.current);
        }
    }

    pub fn step_output(&mut self, line: &[u8]) {
        match self.mode {
            ProgressMode::Plain => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(b"  ");
                let _ = err.write_all(line);
                if !line.ends_with(b"\n") {
                    let _ = err.write_all(b"\n");
                }
            }
            ProgressMode::Tty | ProgressMode::Quiet => self.held_output.extend_from_slice(line),
        }
    }

    pub fn step_finished(&mut self, elapsed: Duration, cached: bool) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        if cached {
            eprintln!("{} CACHED", self.current);
        } else {
            eprintln!("{} DONE {:.2}s", self.current, elapsed.as_secs_f64());
        }
    }

    /// The step failed: show what it printed if that was held back.
    pub fn step_failed(&mut self) {
        if !self.held_output.is_empty() {
            let _ = std::io::stderr().write_all(&self.held_output);
            self.held_output.clear();
        }
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    pub fn notice(&mut self, text: &str) {
        if self.mode != ProgressMode::Quiet {
            eprintln!("{text}");
        }
    }
}
