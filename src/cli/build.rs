//! `rbuild build`: flags -> BuildOptions, run the build, write the requested outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;

use rbuild::archive::{self, ArchiveFormat};
use rbuild::build::{self, BuildOptions};
use rbuild::image::parse_tag;
use rbuild::progress::{Progress, ProgressMode};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile [default: CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// Set a label on the image (`KEY=VALUE`)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not use the cache: run every step
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the FROM image even when the store has it (re-resolve its tag)
    #[arg(long)]
    pub pull: bool,
    /// Push the image to its registry under every -t name after the build
    #[arg(long)]
    pub push: bool,
    /// Progress output
    #[arg(long, value_name = "plain|tty|auto", default_value = "auto")]
    pub progress: String,
    /// Print only the image id on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Also write the image out: `type=oci,dest=FILE` or `type=docker,dest=FILE`
    #[arg(short = 'o', long = "output", value_name = "type=oci,dest=FILE")]
    pub outputs: Vec<String>,
    /// The build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

struct Output {
    format: ArchiveFormat,
    dest: PathBuf,
}

fn parse_output(spec: &str) -> anyhow::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v.to_string()),
            Some(("dest", v)) => dest = Some(PathBuf::from(v)),
            _ => bail!("--output {spec:?}: expected type=oci,dest=FILE (or type=docker,dest=FILE)"),
        }
    }
    let format = match kind.as_deref() {
        Some("oci") => ArchiveFormat::Oci,
        Some("docker") => ArchiveFormat::Docker,
        Some(other) => bail!("--output type={other} is not supported yet (supported: oci, docker)"),
        None => bail!("--output {spec:?}: missing type= (e.g. type=oci,dest=image.tar)"),
    };
    let dest = dest.with_context(|| format!("--output {spec:?}: missing dest=FILE"))?;
    Ok(Output { format, dest })
}

fn parse_key_values(
    flag: &str,
    values: &[String],
    from_env: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for value in values {
        match value.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                map.insert(k.to_string(), v.to_string());
            }
            None if from_env && !value.is_empty() => {
                // `--build-arg K` takes K from the environment; unset means not given.
                if let Ok(v) = std::env::var(value) {
                    map.insert(value.clone(), v);
                }
            }
            _ => bail!("{flag} {value:?}: expected KEY=VALUE"),
        }
    }
    Ok(map)
}

pub fn run(root: &Path, args: BuildArgs) -> anyhow::Result<i32> {
    let mut tags = Vec::new();
    for tag in &args.tags {
        tags.push(
            parse_tag(tag)
                .with_context(|| format!("-t {tag}"))?
                .to_string(),
        );
    }
    let outputs = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = match (args.quiet, args.progress.as_str()) {
        (true, _) => ProgressMode::Quiet,
        (false, "plain") | (false, "auto") => ProgressMode::Plain,
        (false, "tty") => ProgressMode::Tty,
        (false, other) => bail!("--progress {other}: expected plain, tty or auto"),
    };
    if !args.context.is_dir() {
        bail!(
            "build context {} is not a directory",
            args.context.display()
        );
    }
    let options = BuildOptions {
        context_dir: args.context.clone(),
        dockerfile: args.file.clone(),
        tags: tags.clone(),
        build_args: parse_key_values("--build-arg", &args.build_args, true)?,
        labels: parse_key_values("--label", &args.labels, false)?,
        no_cache: args.no_cache,
        pull: args.pull,
    };
    if args.push && args.tags.is_empty() {
        bail!("--push needs at least one -t NAME[:TAG] to push to");
    }
    let store = super::open_store(root)?;
    let mut progress = Progress::new(mode);
    let outcome = build::build(&store, &options, &mut progress)?;
    for output in &outputs {
        archive::save(
            &store,
            &outcome.image_id,
            &tags,
            output.format,
            &output.dest,
        )
        .with_context(|| format!("cannot write {}", output.dest.display()))?;
        progress.notice(&format!("exported to {}", output.dest.display()));
    }
    if args.push {
        // The names as typed: `-t busybox` pushes to docker.io/library/busybox.
        for tag in &args.tags {
            super::registry::push_image(
                &store,
                &outcome.image_id,
                tag,
                args.quiet,
                mode == ProgressMode::Tty,
            )?;
        }
    }
    if let Some(iidfile) = &args.iidfile {
        std::fs::write(iidfile, &outcome.image_id)
            .with_context(|| format!("cannot write {}", iidfile.display()))?;
    }
    if args.quiet {
        println!("{}", outcome.image_id);
    } else {
        progress.notice(&format!("writing image {} done", outcome.image_id));
        for tag in &tags {
            progress.notice(&format!("naming to {tag} done"));
        }
    }
    Ok(0)
}
