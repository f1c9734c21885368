//! Progress of blob transfers (pull): one line per event in plain mode; on a terminal, a block
//! of per-layer lines (bytes, total, rate) redrawn in place at most ten times a second.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where a transfer reports to; closures taking a line are reporters that ignore bytes.
pub trait Reporter: Sync {
    /// An event worth a line of its own (`sha256:abc: applied`).
    fn line(&self, text: &str);
    /// `done` of `total` bytes of the blob `name` are transferred.
    fn transfer(&self, _name: &str, _done: u64, _total: u64) {}
}

impl<F: Fn(&str) + Sync> Reporter for F {
    fn line(&self, text: &str) {
        self(text)
    }
}

struct Row {
    name: String,
    done: u64,
    total: u64,
    started: Instant,
}

#[derive(Default)]
struct Block {
    rows: Vec<Row>,
    drawn: usize,
    last_draw: Option<Instant>,
}

/// The terminal display: event lines scroll above a live block of transfers.
#[derive(Default)]
pub struct TerminalTransfers {
    block: Mutex<Block>,
}

pub(super) fn human(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 1.0 {
        format!("{mb:.1} MB")
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

impl Block {
    /// Moves the cursor back over the drawn rows and clears them.
    fn erase(&mut self, out: &mut String) {
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A\x1b[J", self.drawn));
            self.drawn = 0;
        }
    }

    fn draw(&mut self, out: &mut String) {
        for row in &self.rows {
            let secs = row.started.elapsed().as_secs_f64().max(0.001);
            out.push_str(&format!(
                "{}: {} / {} ({}/s)\n",
                row.name,
                human(row.done),
                human(row.total),
                human((row.done as f64 / secs) as u64)
            ));
        }
        self.drawn = self.rows.len();
        self.last_draw = Some(Instant::now());
    }
}

/// One write per redraw: no flicker from many small writes.
fn emit(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

impl Reporter for TerminalTransfers {
    fn line(&self, text: &str) {
        let Ok(mut block) = self.block.lock() else {
            return;
        };
        let mut out = String::new();
        block.erase(&mut out);
        out.push_str(text);
        out.push('\n');
        block.draw(&mut out);
        emit(&out);
    }

    fn transfer(&self, name: &str, done: u64, total: u64) {
        let Ok(mut block) = self.block.lock() else {
            return;
        };
        let new_row = match block.rows.iter_mut().find(|r| r.name == name) {
            Some(row) => {
                row.done = done;
                false
            }
            None => {
                block.rows.push(Row {
                    name: name.to_string(),
                    done,
                    total,
                    started: Instant::now(),
                });
                true
            }
        };
        if done >= total {
            block.rows.retain(|r| r.done < r.total);
        }
        let due = block
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        // A new transfer is shown at once, however recent the last redraw.
        if new_row || due || done >= total {
            let mut out = String::new();
            block.erase(&mut out);
            block.draw(&mut out);
            emit(&out);
        }
    }
}

/// `--progress=rawjson` for transfers: every event and byte count as a JSON line.
pub struct JsonTransfers;

impl Reporter for JsonTransfers {
    fn line(&self, text: &str) {
        let line = super::json_line(serde_json::json!({"type": "transfer", "message": text}));
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn transfer(&self, name: &str, done: u64, total: u64) {
        let line = super::json_line(
            serde_json::json!({"type": "transfer", "blob": name, "done": done, "total": total}),
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
