//! The live terminal display of a build (`--progress=tty`), as BuildKit's: a header with the
//! elapsed time and the steps done, one line per step with its time (`CACHED` for hits),
//! and under each running step the last lines of its output. This file only turns the
//! state into a frame of text for a given time and width; `mod.rs` redraws it in place.

use std::collections::VecDeque;

/// Lines of a running step's output shown under it.
const TAIL: usize = 3;

#[derive(Debug)]
struct Step {
    /// `[2/5]` or `[stage 2/5]`.
    label: String,
    name: String,
    started_ms: u64,
    /// (elapsed ms, cached) once finished.
    finished: Option<(u64, bool)>,
    tail: VecDeque<String>,
}

/// A blob being pulled or pushed.
#[derive(Debug)]
struct Transfer {
    name: String,
    done: u64,
    total: u64,
    started_ms: u64,
}

/// What the display shows; times are milliseconds on the caller's clock.
#[derive(Debug, Default)]
pub struct Display {
    steps: Vec<Step>,
    transfers: Vec<Transfer>,
    /// Steps the build will run, by stage label, as the stages announce them.
    totals: Vec<(Option<String>, usize)>,
}

impl Display {
    pub fn started(
        &mut self,
        stage: Option<&str>,
        total: usize,
        label: &str,
        name: &str,
        now: u64,
    ) {
        match self.totals.iter_mut().find(|(s, _)| s.as_deref() == stage) {
            Some(entry) => entry.1 = total,
            None => self.totals.push((stage.map(str::to_string), total)),
        }
        self.steps.push(Step {
            label: label.to_string(),
            name: name.to_string(),
            started_ms: now,
            finished: None,
            tail: VecDeque::new(),
        });
    }

    pub fn output(&mut self, label: &str, line: &str) {
        if let Some(step) = self.running(label) {
            for line in line.lines() {
                if step.tail.len() == TAIL {
                    step.tail.pop_front();
                }
                step.tail.push_back(line.to_string());
            }
        }
    }

    pub fn finished(&mut self, label: &str, cached: bool, now: u64) {
        if let Some(step) = self.running(label) {
            step.finished = Some((now.saturating_sub(step.started_ms), cached));
            step.tail.clear();
        }
    }

    /// `done` of `total` bytes of blob `name`; true when the blob is new (worth a redraw).
    pub fn transfer(&mut self, name: &str, done: u64, total: u64, now: u64) -> bool {
        let new = match self.transfers.iter_mut().find(|t| t.name == name) {
            Some(transfer) => {
                transfer.done = done;
                false
            }
            None => {
                self.transfers.push(Transfer {
                    name: name.to_string(),
                    done,
                    total,
                    started_ms: now,
                });
                true
            }
        };
        self.transfers.retain(|t| t.done < t.total);
        new
    }

    fn running(&mut self, label: &str) -> Option<&mut Step> {
        self.steps
            .iter_mut()
            .rev()
            .find(|s| s.label == label && s.finished.is_none())
    }

    /// The frame at `now`, every line at most `width` characters.
    pub fn frame(&self, started_ms: u64, now: u64, width: usize) -> Vec<String> {
        let done = self.steps.iter().filter(|s| s.finished.is_some()).count();
        let total: usize = self.totals.iter().map(|(_, n)| n).sum();
        let mut lines = vec![fit(
            &format!(
                "[+] Building {} ({done}/{total})",
                seconds(now.saturating_sub(started_ms))
            ),
            width,
        )];
        for step in &self.steps {
            let (ms, cached) = match step.finished {
                Some((ms, cached)) => (ms, cached),
                None => (now.saturating_sub(step.started_ms), false),
            };
            let head = if cached {
                format!(" => CACHED {} {}", step.label, step.name)
            } else {
                format!(" => {} {}", step.label, step.name)
            };
            lines.push(with_time(&head, &seconds(ms), width));
            for line in &step.tail {
                lines.push(fit(&format!(" => => # {line}"), width));
            }
        }
        for transfer in &self.transfers {
            let secs = (now.saturating_sub(transfer.started_ms).max(1)) as f64 / 1000.0;
            let human = super::transfer::human;
            lines.push(fit(
                &format!(
                    " => {}: {} / {} ({}/s)",
                    transfer.name,
                    human(transfer.done),
                    human(transfer.total),
                    human((transfer.done as f64 / secs) as u64)
                ),
                width,
            ));
        }
        lines
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
}

/// `text` cut to `width` characters (an ellipsis marks the cut).
fn fit(text: &str, width: usize) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.chars().count() <= width {
        return text;
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `head` and a right-aligned `time` on one line of `width`, the head cut to make room.
fn with_time(head: &str, time: &str, width: usize) -> String {
    let room = width.saturating_sub(time.chars().count() + 1);
    let head = fit(head, room);
    let pad = room.saturating_sub(head.chars().count()) + 1;
    format!("{head}{}{time}", " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames on a fake clock, as text.
    #[test]
    fn frames_show_running_and_finished_steps() {
        let mut display = Display::default();
        display.started(None, 3, "[1/3]", "FROM busybox:latest", 0);
        display.finished("[1/3]", false, 40);
        display.started(None, 3, "[2/3]", "RUN make", 100);
        for line in ["one", "two", "three", "four"] {
            display.output("[2/3]", line);
        }
        assert_eq!(
            display.frame(0, 1600, 40),
            [
                "[+] Building 1.6s (1/3)",
                " => [1/3] FROM busybox:latest       0.0s",
                " => [2/3] RUN make                  1.5s",
                " => => # two",
                " => => # three",
                " => => # four",
            ]
        );
        display.finished("[2/3]", false, 2300);
        display.started(
            None,
            3,
            "[3/3]",
            "COPY a-very-long-source-name /somewhere/deep/",
            2300,
        );
        display.finished("[3/3]", true, 2300);
        assert_eq!(
            display.frame(0, 2400, 40),
            [
                "[+] Building 2.4s (3/3)",
                " => [1/3] FROM busybox:latest       0.0s",
                " => [2/3] RUN make                  2.2s",
                " => CACHED [3/3] COPY a-very-long-… 0.0s",
            ]
        );
    }

    #[test]
    fn transfers_show_bytes_and_rate_until_done() {
        let mut display = Display::default();
        assert!(display.transfer("sha256:abc", 1_000_000, 4_000_000, 0));
        assert!(!display.transfer("sha256:abc", 2_000_000, 4_000_000, 1000));
        assert_eq!(
            display.frame(0, 1000, 80)[1],
            " => sha256:abc: 2.0 MB / 4.0 MB (2.0 MB/s)"
        );
        display.transfer("sha256:abc", 4_000_000, 4_000_000, 1500);
        assert_eq!(display.frame(0, 1500, 80).len(), 1, "done: gone");
    }

    #[test]
    fn parallel_stages_each_have_their_lines() {
        let mut display = Display::default();
        display.started(Some("a"), 2, "[a 2/2]", "RUN sleep 1", 0);
        display.started(Some("b"), 3, "[b 2/3]", "RUN sleep 2", 10);
        display.output("[b 2/3]", "from b");
        let frame = display.frame(0, 1000, 60);
        assert_eq!(frame[0], "[+] Building 1.0s (0/5)");
        assert!(frame[1].starts_with(" => [a 2/2] RUN sleep 1") && frame[1].ends_with("1.0s"));
        assert!(frame[2].starts_with(" => [b 2/3] RUN sleep 2") && frame[2].ends_with("0.9s"));
        assert_eq!(frame[3], " => => # from b");
        assert!(frame.iter().all(|l| l.chars().count() <= 60));
    }
}
