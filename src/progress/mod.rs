//! What the user sees while a build runs: each step (`[2/5] RUN ...`, or `[builder 2/5]` when
//! several stages build), its output, its duration, and notices. Stages running in parallel
//! share one `Progress`; each writes whole lines.

mod display;
mod transfer;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use display::Display;

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

/// The live display of `--progress=tty`: redrawn in place on every step event and ten
/// times a second for the running steps' times.
struct Live {
    state: Mutex<LiveState>,
    started: Instant,
    stop: AtomicBool,
}

#[derive(Default)]
struct LiveState {
    display: Display,
    /// Lines of the last frame, to move back over.
    drawn: usize,
}

impl Live {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Redraws the frame in one write, `above` (a notice, a failed step's log) printed first
    /// so that it scrolls up out of the display.
    fn redraw(&self, state: &mut LiveState, above: Option<&[u8]>) {
        let mut out = Vec::new();
        if state.drawn > 0 {
            // Up to the frame's first line, and clear from there down.
            out.extend_from_slice(format!("\x1b[{}A\r\x1b[J", state.drawn).as_bytes());
        }
        if let Some(text) = above {
            out.extend_from_slice(text);
            if !text.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        let lines = state.display.frame(0, self.now(), terminal_width());
        for line in &lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        state.drawn = lines.len();
        let _ = std::io::stderr().lock().write_all(&out);
    }

    fn with<R>(&self, change: impl FnOnce(&mut LiveState, u64) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now();
        change(&mut state, now)
    }
}

/// Columns of the terminal on standard error (80 when it says none).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|cols| *cols > 0)
        .unwrap_or(80)
}

pub struct Progress {
    mode: ProgressMode,
    stderr: Mutex<()>,
    live: Option<Arc<Live>>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let live = (mode == ProgressMode::Tty).then(|| {
            Arc::new(Live {
                state: Mutex::new(LiveState::default()),
                started: Instant::now(),
                stop: AtomicBool::new(false),
            })
        });
        let ticker = live.clone().map(|live| {
            std::thread::spawn(move || {
                while !live.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    live.with(|state, _| {
                        if state.drawn > 0 {
                            live.redraw(state, None);
                        }
                    });
                }
            })
        });
        Progress {
            mode,
            stderr: Mutex::new(()),
            live,
            ticker: Mutex::new(ticker),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let _guard = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let _ = std::io::stderr().lock().write_all(bytes);
    }

    pub fn notice(&self, text: &str) {
        if let Some(live) = &self.live {
            return live.with(|state, _| live.redraw(state, Some(text.as_bytes())));
        }
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
        if let Some(live) = &self.progress.live {
            return live.with(|state, now| {
                state
                    .display
                    .started(self.label.as_deref(), total, &self.current, text, now);
                live.redraw(state, None);
            });
        }
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
            ProgressMode::Tty | ProgressMode::Quiet => {
                self.held_output.extend_from_slice(line);
                if let Some(live) = &self.progress.live {
                    // Shown at the next tick: output alone does not redraw.
                    live.with(|state, _| {
                        state
                            .display
                            .output(&self.current, &String::from_utf8_lossy(line))
                    });
                }
            }
        }
    }

    pub fn step_finished(&mut self, elapsed: Duration, cached: bool) {
        if let Some(live) = &self.progress.live {
            return live.with(|state, now| {
                state.display.finished(&self.current, cached, now);
                live.redraw(state, None);
            });
        }
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
        if let Some(live) = &self.progress.live {
            // The failing step's whole output, never clipped, above the display.
            let mut text = format!("{} failed; its output:\n", self.current).into_bytes();
            text.extend_from_slice(&std::mem::take(&mut self.held_output));
            return live.with(|state, _| live.redraw(state, Some(&text)));
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

impl Drop for Progress {
    /// The last frame: every step with its final time.
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.stop.store(true, Ordering::Relaxed);
            let ticker = self.ticker.lock().map(|mut t| t.take()).ok().flatten();
            if let Some(ticker) = ticker {
                let _ = ticker.join();
            }
            live.with(|state, _| {
                if state.drawn > 0 {
                    live.redraw(state, None);
                }
            });
        }
    }
}

/// Transfers (pulls, pushes) reported through the build's display: their events are notices
/// (above the live display in tty mode, so it is never drawn over).
impl Reporter for Progress {
    fn line(&self, text: &str) {
        self.notice(&format!("  {text}"));
    }

    /// Bytes of a blob, as a line of the live display (the ticker keeps it current).
    fn transfer(&self, name: &str, done: u64, total: u64) {
        if let Some(live) = &self.live {
            live.with(|state, now| {
                if state.display.transfer(name, done, total, now) || done >= total {
                    live.redraw(state, None);
                }
            });
        }
    }
}
