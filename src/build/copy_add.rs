//! The COPY and ADD instructions: their flags, the step's cache key and history, owners and
//! modes, archives ADD extracts, and the layer they commit. Where the files come from is
//! `copy_select`'s.

use std::collections::BTreeMap;
use std::time::Instant;

use super::copy::{copy_sources, join_image_path, Chmod, CopyAttrs};
use super::copy_select::{copy_source, gather, heredoc_files, CopySource, Gathered, Selection};
use super::error::{BuildError, Location};
use super::instructions::{expand, not_supported};
use super::steps::{finish_step_chained, record_layer, StepContext};
use super::{Stage, StageResult};
use crate::context::{hash_selection_with, IgnoreRules};
use crate::dockerfile::{CopyArgs, CopyFlags};
use crate::plan::StagePlan;
use crate::worker::MountedRootfs;

pub(super) fn resolve_owner(
    mounted: &MountedRootfs,
    spec: &str,
    loc: &Location,
    keyword: &'static str,
) -> Result<(u32, u32), BuildError> {
    // A uid alone is also the gid, without a look at /etc/passwd (BuildKit's file ops take
    // an id user as uid:uid; conformance case copy-001-chown-uid).
    if let Ok(id) = spec.parse::<u32>() {
        return Ok((id, id));
    }
    if spec.trim().is_empty() || spec.split(':').count() > 2 {
        return Err(loc.error(
            keyword,
            format!("--chown={spec}: expected USER[:GROUP] (names or numbers)"),
        ));
    }
    let passwd = mounted.read_image_file("/etc/passwd");
    let group = mounted.read_image_file("/etc/group");
    Ok(rbuild_runtime::user::chown_ids(spec, &passwd, &group))
}

/// The flags of one COPY or ADD, checked and expanded in the stage.
struct CopyStep {
    keyword: &'static str,
    is_add: bool,
    flags: CopyFlags,
    unpack: bool,
    chown: Option<String>,
    chmod: Option<Chmod>,
    excludes: Vec<String>,
    exclude_rules: IgnoreRules,
}

impl CopyStep {
    fn read(
        ctx: &StepContext,
        stage: &Stage,
        loc: &Location,
        args: &CopyArgs,
        is_add: bool,
    ) -> Result<CopyStep, BuildError> {
        let keyword = if is_add { "ADD" } else { "COPY" };
        // Which flags each instruction takes the parser has checked; here they are read, once.
        let mut flags = args.flags.clone();
        if is_add {
            check_add_sources(loc, &args.sources, flags.checksum.is_some())?;
        }
        let expand_here = |word: &str| expand(loc, keyword, word, ctx.escape, &|n| stage.lookup(n));
        // As BuildKit's Expand of COPY/ADD: --chown, --chmod and --checksum take variables.
        let chown = flags.chown.as_deref().map(expand_here).transpose()?;
        flags.chmod = flags.chmod.as_deref().map(expand_here).transpose()?;
        flags.checksum = flags.checksum.as_deref().map(expand_here).transpose()?;
        let chmod = flags
            .chmod
            .as_deref()
            .map(Chmod::parse)
            .transpose()
            .map_err(|e| loc.error(keyword, e.to_string()))?;
        let excludes: Vec<String> = flags
            .excludes
            .iter()
            .map(|e| expand_here(e))
            .collect::<Result<_, _>>()?;
        Ok(CopyStep {
            keyword,
            is_add,
            unpack: flags.unpack.unwrap_or(is_add),
            chown,
            chmod,
            exclude_rules: IgnoreRules::parse(&excludes.join("\n")),
            excludes,
            flags,
        })
    }

    fn selection(&self) -> Selection<'_> {
        Selection {
            keyword: self.keyword,
            is_add: self.is_add,
            parents: self.flags.parents,
            excludes: &self.exclude_rules,
            checksum: self.flags.checksum.as_deref(),
            unpack_downloads: self.flags.unpack == Some(true),
            keep_git_dir: self.flags.keep_git_dir,
        }
    }

    /// The history's `created_by`, as BuildKit writes it.
    fn created_by(&self, sources: &[String], dest_raw: &str) -> String {
        let mut created_by = String::from(self.keyword);
        if self.flags.parents {
            created_by.push_str(" --parents");
        }
        if let Some(chown) = &self.chown {
            created_by.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = &self.flags.chmod {
            created_by.push_str(&format!(" --chmod={chmod}"));
        }
        for source in sources {
            created_by.push(' ');
            created_by.push_str(source);
        }
        created_by.push_str(&format!(" {dest_raw} # buildkit"));
        created_by
    }

    /// What the step's cache key is made of: the flags, where the files come from, their
    /// content, and where they go.
    fn key_parts(
        &self,
        from_key: &str,
        content: &str,
        dest: &str,
        dest_is_dir: bool,
    ) -> Vec<String> {
        let flags = &self.flags;
        vec![
            self.keyword.to_string(),
            format!(
                "unpack={} parents={} exclude={:?} link={}",
                self.unpack, flags.parents, self.excludes, flags.link
            ),
            from_key.to_string(),
            content.to_string(),
            dest.to_string(),
            dest_is_dir.to_string(),
            self.chown.clone().unwrap_or_default(),
            flags.chmod.clone().unwrap_or_default(),
        ]
    }
}

/// ADD's remote sources: http(s) URLs and git repositories only; --checksum with one URL.
fn check_add_sources(loc: &Location, sources: &[String], checksum: bool) -> Result<(), BuildError> {
    let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
    let is_git = |s: &String| crate::context::remote::is_git_url(s);
    if let Some(remote) = sources
        .iter()
        .find(|s| (s.contains("://") || s.starts_with("git@")) && !is_git(s) && !is_url(s))
    {
        return Err(not_supported(
            loc,
            "ADD",
            &format!("a remote source ({remote})"),
        ));
    }
    if checksum && (sources.len() != 1 || !sources.iter().all(|s| is_url(s) && !is_git(s))) {
        return Err(loc.error(
            "ADD",
            "--checksum can only be used with a single http(s) source",
        ));
    }
    Ok(())
}

pub(super) fn copy(
    ctx: &StepContext,
    stage: &mut Stage,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    args: &CopyArgs,
    is_add: bool,
) -> Result<bool, BuildError> {
    let step = CopyStep::read(ctx, stage, loc, args, is_add)?;
    let keyword = step.keyword;
    let link = step.flags.link;
    let source = copy_source(ctx, plan, deps, loc, step.flags.from.as_deref())?;
    let heredocs = heredoc_files(ctx, stage, loc, &args.heredocs)?;
    let how = step.selection();
    let gathered = gather(ctx, stage, loc, &how, &source, &args.sources, &heredocs)?;
    let dest_raw = expand(loc, keyword, &args.dest, ctx.escape, &|n| stage.lookup(n))?;
    // Several sources into a destination without `/` are no error (the reference says it
    // must be a directory; BuildKit copies each in turn: into it when it is an existing
    // directory, else the last one is the file; conformance cases copy-007, copy-011,
    // copy-013).
    let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
    let dest = join_image_path(&stage.workdir(), &dest_raw);
    let created_by = step.created_by(&gathered.sources, &dest_raw);

    let hashing = Instant::now();
    let content = hash_selection_with(&gathered.selected, &ctx.hashes);
    ctx.timings.add(&ctx.timings.hash_ns, hashing);
    let content = content.map_err(|e| loc.error(keyword, e.to_string()))?;
    let from_key = match &source {
        CopySource::Context => "context",
        CopySource::Layers(layers) => layers.key.as_str(),
        CopySource::Dir(_) => "named-context",
    };
    let parts = step.key_parts(from_key, &content, &dest, dest_is_dir);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    // --link: the layer does not depend on the layers below, so neither does its key; the
    // stage's chain still moves on from it.
    let key = if link {
        Stage::independent_key(&parts)
    } else {
        stage.next_key(&parts)
    };
    let chained = |stage: &Stage| {
        if link {
            stage.next_key(&[&key])
        } else {
            key.clone()
        }
    };
    let _step_lock = ctx.store.step_lock(&key)?;
    if !stage.no_cache {
        if let Some(record) = ctx.lookup(stage, &key) {
            let next = chained(stage);
            record_layer(stage, record.diff_id, created_by, record.created);
            stage.cache_key = next;
            return Ok(true);
        }
    }
    let into_dir = dest_is_dir || step.flags.parents;
    let diff_id = write_layer(ctx, stage, loc, &step, &source, &gathered, &dest, into_dir)?;
    drop(source);
    let next = chained(stage);
    finish_step_chained(ctx, stage, &key, next, diff_id, created_by)?;
    Ok(false)
}

/// True when ADD extracts `sel`: a local archive (told by its content), not a download kept
/// whole.
fn is_extracted(step: &CopyStep, gathered: &Gathered, sel: &crate::context::Selected) -> bool {
    step.unpack
        && !sel.is_dir()
        && !sel
            .entries
            .first()
            .is_some_and(|e| gathered.kept_whole.contains(&e.host_path))
        && sel.entries.first().is_some_and(|e| {
            // Only a regular file is opened to sniff it: a FIFO would block.
            matches!(e.kind, crate::context::SourceKind::File { .. })
                && super::add::archive_kind(e).is_some()
        })
}

/// Writes the selected files (and extracts ADD's archives) into a new snapshot over the
/// stage's layers (over nothing with --link) and commits it.
#[allow(clippy::too_many_arguments)]
fn write_layer(
    ctx: &StepContext,
    stage: &Stage,
    loc: &Location,
    step: &CopyStep,
    source: &CopySource,
    gathered: &Gathered,
    dest: &str,
    into_dir: bool,
) -> Result<Option<String>, BuildError> {
    let keyword = step.keyword;
    let link = step.flags.link;
    // A --link layer is written over nothing: its own files only, no copied-up parents.
    let lower_layers: Vec<String> = if link {
        Vec::new()
    } else {
        stage.config.rootfs.diff_ids.clone()
    };
    let snapshot = ctx.prepare(&lower_layers, "copy")?;
    {
        let mounted = ctx.mount(&snapshot)?;
        let owner = match (&step.chown, source) {
            (Some(spec), _) => Some(resolve_owner_for(
                ctx, stage, &mounted, link, spec, loc, keyword,
            )?),
            // Files of another stage or image keep their owners, as in BuildKit.
            (None, CopySource::Layers(_)) => None,
            (None, CopySource::Context | CopySource::Dir(_)) => Some((0, 0)),
        };
        let (archives, plain): (Vec<_>, Vec<_>) = gathered
            .selected
            .iter()
            .cloned()
            .partition(|sel| is_extracted(step, gathered, sel));
        for entry in archives.iter().filter_map(|sel| sel.entries.first()) {
            // Extracted files keep the archive's owners unless --chown says otherwise.
            let chown_owner = if step.chown.is_some() { owner } else { None };
            super::add::extract_archive(mounted.root_fd(), entry, dest, chown_owner)
                .map_err(|e| loc.error(keyword, crate::error_chain(&e)))?;
        }
        let stay_on = ctx
            .worker
            .snapshotter
            .kept()
            .and_then(|kept| super::copy::StayOn::of_root(mounted.root_fd(), kept.clone()));
        if let Some(stay_on) = &stay_on {
            // ADD's archives are extracted into dest: it must be a place the copy may write.
            if !archives.is_empty() {
                let dest_fd = crate::build::rootfs::open_in_root(
                    mounted.root_fd(),
                    dest,
                    rustix::fs::OFlags::DIRECTORY,
                );
                if let Ok(fd) = dest_fd {
                    stay_on
                        .check(&fd, dest)
                        .map_err(|e| loc.error(keyword, crate::error_chain(&e)))?;
                }
            }
        }
        let attrs = CopyAttrs {
            owner,
            chmod: step.chmod.clone(),
            keep_dir_names: step.flags.parents,
            stay_on,
        };
        copy_sources(mounted.root_fd(), &plain, dest, into_dir, attrs)
            .map_err(|e| loc.error(keyword, crate::error_chain(&e)))?;
    }
    ctx.commit(snapshot)
}

/// --chown by name: resolved in the destination stage's /etc/passwd and /etc/group (for a
/// --link layer, written over nothing, the stage's own view is mounted to read them).
pub(super) fn resolve_owner_for(
    ctx: &StepContext,
    stage: &Stage,
    mounted: &MountedRootfs,
    link: bool,
    spec: &str,
    loc: &Location,
    keyword: &'static str,
) -> Result<(u32, u32), BuildError> {
    if !link || spec.split(':').all(|part| part.parse::<u32>().is_ok()) {
        return resolve_owner(mounted, spec, loc, keyword);
    }
    let (view_mounted, _view) = ctx.mount_view(&stage.config.rootfs.diff_ids, "chown")?;
    resolve_owner(&view_mounted, spec, loc, keyword)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(flags: CopyFlags) -> CopyStep {
        CopyStep {
            keyword: "COPY",
            is_add: false,
            unpack: flags.unpack.unwrap_or(false),
            chown: flags.chown.clone(),
            chmod: None,
            excludes: flags.excludes.clone(),
            exclude_rules: IgnoreRules::parse(&flags.excludes.join("\n")),
            flags,
        }
    }

    /// Every flag that changes what lands in the layer, the source, its content and the
    /// destination are in a COPY's key; the same inputs give the same key.
    #[test]
    fn every_input_of_a_copy_is_in_its_key() {
        let base = step(CopyFlags::default());
        let parts = |s: &CopyStep| s.key_parts("context", "sha256:content", "/app/", true);
        assert_eq!(parts(&base), parts(&step(CopyFlags::default())));
        type Change = fn(&mut CopyFlags);
        let flag_changes: [(&str, Change); 6] = [
            ("--link", |f| f.link = true),
            ("--parents", |f| f.parents = true),
            ("--chown", |f| f.chown = Some("app".into())),
            ("--chmod", |f| f.chmod = Some("0755".into())),
            ("--exclude", |f| f.excludes = vec!["*.md".into()]),
            ("--unpack", |f| f.unpack = Some(true)),
        ];
        for (what, change) in flag_changes {
            let mut flags = CopyFlags::default();
            change(&mut flags);
            assert_ne!(
                parts(&step(flags)),
                parts(&base),
                "{what} must change the key"
            );
        }
        let other = [
            base.key_parts("stage-key", "sha256:content", "/app/", true),
            base.key_parts("context", "sha256:other", "/app/", true),
            base.key_parts("context", "sha256:content", "/srv/", true),
            base.key_parts("context", "sha256:content", "/app/", false),
        ];
        for changed in other {
            assert_ne!(changed, parts(&base), "{changed:?}");
        }
        // ADD of the same files is another step.
        let mut add = step(CopyFlags::default());
        add.keyword = "ADD";
        assert_ne!(parts(&add), parts(&base));
    }
}
