//! The solver for one Dockerfile stage: walks the instructions, computes each step's cache
//! key, runs or reuses it, and records config and history as BuildKit does.

pub mod copy;
mod error;
mod history;
mod instructions;
mod rootfs;
mod time;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

pub use error::{excerpt, BuildError, Location};
pub use time::{rfc3339, rfc3339_now};

use crate::context::BuildContext;
use crate::dockerfile::{self, InstructionKind};
use crate::image::{History, ImageConfig, DEFAULT_PATH};
use crate::progress::Progress;
use crate::store::Store;

/// Everything `rbuild build` was asked, validated once.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub context_dir: PathBuf,
    /// The Dockerfile; default `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// Normalised tags (`name:tag`).
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    /// Pull the FROM image even when the store has it (re-resolve the tag).
    pub pull: bool,
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub image_id: String,
    pub config: ImageConfig,
}

/// The state of the stage being built.
pub(crate) struct Stage {
    pub config: ImageConfig,
    /// Cache key of the last step (the chain every later key extends).
    pub cache_key: String,
    /// ARGs declared in this stage, in order, with their effective values.
    pub args: Vec<(String, Option<String>)>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl Stage {
    /// Looks a variable up as the Dockerfile sees it: ENV first, then ARGs.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.env_value(name) {
            return Some(v.to_string());
        }
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }

    pub fn shell(&self) -> Vec<String> {
        self.config
            .config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub fn workdir(&self) -> String {
        if self.config.config.working_dir.is_empty() {
            "/".into()
        } else {
            self.config.config.working_dir.clone()
        }
    }

    pub fn add_history(&mut self, created_by: String, created: String, empty_layer: bool) {
        self.config.history.push(History {
            created: Some(created),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer,
            ..History::default()
        });
    }

    /// Extends the cache chain with this step's inputs.
    pub fn next_key(&self, parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.cache_key.as_bytes());
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// Builds the Dockerfile into an image in `store` and tags it.
pub fn build(
    store: &Store,
    options: &BuildOptions,
    progress: &mut Progress,
) -> Result<BuildOutcome, BuildError> {
    let dockerfile_path = options
        .dockerfile
        .clone()
        .unwrap_or_else(|| options.context_dir.join("Dockerfile"));
    let source =
        std::fs::read_to_string(&dockerfile_path).map_err(|source| BuildError::ReadDockerfile {
            path: dockerfile_path.clone(),
            source,
        })?;
    let file = dockerfile_path.display().to_string();
    let parsed = dockerfile::parse(&source).map_err(|e| BuildError::Syntax {
        file: file.clone(),
        line: e.line,
        message: e.message.clone(),
        excerpt: excerpt(&source, e.line, e.line),
    })?;
    for warning in &parsed.warnings {
        progress.notice(&format!(
            "warning: {file}:{}: {}",
            warning.line, warning.message
        ));
    }
    let context = BuildContext::open(&options.context_dir).map_err(|e| BuildError::Io {
        action: format!("open build context {}", options.context_dir.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let escape = parsed.directives.escape;
    let locate = |ins: &dockerfile::Instruction| Location {
        file: file.clone(),
        line: ins.span.line,
        end_line: ins.span.end_line,
        excerpt: excerpt(&source, ins.span.line, ins.span.end_line),
    };

    // Global ARGs (before the first FROM) are visible to FROM only.
    let mut global_args: Vec<(String, Option<String>)> = Vec::new();
    let mut consumed_args: Vec<String> = Vec::new();
    let mut instructions = parsed.instructions.iter().peekable();
    while let Some(ins) = instructions.peek() {
        let InstructionKind::Arg(decls) = &ins.kind else {
            break;
        };
        let loc = locate(ins);
        for decl in decls {
            let value = match options.build_args.get(&decl.name) {
                Some(v) => Some(v.clone()),
                None => match &decl.default {
                    Some(default) => {
                        Some(instructions::expand(&loc, "ARG", default, escape, &|n| {
                            lookup_args(&global_args, n)
                        })?)
                    }
                    None => None,
                },
            };
            consumed_args.push(decl.name.clone());
            global_args.push((decl.name.clone(), value));
        }
        instructions.next();
    }
    let stage_instructions: Vec<&dockerfile::Instruction> = instructions.collect();
    let Some(from) = stage_instructions.first() else {
        return Err(BuildError::Syntax {
            file,
            line: 1,
            message: "no FROM instruction: a Dockerfile must start with FROM (after optional ARGs)"
                .into(),
            excerpt: String::new(),
        });
    };
    if let Some(second) = stage_instructions
        .iter()
        .skip(1)
        .find(|i| matches!(i.kind, InstructionKind::From { .. }))
    {
        return Err(locate(second).error(
            "FROM",
            "multi-stage builds (a second FROM) are not supported yet",
        ));
    }
    let total = stage_instructions.len();
    let mut stage = instructions::dispatch_from(
        instructions::BaseSource {
            store,
            pull: options.pull,
        },
        from,
        &locate(from),
        escape,
        &global_args,
        progress,
        total,
    )?;
    if stage.config.env_value("PATH").is_none() {
        stage.config.set_env("PATH", DEFAULT_PATH);
    }

    let ctx = instructions::StepContext {
        store,
        context: &context,
        options,
        escape,
        global_args: &global_args,
    };
    for (index, ins) in stage_instructions.iter().enumerate().skip(1) {
        let loc = locate(ins);
        if let InstructionKind::Arg(decls) = &ins.kind {
            consumed_args.extend(decls.iter().map(|d| d.name.clone()));
        }
        instructions::dispatch(&ctx, &mut stage, ins, &loc, index + 1, total, progress)?;
    }

    let unused: Vec<&String> = options
        .build_args
        .keys()
        .filter(|k| !consumed_args.contains(k))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        progress.notice(&format!(
            "warning: build-args [{}] were not consumed",
            names.join(" ")
        ));
    }
    for (key, value) in &options.labels {
        stage
            .config
            .config
            .labels
            .insert(key.clone(), value.clone());
    }
    stage.config.created = Some(rfc3339_now());
    let config_bytes = stage
        .config
        .to_canonical_json()
        .map_err(|e| BuildError::Io {
            action: "serialize image config".into(),
            source: std::io::Error::other(e),
        })?;
    let image_id = store.put_blob(&config_bytes)?;
    store.add_image(&image_id, &options.tags)?;
    Ok(BuildOutcome {
        image_id,
        config: stage.config,
    })
}

fn lookup_args(args: &[(String, Option<String>)], name: &str) -> Option<String> {
    args.iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}
