//! `rbuild tag`, `rmi`, `load`, `save`, `system reset`: changing the store.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use rbuild::archive::{self, ArchiveFormat};
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
    pub image: String,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Delete the whole store (its files belong to subordinate ids, so plain rm cannot)
    Reset {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

pub fn tag(root: &Path, args: TagArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let image_id = store.resolve_image(&args.source)?;
    let target = parse_tag(&args.target)?.to_string();
    store.add_image(&image_id, &[target])?;
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
                println!("Untagged: {tag}");
            }
            _ => {
                let names = store.tags_of(&image_id)?;
                if names.len() > 1 && !args.force {
                    bail!("image {image_id} is referenced by several names ({}): remove them one by one or use -f", names.join(", "));
                }
                for t in names {
                    store.untag(&t)?;
                    println!("Untagged: {t}");
                }
            }
        }
        if store.tags_of(&image_id)?.is_empty() {
            store.untag_digests(&image_id)?;
            store.remove_image_record(&image_id)?;
            println!("Deleted: {image_id}");
        }
    }
    Ok(0)
}

pub fn load(root: &Path, args: LoadArgs) -> anyhow::Result<i32> {
    let store = super::open_store(root)?;
    let loaded = archive::load(&store, &args.input)
        .with_context(|| format!("cannot load {}", args.input.display()))?;
    for image in loaded {
        if image.tags.is_empty() {
            println!("Loaded image ID: {}", image.image_id);
        }
        for tag in image.tags {
            println!("Loaded image: {tag}");
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
    archive::save(&store, &image_id, &tags, format, &args.output)
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
    }
}
