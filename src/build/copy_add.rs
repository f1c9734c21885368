//! The COPY and ADD instructions: sources (context, stage, image, named context, heredoc,
//! URL, git), owners and modes, archives ADD extracts, and the layer they commit.

use std::collections::BTreeMap;
use std::time::Instant;

use super::copy::{copy_sources, join_image_path, Chmod, CopyAttrs};
use super::error::{io_error, BuildError, Location};
use super::images::image_config;
use super::instructions::{expand, not_supported};
use super::steps::{finish_step_chained, record_layer, StepContext};
use super::{Stage, StageResult};
use crate::context::{hash_selection_with, BuildContext};
use crate::dockerfile::{self, CopyArgs, CopyFlags};
use crate::plan::{resolve_source, Source, StagePlan};
use crate::worker::{MountedRootfs, Snapshot};

pub(super) fn resolve_owner(
    mounted: &MountedRootfs,
    spec: &str,
    loc: &Location,
    keyword: &'static str,
) -> Result<(u32, u32), BuildError> {
    let passwd = mounted.read_image_file("/etc/passwd");
    let group = mounted.read_image_file("/etc/group");
    // `--chown=user` alone means the user's primary group, as in BuildKit.
    let user = rbuild_runtime::user::resolve_user(spec, &passwd, &group)
        .map_err(|e| loc.error(keyword, e.to_string()))?;
    Ok((user.uid, user.gid))
}

/// Where the files of a COPY come from, kept mounted (or on disk) while it runs.
pub(super) enum CopySource {
    Context,
    /// Another stage or an image, mounted read-only.
    Layers(Box<MountedLayers>),
    /// A directory given with --build-context.
    Dir(BuildContext),
}

pub(super) struct MountedLayers {
    _mounted: MountedRootfs,
    _view: Snapshot,
    root: BuildContext,
    key: String,
}

pub(super) fn copy_source(
    ctx: &StepContext,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    from: Option<&str>,
) -> Result<CopySource, BuildError> {
    let Some(from) = from else {
        return Ok(CopySource::Context);
    };
    let from = expand(loc, "COPY", from, ctx.escape, &|n| {
        super::lookup_args(&ctx.plan.global_args, n)
    })?;
    let (layers, key) = match resolve_source(
        &ctx.plan.stages,
        plan.index,
        &ctx.plan.named_contexts,
        &from,
    ) {
        Source::Stage(index) => {
            let done = deps
                .get(&index)
                .ok_or_else(|| loc.error("COPY", format!("stage {from} has not been built")))?;
            (done.config.rootfs.diff_ids.clone(), done.cache_key.clone())
        }
        Source::Image(name) => {
            let (config, image_id) = image_config(ctx, loc, "COPY", &name)?;
            (config.rootfs.diff_ids, image_id)
        }
        Source::Dir(dir) => {
            let root = BuildContext::open(&dir).map_err(|e| loc.error("COPY", e.to_string()))?;
            return Ok(CopySource::Dir(root));
        }
    };
    let (mounted, view) = ctx.mount_view(&layers, "from")?;
    let root =
        BuildContext::image_root(mounted.path()).map_err(|e| loc.error("COPY", e.to_string()))?;
    Ok(CopySource::Layers(Box::new(MountedLayers {
        _mounted: mounted,
        _view: view,
        root,
        key,
    })))
}

/// Heredoc sources (`COPY <<EOF /dst`) become files of a scratch dir, read like a context.
// Boundary: heredoc files go to a store temp dir rbuild made.
#[allow(clippy::disallowed_methods)]
pub(super) fn heredoc_files(
    ctx: &StepContext,
    stage: &Stage,
    loc: &Location,
    heredocs: &[dockerfile::Heredoc],
) -> Result<Option<(tempfile::TempDir, BuildContext)>, BuildError> {
    if heredocs.is_empty() {
        return Ok(None);
    }
    let dir = ctx.store.temp_dir("heredoc")?;
    for heredoc in heredocs {
        let content = if heredoc.expand {
            expand_heredoc(loc, &heredoc.content, ctx.escape, &|n| stage.lookup(n))?
        } else {
            heredoc.content.clone()
        };
        let path = dir.path().join(&heredoc.name);
        std::fs::write(&path, content).map_err(io_error("write heredoc"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(io_error("chmod heredoc"))?;
    }
    let root =
        BuildContext::image_root(dir.path()).map_err(|e| loc.error("COPY", e.to_string()))?;
    Ok(Some((dir, root)))
}

/// Expands variables in a heredoc body as BuildKit does for unquoted delimiters: `$VAR` and
/// `${VAR...}` forms, quotes left as they are.
pub(super) fn expand_heredoc(
    loc: &Location,
    body: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, BuildError> {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        // Quotes in the body are content, not syntax: escape them for the word expander.
        let protected: String = line
            .chars()
            .flat_map(|c| {
                if c == '"' || c == '\'' {
                    vec![escape, c]
                } else {
                    vec![c]
                }
            })
            .collect();
        out.push_str(&expand(loc, "COPY", &protected, escape, lookup)?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
// Boundary: the download is a store temp file rbuild made.
#[allow(clippy::disallowed_methods)]
pub(super) fn copy(
    ctx: &StepContext,
    stage: &mut Stage,
    plan: &StagePlan,
    deps: &BTreeMap<usize, StageResult>,
    loc: &Location,
    args: &CopyArgs,
    is_add: bool,
) -> Result<bool, BuildError> {
    let keyword = if is_add { "ADD" } else { "COPY" };
    // Which flags each instruction takes the parser has checked; here they are read, once.
    let flags = CopyFlags::read(&args.flags).map_err(|e| loc.error(keyword, e.to_string()))?;
    let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
    if is_add {
        if let Some(remote) = args.sources.iter().find(|s| {
            (s.contains("://") || s.starts_with("git@"))
                && !crate::context::remote::is_git_url(s)
                && !is_url(s)
        }) {
            return Err(not_supported(
                loc,
                keyword,
                &format!("a remote source ({remote})"),
            ));
        }
        if flags.checksum.is_some()
            && (args.sources.len() != 1
                || !args
                    .sources
                    .iter()
                    .all(|s| is_url(s) && !crate::context::remote::is_git_url(s)))
        {
            return Err(loc.error(
                keyword,
                "--checksum can only be used with a single http(s) source",
            ));
        }
    }
    let unpack = flags.unpack.unwrap_or(is_add);
    let link = flags.link;
    let parents = flags.parents;
    let escape = ctx.escape;
    let chown = flags
        .chown
        .as_deref()
        .map(|v| expand(loc, keyword, v, escape, &|n| stage.lookup(n)))
        .transpose()?;
    let chmod_text = flags.chmod.clone();
    let chmod = chmod_text
        .as_deref()
        .map(Chmod::parse)
        .transpose()
        .map_err(|e| loc.error(keyword, e.to_string()))?;
    let excludes: Vec<String> = flags
        .excludes
        .iter()
        .map(|e| expand(loc, keyword, e, escape, &|n| stage.lookup(n)))
        .collect::<Result<_, _>>()?;
    let exclude_rules = crate::context::IgnoreRules::parse(&excludes.join("\n"));

    let source = copy_source(ctx, plan, deps, loc, flags.from.as_deref())?;
    let heredocs = heredoc_files(ctx, stage, loc, &args.heredocs)?;
    let mut sources = Vec::new();
    let mut selected = Vec::new();
    let mut git_dirs: Vec<tempfile::TempDir> = Vec::new();
    let mut downloads_kept_whole: Vec<std::path::PathBuf> = Vec::new();
    for raw in &args.sources {
        if let Some(name) = raw.strip_prefix("<<") {
            let Some((_, root)) = &heredocs else { continue };
            selected.extend(
                root.select(name)
                    .map_err(|e| loc.error(keyword, e.to_string()))?,
            );
            sources.push(raw.clone());
            continue;
        }
        let word = expand(loc, keyword, raw, escape, &|n| stage.lookup(n))?;
        if is_add
            && (word.starts_with("http://") || word.starts_with("https://"))
            && !crate::context::remote::is_git_url(&word)
        {
            // ADD of a URL: downloaded (mode 0600, mtime from Last-Modified), not extracted
            // unless --unpack=true says so.
            let temp = ctx.store.temp_dir("add-url")?;
            let checksum = flags.checksum.as_deref();
            let download = crate::context::http::download(&word, temp.path(), checksum)
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&download.path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_error("chmod download"))?;
                if let Some(modified) = download.modified {
                    if let Ok(file) = std::fs::File::options().write(true).open(&download.path) {
                        let _ = file.set_modified(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_secs(modified.max(0) as u64),
                        );
                    }
                }
            }
            let root = BuildContext::image_root(temp.path())
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            selected.extend(
                root.select(&download.name)
                    .map_err(|e| loc.error(keyword, e.to_string()))?,
            );
            if flags.unpack != Some(true) {
                downloads_kept_whole.push(download.path.clone());
            }
            git_dirs.push(temp);
            sources.push(word);
            continue;
        }
        if is_add && crate::context::remote::is_git_url(&word) {
            // ADD of a git repository: its files (one commit) land in dest.
            let keep_git_dir = flags.keep_git_dir;
            let temp = ctx.store.temp_dir("add-git")?;
            let dir = crate::context::remote::fetch_git_keeping(&word, temp.path(), keep_git_dir)
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            let root =
                BuildContext::image_root(&dir).map_err(|e| loc.error(keyword, e.to_string()))?;
            let mut found = root
                .select(".")
                .map_err(|e| loc.error(keyword, e.to_string()))?;
            for sel in &mut found {
                sel.name = String::new();
            }
            selected.extend(found);
            git_dirs.push(temp);
            sources.push(word);
            continue;
        }
        let root = match &source {
            CopySource::Context => ctx.context,
            CopySource::Layers(layers) => &layers.root,
            CopySource::Dir(root) => root,
        };
        // --parents keeps the source's path below an optional `/./` pivot.
        let pivot = word
            .find("/./")
            .map(|i| crate::context::clean_relative(&word[..i]));
        let mut found = root
            .select(&word)
            .map_err(|e| loc.error(keyword, e.to_string()))?;
        for sel in &mut found {
            if parents {
                let kept = match &pivot {
                    Some(p) if !p.is_empty() => sel
                        .path
                        .strip_prefix(&format!("{p}/"))
                        .unwrap_or(&sel.path)
                        .to_string(),
                    _ => sel.path.clone(),
                };
                sel.name = kept;
            }
            if !exclude_rules.is_empty() {
                let base = sel.path.clone();
                sel.entries.retain(|e| {
                    let full = if e.rel.is_empty() {
                        base.clone()
                    } else {
                        format!("{base}/{}", e.rel)
                    };
                    !exclude_rules.is_excluded(&full) && !exclude_rules.is_excluded(&e.rel)
                });
            }
        }
        found.retain(|sel| !sel.entries.is_empty());
        selected.extend(found);
        sources.push(word);
    }
    let dest_raw = expand(loc, keyword, &args.dest, escape, &|n| stage.lookup(n))?;
    let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
    if sources.len() > 1 && !dest_is_dir {
        return Err(loc.error(
            keyword,
            format!("when using {keyword} with more than one source file, the destination must be a directory and end with a /"),
        ));
    }
    // Several files (a wildcard matching more than one) also land inside dest.
    let several = selected.len() > 1;
    let dest = join_image_path(&stage.workdir(), &dest_raw);

    let mut created_by = String::from(keyword);
    if parents {
        created_by.push_str(" --parents");
    }
    if let Some(chown) = &chown {
        created_by.push_str(&format!(" --chown={chown}"));
    }
    if let Some(chmod) = &chmod_text {
        created_by.push_str(&format!(" --chmod={chmod}"));
    }
    for source in &sources {
        created_by.push(' ');
        created_by.push_str(source);
    }
    created_by.push_str(&format!(" {dest_raw} # buildkit"));

    let hashing = Instant::now();
    let content = hash_selection_with(&selected, &ctx.hashes);
    ctx.timings.add(&ctx.timings.hash_ns, hashing);
    let content = content.map_err(|e| loc.error(keyword, e.to_string()))?;
    let from_key = match &source {
        CopySource::Context => "context",
        CopySource::Layers(layers) => layers.key.as_str(),
        CopySource::Dir(_) => "named-context",
    };
    let options_key = format!("unpack={unpack} parents={parents} exclude={excludes:?} link={link}");
    let step_parts = [
        keyword,
        &options_key,
        from_key,
        &content,
        &dest,
        &dest_is_dir.to_string(),
        chown.as_deref().unwrap_or(""),
        chmod_text.as_deref().unwrap_or(""),
    ];
    // --link: the layer does not depend on the layers below, so neither does its key; the
    // stage's chain still moves on from it.
    let key = if link {
        Stage::independent_key(&step_parts)
    } else {
        stage.next_key(&step_parts)
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
    // A --link layer is written over nothing: its own files only, no copied-up parents.
    let lower_layers: Vec<String> = if link {
        Vec::new()
    } else {
        stage.config.rootfs.diff_ids.clone()
    };
    let snapshot = ctx.prepare(&lower_layers, "copy")?;
    {
        let mounted = ctx.mount(&snapshot)?;
        let owner = match (&chown, &source) {
            (Some(spec), _) => Some(resolve_owner_for(
                ctx, stage, &mounted, link, spec, loc, keyword,
            )?),
            // Files of another stage or image keep their owners, as in BuildKit.
            (None, CopySource::Layers(_)) => None,
            (None, CopySource::Context | CopySource::Dir(_)) => Some((0, 0)),
        };
        // ADD extracts local archives (told by content) into dest; the rest is copied.
        let (archives, plain): (Vec<_>, Vec<_>) = selected.iter().cloned().partition(|sel| {
            unpack
                && !sel.is_dir()
                && !sel
                    .entries
                    .first()
                    .is_some_and(|e| downloads_kept_whole.contains(&e.host_path))
                && sel.entries.first().is_some_and(|e| {
                    // Only a regular file is opened to sniff it: a FIFO would block.
                    matches!(e.kind, crate::context::SourceKind::File { .. })
                        && super::add::archive_kind(e).is_some()
                })
        });
        for sel in &archives {
            let Some(entry) = sel.entries.first() else {
                continue;
            };
            // Extracted files keep the archive's owners unless --chown says otherwise.
            let chown_owner = if chown.is_some() { owner } else { None };
            super::add::extract_archive(mounted.root_fd(), entry, &dest, chown_owner)
                .map_err(|e| loc.error(keyword, crate::error_chain(&e)))?;
        }
        let attrs = CopyAttrs {
            owner,
            chmod,
            keep_dir_names: parents,
        };
        copy_sources(
            mounted.root_fd(),
            &plain,
            &dest,
            several || dest_is_dir || parents,
            attrs,
        )
        .map_err(|e| loc.error(keyword, crate::error_chain(&e)))?;
    }
    drop(source);
    let diff_id = ctx.commit(snapshot)?;
    let next = chained(stage);
    finish_step_chained(ctx, stage, &key, next, diff_id, created_by)?;
    Ok(false)
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
