//! `rbuild tag`, `rmi`, `load`, `save`, `system reset`: changing the store.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use rbuild::archive::{self, ArchiveDest, ArchiveFormat, Compression, ExportOptions};
use rbuild::image::parse_tag;

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove an image id together with all its names
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// OCI archive, OCI layout dir or Docker archive
    #[arg(short, long, value_name = "PATH")]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Archive format
    #[arg(long, value_name = "docker|oci", default_value = "docker")]
    pub format: String,
    /// Layer compression of an OCI archive (default: gzip, or the blob a layer came with)
    #[arg(long, value_name = "gzip|zstd|uncompressed")]
    pub compression: Option<String>,
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also remove images that have no name
    #[arg(short, long)]
    pub all: bool,
    /// Keep the build cache under this size (e.g. 5GB, 500MB), least recently used first
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// `until=DURATION` (e.g. 24h, 30m): only cache not used for that long
    #[arg(long, value_name = "until=DURATION")]
    pub filter: Option<String>,
    /// Do not ask for confirmation (prune never asks; accepted for docker compatibility)
    #[arg(short, long)]
    pub force: bool,
}

/// `10GB`, `500MB`, `1g`, `2048` -> bytes (1000-based units, as docker).
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let number: f64 = lower[..digits_end]
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    let scale = match lower[digits_end..].trim_end_matches('b') {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => bail!("invalid size {text:?}: use B, KB, MB, GB or TB"),
    };
    Ok((number * scale) as u64)
}

/// `24h`, `30m`, `90s`, `2h30m` -> a duration.
fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .with_context(|| format!("invalid duration {text:?}"))?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => bail!("invalid duration {text:?}: use s, m, h or d"),
        };
    }
    if !number.is_empty() {
        bail!("invalid duration {text:?}: a unit (s, m, h, d) must follow {number}");
    }
    Ok(std::time::Duration::from_secs(total))
}

pub fn prune(root: &Path, args: PruneArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let older_than = match args.filter.as_deref() {
        None => None,
        Some(filter) => match filter.split_once('=') {
            Some(("until", value)) => Some(parse_duration(value)?),
            _ => bail!("--filter {filter}: only until=DURATION is supported"),
        },
    };
    let keep_storage = args.keep_storage.as_deref().map(parse_size).transpose()?;
    let report = store.prune(&rbuild::store::PruneOptions {
        all: args.all,
        older_than,
        keep_storage,
    })?;
    outln!(
        "Deleted {} images, {} cache records, {} cache mounts, {} layers, {} blobs",
        report.images,
        report.cache_records,
        report.cache_mounts,
        report.layers,
        report.blobs
    );
    outln!(
        "Total reclaimed space: {}",
        super::images::human_size(report.bytes)
    );
    Ok(0)
}

/// `rbuild df` flags.
#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// `table` (default), `json` (one object per row), or a Go template using {{.Type}}
    /// {{.TotalCount}} {{.Size}}, {{json .}} or {{json .Field}}
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

pub fn df(root: &Path, args: DfArgs) -> anyhow::Result<i32> {
    use super::listing::{Column, Listing, Row};
    const FIELDS: [&str; 3] = ["Type", "TotalCount", "Size"];
    const COLUMNS: [Column; 3] = [("Type", "TYPE"), ("TotalCount", "TOTAL"), ("Size", "SIZE")];
    let listing = Listing::parse(args.format.as_deref(), &FIELDS)?;
    let store = super::open_store(root)?;
    let usage = store.disk_usage()?;
    let size = super::images::human_size;
    let rows: Vec<Row> = [
        ("Images", usage.images, usage.image_bytes),
        ("Image layers", usage.image_layers, usage.image_bytes),
        ("Build cache", usage.cache_records, usage.cache_bytes),
        ("Cache layers", usage.cache_layers, usage.cache_bytes),
        ("Cache mounts", usage.cache_mounts, usage.cache_mount_bytes),
        ("Temp files", usage.temp_entries, usage.temp_bytes),
    ]
    .into_iter()
    .map(|(kind, count, bytes)| {
        vec![
            ("Type", kind.to_string()),
            ("TotalCount", count.to_string()),
            ("Size", size(bytes)),
        ]
    })
    .collect();
    for line in listing.render(&COLUMNS, &rows) {
        outln!("{line}");
    }
    Ok(0)
}

/// `rbuild info`: what this machine gives rbuild, and how each platform would run.
pub fn info(root: &Path) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    outln!("kernel: {}", kernel.trim());
    outln!(
        "host platform: linux/{}",
        rbuild::image::host_architecture()
    );
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    outln!(
        "uid map: {}",
        uid_map.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    outln!("id mapping: {}", id_mapping_text(&uid_map));
    outln!("store: {}", store.root().display());
    match rbuild_runtime::container::this_process() {
        Some(signal) => outln!("container: yes ({signal})"),
        None => outln!("container: none detected"),
    }
    let in_place = std::env::var("RBUILD_ISOLATION").is_ok_and(|v| v == "none");
    if in_place {
        outln!(
            "isolation: none (RBUILD_ISOLATION=none: RUN steps run as root directly on this \
             container's root, put back after each build; --isolation namespaces for the sandbox)"
        );
        outln!(
            "snapshotter: the container's root, walked (mount points and rbuild's own paths \
             left out)"
        );
    } else {
        outln!(
            "isolation: namespaces (user, mount, pid, ipc and uts namespaces and seccomp per \
             step; --isolation none runs steps in place, as root in a container made for the \
             build)"
        );
    }
    match rbuild::worker::SnapshotterChoice::for_store(&store).0 {
        _ if in_place => {}
        rbuild::worker::SnapshotterChoice::Overlay => {
            outln!("snapshotter: overlayfs (a step's changes are its overlay upper dir)")
        }
        rbuild::worker::SnapshotterChoice::Walk(why) => outln!(
            "snapshotter: walk ({why}; a step's changes are found by walking its working tree; \
             RBUILD_SNAPSHOTTER=overlay|walk chooses)"
        ),
        choice @ rbuild::worker::SnapshotterChoice::Neither { .. } => {
            match rbuild::worker::Worker::with(&choice) {
                Err(e) => outln!("snapshotter: none: {e}"),
                Ok(_) => outln!("snapshotter: none"),
            }
        }
    }
    for text in [
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/riscv64",
        "linux/ppc64le",
        "linux/s390x",
    ] {
        let platform = rbuild::plan::Platform::parse(text)?;
        if in_place {
            let host = rbuild::image::host_architecture();
            match rbuild_runtime::binfmt::check_in_place(&platform.architecture, host) {
                Ok(None) => outln!("{text}: native"),
                Ok(Some(how)) => outln!("{text}: {how}"),
                Err(e) => outln!("{text}: unavailable: {e}"),
            }
            continue;
        }
        match rbuild::build::emulation::emulation_for(&store, &platform) {
            Ok(how @ rbuild_runtime::binfmt::Emulation::Sandboxed { .. }) => outln!(
                "{text}: {how} (rbuild's own binfmt_misc, in its user namespace: the host's \
                 registrations are not touched)"
            ),
            Ok(how @ rbuild_runtime::binfmt::Emulation::HostRegistration { .. }) => outln!(
                "{text}: {how} (this kernel gives rbuild no binfmt_misc of its own; Linux >= \
                 6.7 does)"
            ),
            Ok(how) => outln!("{text}: {how}"),
            Err(e) => outln!("{text}: unavailable: {e}"),
        }
    }
    Ok(0)
}

/// What the uid map of rbuild's process means for the images it can build, and what would
/// change it.
fn id_mapping_text(uid_map: &str) -> String {
    let ranges: Vec<Vec<u64>> = uid_map
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .filter(|fields: &Vec<u64>| fields.len() == 3)
        .collect();
    match ranges.as_slice() {
        [only] if only[0] == only[1] && only[2] >= 65536 => {
            "every id is itself (root; no subordinate ids needed)".to_string()
        }
        [_] => "your own id only (no range for you in /etc/subuid and /etc/subgid, or no \
                newuidmap): images with files of other owners fail; scripts/setup adds a \
                range (or: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 \
                $USER)"
            .to_string(),
        _ => {
            let count: u64 = ranges.iter().skip(1).map(|r| r[2]).sum();
            format!(
                "your id as root, and {count} subordinate ids (/etc/subuid, newuidmap) for the \
                 images' other owners"
            )
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Delete the whole store (its files belong to subordinate ids, so plain rm cannot)
    Reset {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Verify every blob, layer and image of the store; exit 1 when something is corrupt
    Check {
        /// Remove what is corrupt (an unusable image loses its record and names)
        #[arg(long)]
        repair: bool,
    },
}

pub fn tag(root: &Path, args: TagArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let image_id = store.resolve_image(&args.source)?;
    let target = parse_tag(&args.target)?.to_string();
    match store.platform_list(&args.source)? {
        Some(ids) => store.add_platform_list(&ids, &image_id, &[target])?,
        None => store.add_image(&image_id, &[target])?,
    }
    Ok(0)
}

pub fn rmi(root: &Path, args: RmiArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    for name in &args.images {
        let image_id = store.resolve_image(name)?;
        let tag = parse_tag(name)
            .ok()
            .map(|t| t.to_string())
            .filter(|t| store.tags().map(|all| all.contains_key(t)).unwrap_or(false));
        match tag {
            Some(tag) if !args.force => {
                store.untag(&tag)?;
                outln!("Untagged: {tag}");
            }
            _ => {
                let names = store.tags_of(&image_id)?;
                if names.len() > 1 && !args.force {
                    bail!("image {image_id} is referenced by several names ({}): remove them one by one or use -f", names.join(", "));
                }
                for t in names {
                    store.untag(&t)?;
                    outln!("Untagged: {t}");
                }
            }
        }
        if store.tags_of(&image_id)?.is_empty() {
            // Another platform's image of a multi-platform tag stays until that tag goes.
            if store.listed_images()?.contains(&image_id) {
                outln!("Kept: {image_id} (an image of a multi-platform tag)");
                continue;
            }
            store.untag_digests(&image_id)?;
            store.remove_image_record(&image_id)?;
            outln!("Deleted: {image_id}");
        }
    }
    Ok(0)
}

pub fn load(root: &Path, args: LoadArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let loaded = archive::load(&store, &args.input)
        .with_context(|| format!("cannot load {}", args.input.display()))?;
    for image in loaded {
        for notice in &image.notices {
            eprintln!("notice: {notice}");
        }
        if image.tags.is_empty() {
            outln!("Loaded image ID: {}", image.image_id);
        }
        for tag in image.tags {
            outln!("Loaded image: {tag}");
        }
    }
    Ok(0)
}

pub fn save(root: &Path, args: SaveArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let format = match args.format.as_str() {
        "docker" | "docker-archive" => ArchiveFormat::Docker,
        "oci" | "oci-archive" => ArchiveFormat::Oci,
        other => bail!("--format {other}: expected docker or oci"),
    };
    let image_id = store.resolve_image(&args.image)?;
    let tags: Vec<String> = match parse_tag(&args.image) {
        Ok(tag) if store.tags()?.contains_key(&tag.to_string()) => vec![tag.to_string()],
        _ => store.tags_of(&image_id)?,
    };
    let compression = match args.compression.as_deref() {
        None => None,
        Some(_) if format == ArchiveFormat::Docker => {
            bail!("--compression: a docker-archive has uncompressed layers; use --format oci")
        }
        Some("gzip") => Some(Compression::Gzip),
        Some("zstd") => Some(Compression::Zstd),
        Some("uncompressed") => Some(Compression::Uncompressed),
        Some(other) => bail!("--compression {other}: expected gzip, zstd or uncompressed"),
    };
    let options = ExportOptions {
        tags,
        compression,
        ..ExportOptions::default()
    };
    if let Some(image_ids) = store.platform_list(&args.image)? {
        if format == ArchiveFormat::Oci {
            let images: Vec<archive::PlatformImage> = image_ids
                .into_iter()
                .map(|image_id| archive::PlatformImage {
                    image_id,
                    base: None,
                })
                .collect();
            archive::save_platforms(
                &store,
                &images,
                &options,
                ArchiveDest::File(args.output.clone()),
            )
            .with_context(|| format!("cannot write {}", args.output.display()))?;
            return Ok(0);
        }
        eprintln!(
            "warning: {} holds {} platforms and a Docker archive holds one: saving this \
             host's ({image_id}); --format oci saves them all as one image index",
            args.image,
            image_ids.len()
        );
    }
    archive::save_with(
        &store,
        &image_id,
        &options,
        format,
        ArchiveDest::File(args.output.clone()),
    )
    .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(0)
}

pub fn system(root: &Path, command: SystemCommand) -> anyhow::Result<i32> {
    match command {
        SystemCommand::Reset { force: _ } => {
            if !root.exists() {
                return Ok(0);
            }
            rbuild::store::remove_tree(root)
                .with_context(|| format!("cannot delete the store at {}", root.display()))?;
            eprintln!("deleted the store at {}", root.display());
            Ok(0)
        }
        SystemCommand::Check { repair } => {
            let store = super::open_store(root)?;
            let report = rbuild::check::check_store(&store, repair)
                .with_context(|| format!("cannot check the store at {}", root.display()))?;
            for problem in &report.problems {
                let fixed = if problem.repaired { " (removed)" } else { "" };
                outln!("corrupt {}: {}{fixed}", problem.what, problem.why);
            }
            let left = report.problems.iter().filter(|p| !p.repaired).count();
            outln!(
                "checked {} blobs, {} layers, {} images: {} problem(s), {} repaired",
                report.blobs,
                report.layers,
                report.images,
                report.problems.len(),
                report.problems.len() - left
            );
            if left > 0 && !repair {
                eprintln!("run `rbuild system check --repair` to remove what is corrupt");
            }
            Ok(if left > 0 { 1 } else { 0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{id_mapping_text, parse_duration, parse_size};

    #[test]
    fn id_mappings_are_explained() {
        assert!(id_mapping_text("0 0 4294967295\n").contains("every id is itself"));
        assert!(id_mapping_text("0 1000 1\n").contains("scripts/setup"));
        assert!(id_mapping_text("0 1000 1\n1 100000 65536\n").contains("65536 subordinate ids"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10GB").ok(), Some(10_000_000_000));
        assert_eq!(parse_size("500mb").ok(), Some(500_000_000));
        assert_eq!(parse_size("2048").ok(), Some(2048));
        assert!(parse_size("lots").is_err());
        assert_eq!(
            parse_duration("24h").ok(),
            Some(std::time::Duration::from_secs(86400))
        );
        assert_eq!(
            parse_duration("2h30m").ok(),
            Some(std::time::Duration::from_secs(9000))
        );
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
