//! Where the files of a COPY or ADD come from: the context, another stage or an image
//! (mounted read-only), a named context, heredocs, a URL (ADD), a git repository (ADD); and
//! the selection of the sources' files, `--parents` and `--exclude` applied.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::{io_error, BuildError, Location};
use super::images::image_config;
use super::instructions::expand;
use super::steps::StepContext;
use super::{Stage, StageResult};
use crate::context::{BuildContext, IgnoreRules, Selected};
use crate::dockerfile;
use crate::plan::{resolve_source, Source, StagePlan};
use crate::worker::{MountedRootfs, Snapshot};

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
    /// What the cache key says of the source: the stage's chain key or the image id.
    pub key: String,
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

/// What the sources of one COPY or ADD selected, and the scratch dirs that hold downloads and
/// clones while the step runs.
#[derive(Default)]
pub(super) struct Gathered {
    /// The sources as the history names them (expanded; heredocs as written).
    pub sources: Vec<String>,
    pub selected: Vec<Selected>,
    /// Downloaded files ADD copies as they are (not extracted).
    pub kept_whole: Vec<PathBuf>,
    _temp_dirs: Vec<tempfile::TempDir>,
}

/// How the sources are read: the instruction, and its flags that change the selection.
pub(super) struct Selection<'a> {
    pub keyword: &'static str,
    pub is_add: bool,
    pub parents: bool,
    pub excludes: &'a IgnoreRules,
    /// ADD --checksum for a URL.
    pub checksum: Option<&'a str>,
    /// ADD --unpack=true: a downloaded archive is extracted too.
    pub unpack_downloads: bool,
    pub keep_git_dir: bool,
}

fn is_http_url(word: &str) -> bool {
    (word.starts_with("http://") || word.starts_with("https://"))
        && !crate::context::remote::is_git_url(word)
}

/// Selects the files of every source, in order.
pub(super) fn gather(
    ctx: &StepContext,
    stage: &Stage,
    loc: &Location,
    how: &Selection,
    source: &CopySource,
    raw_sources: &[String],
    heredocs: &Option<(tempfile::TempDir, BuildContext)>,
) -> Result<Gathered, BuildError> {
    let keyword = how.keyword;
    let mut gathered = Gathered::default();
    for raw in raw_sources {
        if let Some(name) = raw.strip_prefix("<<") {
            let Some((_, root)) = heredocs else { continue };
            gathered.selected.extend(
                root.select(name)
                    .map_err(|e| loc.error(keyword, e.to_string()))?,
            );
            gathered.sources.push(raw.clone());
            continue;
        }
        let word = expand(loc, keyword, raw, ctx.escape, &|n| stage.lookup(n))?;
        if how.is_add && is_http_url(&word) {
            download(ctx, loc, how, &word, &mut gathered)?;
        } else if how.is_add && crate::context::remote::is_git_url(&word) {
            clone(ctx, loc, how, &word, &mut gathered)?;
        } else {
            let root = match source {
                CopySource::Context => ctx.context,
                CopySource::Layers(layers) => &layers.root,
                CopySource::Dir(root) => root,
            };
            gathered.selected.extend(select(root, loc, how, &word)?);
        }
        gathered.sources.push(word);
    }
    Ok(gathered)
}

/// ADD of a URL: downloaded (mode 0600, mtime from Last-Modified), not extracted unless
/// --unpack=true says so.
// Boundary: the download is a store temp file rbuild made.
#[allow(clippy::disallowed_methods)]
fn download(
    ctx: &StepContext,
    loc: &Location,
    how: &Selection,
    url: &str,
    gathered: &mut Gathered,
) -> Result<(), BuildError> {
    let keyword = how.keyword;
    let temp = ctx.store.temp_dir("add-url")?;
    let download = crate::context::http::download(url, temp.path(), how.checksum)
        .map_err(|e| loc.error(keyword, e.to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&download.path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("chmod download"))?;
    if let Some(modified) = download.modified {
        if let Ok(file) = std::fs::File::options().write(true).open(&download.path) {
            let _ = file.set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified.max(0) as u64),
            );
        }
    }
    gathered
        .selected
        .extend(select_fetched(loc, keyword, temp.path(), &download.name)?);
    if !how.unpack_downloads {
        gathered.kept_whole.push(download.path.clone());
    }
    gathered._temp_dirs.push(temp);
    Ok(())
}

/// ADD of a git repository: its files (one commit) land in dest.
fn clone(
    ctx: &StepContext,
    loc: &Location,
    how: &Selection,
    url: &str,
    gathered: &mut Gathered,
) -> Result<(), BuildError> {
    let keyword = how.keyword;
    let temp = ctx.store.temp_dir("add-git")?;
    let dir = crate::context::remote::fetch_git_keeping(
        url,
        temp.path(),
        how.keep_git_dir,
        // ADD git@... authenticates with the build's `--ssh default`, as BuildKit.
        &crate::context::remote::GitSsh::with_agent(ctx.options.ssh.get("default").cloned()),
    )
    .map_err(|e| loc.error(keyword, e.to_string()))?;
    let mut found = select_fetched(loc, keyword, &dir, ".")?;
    for sel in &mut found {
        sel.name = String::new();
    }
    gathered.selected.extend(found);
    gathered._temp_dirs.push(temp);
    Ok(())
}

/// What `pattern` selects in a tree rbuild fetched (a download, a clone).
fn select_fetched(
    loc: &Location,
    keyword: &'static str,
    dir: &std::path::Path,
    pattern: &str,
) -> Result<Vec<Selected>, BuildError> {
    let error = |e: crate::context::ContextError| loc.error(keyword, e.to_string());
    BuildContext::image_root(dir)
        .map_err(error)?
        .select(pattern)
        .map_err(error)
}

/// The files `word` selects in `root`: `--parents` keeps each one's path below an optional
/// `/./` pivot, `--exclude` drops entries.
fn select(
    root: &BuildContext,
    loc: &Location,
    how: &Selection,
    word: &str,
) -> Result<Vec<Selected>, BuildError> {
    let pivot = word
        .find("/./")
        .map(|i| crate::context::clean_relative(&word[..i]));
    let mut found = root
        .select(word)
        .map_err(|e| loc.error(how.keyword, e.to_string()))?;
    for sel in &mut found {
        if how.parents {
            sel.name = match &pivot {
                Some(p) if !p.is_empty() => sel
                    .path
                    .strip_prefix(&format!("{p}/"))
                    .unwrap_or(&sel.path)
                    .to_string(),
                _ => sel.path.clone(),
            };
        }
        if !how.excludes.is_empty() {
            let base = sel.path.clone();
            sel.entries.retain(|e| {
                let full = if e.rel.is_empty() {
                    base.clone()
                } else {
                    format!("{base}/{}", e.rel)
                };
                !how.excludes.is_excluded(&full) && !how.excludes.is_excluded(&e.rel)
            });
        }
    }
    found.retain(|sel| !sel.entries.is_empty());
    Ok(found)
}
