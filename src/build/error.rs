//! Build errors: each names the Dockerfile line it comes from, where there is one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read the Dockerfile {path}")]
    ReadDockerfile {
        path: PathBuf,
        #[source]
        source: boundary::RootError,
    },
    #[error("open build context {path}")]
    OpenContext {
        path: PathBuf,
        #[source]
        source: crate::context::ContextError,
    },
    #[error("{file}:{line}: {message}\n{excerpt}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
        excerpt: String,
    },
    #[error("{file}:{line}: {keyword}: {message}\n{excerpt}")]
    Instruction {
        file: String,
        line: usize,
        keyword: &'static str,
        message: String,
        excerpt: String,
    },
    #[error(
        "{file}:{line}: process \"{command}\" did not complete successfully: exit code: {exit_code}\n{excerpt}"
    )]
    RunFailed {
        file: String,
        line: usize,
        command: String,
        exit_code: i32,
        excerpt: String,
    },
    /// Build checks found problems and `# check=error=true` (or `--check`) makes them count.
    #[error("{file}: {count} build check warning(s){}", if *check_only { "" } else { " (check=error=true)" })]
    Checks {
        file: String,
        count: usize,
        check_only: bool,
    },
    #[error("{origin}: {source}")]
    CheckOptions {
        origin: String,
        #[source]
        source: crate::plan::checks::CheckOptionError,
    },
    #[error(transparent)]
    Emulation(#[from] rbuild_runtime::binfmt::EmulationError),
    /// One platform's build of several failed.
    #[error("building for {platform}")]
    ForPlatform {
        platform: String,
        #[source]
        source: Box<BuildError>,
    },
    #[error("the build for {platform} panicked: a bug, please report it")]
    Panicked { platform: String },
    /// Another stage failed; this one stopped before its next step.
    #[error("cancelled because another stage failed")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Runtime(#[from] rbuild_runtime::RuntimeError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Worker(#[from] crate::worker::WorkerError),
    #[error("cannot squash the build's layers")]
    Squash(#[from] boundary::walk::WalkError),
    /// The runtime could not prepare a mount (an overlay view for COPY, a RUN mount).
    #[error(transparent)]
    Setup(#[from] rbuild_runtime::SetupError),
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where an instruction is, for building errors that point at it.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub end_line: usize,
    /// The instruction's source lines, numbered, as shown under an error.
    pub excerpt: String,
}

impl Location {
    pub fn error(&self, keyword: &'static str, message: impl Into<String>) -> BuildError {
        BuildError::Instruction {
            file: self.file.clone(),
            line: self.line,
            keyword,
            message: message.into(),
            excerpt: self.excerpt.clone(),
        }
    }
}

/// ` 12 | RUN false` lines for `first..=last` of `source`.
pub fn excerpt(source: &str, first: usize, last: usize) -> String {
    numbered(source.lines().skip(first.max(1) - 1), first, last)
}

fn numbered<'a>(lines: impl Iterator<Item = &'a str>, first: usize, last: usize) -> String {
    let first = first.max(1);
    lines
        .take(last.saturating_sub(first) + 1)
        .enumerate()
        .map(|(i, text)| format!(" {:>4} | {}", first + i, text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where each line of a Dockerfile starts, so that an instruction's excerpt costs its own
/// lines, not a walk from the top: a Dockerfile of 100,000 lines asks for 100,000 of them.
pub struct SourceLines<'a> {
    source: &'a str,
    starts: Vec<usize>,
}

impl<'a> SourceLines<'a> {
    pub fn new(source: &'a str) -> SourceLines<'a> {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        SourceLines { source, starts }
    }

    /// The same text as [`excerpt`] gives for the whole source.
    pub fn excerpt(&self, first: usize, last: usize) -> String {
        let Some(&start) = self.starts.get(first.max(1) - 1) else {
            return String::new();
        };
        numbered(self.source[start..].lines(), first, last)
    }
}

pub fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let action = action.into();
    move |source| BuildError::Io { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_excerpts_match_the_walk_from_the_top() {
        let source = "FROM a\r\nRUN x \\\n  y\n\nENV A=1\nLABEL last";
        let lines = SourceLines::new(source);
        for first in 1..=7 {
            for last in first..=8 {
                assert_eq!(
                    lines.excerpt(first, last),
                    excerpt(source, first, last),
                    "{first}..={last}"
                );
            }
        }
        assert_eq!(lines.excerpt(2, 3), "    2 | RUN x \\\n    3 |   y");
    }
}
