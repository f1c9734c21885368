//! `rbuild images`, `rbuild history`, `rbuild inspect`: reading the store.

use std::path::Path;

use anyhow::Context as _;

use super::listing::{self, Column, Listing, Row};
use clap::Args;
use rbuild::context::pattern::glob_match;

use rbuild::image::ImageConfig;
use rbuild::store::Store;

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full image ids
    #[arg(long)]
    pub no_trunc: bool,
    /// `table` (default), `json` (one object per image), or a Go template using
    /// {{.ID}} {{.Repository}} {{.Tag}} {{.CreatedSince}} {{.CreatedAt}} {{.Size}}
    /// {{.Platform}}, {{json .}} or {{json .Field}} (`table TEMPLATE` adds a header)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// `reference=PATTERN` (a glob on REPOSITORY or REPOSITORY:TAG) or `dangling=true|false`;
    /// repeatable, as docker's
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Do not truncate the IMAGE and CREATED BY columns
    #[arg(long)]
    pub no_trunc: bool,
    /// `table` (default), `json`, or a Go template using {{.ID}} {{.CreatedSince}}
    /// {{.CreatedAt}} {{.CreatedBy}} {{.Size}} {{.Comment}}, {{json .}} or {{json .Field}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

const IMAGE_FIELDS: [&str; 7] = [
    "ID",
    "Repository",
    "Tag",
    "CreatedSince",
    "CreatedAt",
    "Size",
    "Platform",
];
const IMAGE_COLUMNS: [Column; 6] = [
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("Size", "SIZE"),
    ("Platform", "PLATFORM"),
];
const HISTORY_FIELDS: [&str; 6] = [
    "ID",
    "CreatedSince",
    "CreatedAt",
    "CreatedBy",
    "Size",
    "Comment",
];
const HISTORY_COLUMNS: [Column; 5] = [
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// `images --filter`: docker's `reference` and `dangling`.
#[derive(Debug, Default)]
struct ImageFilter {
    references: Vec<String>,
    dangling: Option<bool>,
}

impl ImageFilter {
    fn parse(specs: &[String]) -> anyhow::Result<ImageFilter> {
        let mut filter = ImageFilter::default();
        for spec in specs {
            match spec.split_once('=') {
                Some(("reference", pattern)) => filter.references.push(pattern.to_string()),
                Some(("dangling", value)) => {
                    filter.dangling = Some(rbuild::build::go_bool(value).with_context(|| {
                        format!("--filter {spec}: dangling takes true or false")
                    })?)
                }
                _ => anyhow::bail!(
                    "--filter {spec}: expected reference=PATTERN or dangling=true|false"
                ),
            }
        }
        Ok(filter)
    }

    /// Does a row (`repo`, `tag`; `<none>` for an untagged image) pass?
    fn keeps(&self, repo: &str, tag: &str) -> bool {
        let dangling = repo == "<none>";
        if self.dangling.is_some_and(|want| want != dangling) {
            return false;
        }
        self.references.is_empty()
            || (!dangling
                && self.references.iter().any(|pattern| {
                    let pattern = pattern.as_str();
                    glob_match(pattern, repo) || glob_match(pattern, &format!("{repo}:{tag}"))
                }))
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

fn read_config(store: &Store, image_id: &str) -> anyhow::Result<ImageConfig> {
    let bytes = store.read_blob(image_id)?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("image {image_id} has an unreadable config"))
}

/// Sum of the layers' tar sizes, as `docker images` shows.
fn image_size(store: &Store, config: &ImageConfig) -> u64 {
    config
        .rootfs
        .diff_ids
        .iter()
        .filter_map(|d| store.layer_info(d).ok())
        .map(|i| i.tar_size)
        .sum()
}

/// Docker's human sizes: 1000-based, 3 significant digits (`4.19MB`, `0B`).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = if unit == 0 {
        format!("{}", bytes)
    } else {
        format!("{value:.digits$}")
    };
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{trimmed}{}", units[unit])
}

fn short_id(image_id: &str) -> &str {
    let hex = image_id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

pub fn images(root: &Path, args: ImagesArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let tags = store.tags()?;
    let lists = store.current_platform_lists()?;
    // PLATFORM: the image's own, or every platform of a multi-platform tag.
    let platforms_of = |tag: Option<&String>, config: &ImageConfig| -> anyhow::Result<String> {
        let Some(ids) = tag.and_then(|t| lists.get(t)) else {
            return Ok(config.platform_text());
        };
        let mut all = Vec::new();
        for id in ids {
            // an unreadable member is reported on its own row
            if let Ok(config) = read_config(&store, id) {
                all.push(config.platform_text());
            }
        }
        Ok(all.join(","))
    };
    let listing = Listing::parse(args.format.as_deref(), &IMAGE_FIELDS)?;
    let filter = ImageFilter::parse(&args.filter)?;
    let now = now_seconds();
    let mut rows: Vec<Row> = Vec::new();
    let mut unreadable = 0;
    for image_id in store.list_images()? {
        // One bad image does not hide the others: it is named, the rest are listed.
        let config = match read_config(&store, &image_id) {
            Ok(config) => config,
            Err(e) => {
                eprintln!(
                    "error: {e:#} (`rbuild system check --repair` removes it; its names: {})",
                    store.tags_of(&image_id).unwrap_or_default().join(", ")
                );
                unreadable += 1;
                continue;
            }
        };
        let size = human_size(image_size(&store, &config));
        let created = config.created.clone().unwrap_or_default();
        let id = if args.no_trunc {
            image_id.clone()
        } else {
            short_id(&image_id).to_string()
        };
        let names: Vec<&String> = tags
            .iter()
            // `REPO@sha256:...` keys (images pulled by digest) are not tags.
            .filter(|(t, id)| **id == image_id && !t.contains('@'))
            .map(|(t, _)| t)
            .collect();
        let mut row = |repo: &str, tag: &str, platform: String| {
            if filter.keeps(repo, tag) {
                rows.push(vec![
                    ("ID", id.clone()),
                    ("Repository", repo.to_string()),
                    ("Tag", tag.to_string()),
                    ("CreatedSince", listing::since(&created, now)),
                    ("CreatedAt", created.clone()),
                    ("Size", size.clone()),
                    ("Platform", platform),
                ]);
            }
        };
        if names.is_empty() {
            row("<none>", "<none>", platforms_of(None, &config)?);
        } else {
            for name in names {
                let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
                row(repo, tag, platforms_of(Some(name), &config)?);
            }
        }
    }
    if args.quiet {
        let mut ids: Vec<String> = rows.iter().map(|r| r[0].1.clone()).collect();
        ids.dedup();
        for id in ids {
            outln!("{id}");
        }
        return Ok(if unreadable > 0 { 1 } else { 0 });
    }
    for line in listing.render(&IMAGE_COLUMNS, &rows) {
        outln!("{line}");
    }
    Ok(if unreadable > 0 { 1 } else { 0 })
}

pub fn history(root: &Path, args: HistoryArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let image_id = store.resolve_image(&args.image)?;
    let config = read_config(&store, &image_id)?;
    // Pair non-empty history entries with layers, in order.
    let mut layer_sizes = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| store.layer_info(d).map(|i| i.tar_size).unwrap_or(0));
    let listing = Listing::parse(args.format.as_deref(), &HISTORY_FIELDS)?;
    let now = now_seconds();
    let mut rows: Vec<Row> = Vec::new();
    for entry in &config.history {
        let size = if entry.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let created = entry.created.clone().unwrap_or_default();
        let created_by = entry.created_by.clone().unwrap_or_default();
        // Table output truncates; json and templates get the whole text, as docker's.
        let created_by =
            if args.no_trunc || listing != Listing::Table || created_by.chars().count() <= 60 {
                created_by
            } else {
                format!("{}…", created_by.chars().take(59).collect::<String>())
            };
        rows.push(vec![
            ("ID", "<missing>".to_string()),
            ("CreatedSince", listing::since(&created, now)),
            ("CreatedAt", created),
            ("CreatedBy", created_by),
            ("Size", human_size(size)),
            ("Comment", entry.comment.clone().unwrap_or_default()),
        ]);
    }
    rows.reverse();
    // The newest entry is the image itself.
    if let Some(first) = rows.first_mut() {
        first[0].1 = if args.no_trunc {
            image_id.clone()
        } else {
            short_id(&image_id).to_string()
        };
    }
    for line in listing.render(&HISTORY_COLUMNS, &rows) {
        outln!("{line}");
    }
    Ok(0)
}

pub fn inspect(root: &Path, args: InspectArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let mut out = Vec::new();
    for name in &args.images {
        let image_id = store.resolve_image(name)?;
        let config = read_config(&store, &image_id)?;
        // A multi-platform tag: which image each platform has (the details are the host's).
        let mut platforms = Vec::new();
        for id in store.platform_list(name)?.unwrap_or_default() {
            let platform = read_config(&store, &id)?.platform_text();
            platforms.push(serde_json::json!({"Platform": platform, "Id": id}));
        }
        out.push(serde_json::json!({
            "Id": image_id,
            "RepoTags": store.tags_of(&image_id)?,
            "Created": config.created,
            "Author": config.author.clone().unwrap_or_default(),
            "Architecture": config.architecture,
            "Os": config.os,
            "Variant": config.variant,
            "Size": image_size(&store, &config),
            "Config": config.config,
            "RootFS": {"Type": config.rootfs.kind, "Layers": config.rootfs.diff_ids},
            "History": config.history,
            "Platforms": platforms,
        }));
    }
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_194_304), "4.19MB");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(123_456_789), "123MB");
    }
}
