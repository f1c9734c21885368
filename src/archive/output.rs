//! `--output` specs as buildx writes them (`type=oci,dest=app.tar`, `type=local,dest=out`,
//! `-` for a filesystem tar on stdout, `DIR` for a local dir), parsed into what each output
//! is; each kind says whether it can hold the images of several platforms.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{ArchiveFormat, Compression, MediaTypes};

/// A bad `--output` spec, with the spec and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("--output {spec:?}: {message}")]
pub struct OutputSpecError {
    pub spec: String,
    pub message: String,
}

/// Where a parsed `--output` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    Archive {
        format: ArchiveFormat,
        dest: PathBuf,
        tar: bool,
    },
    Local(PathBuf),
    Tar(PathBuf),
    /// `type=image` (names in the store, pushed with push=true) and `type=registry`.
    Image {
        push: bool,
    },
}

/// One `--output`: where it goes, and how its images are written.
#[derive(Debug, Clone)]
pub struct Output {
    pub kind: OutputKind,
    /// `name=`: names of the image (in index.json, RepoTags, the store, the registry).
    pub names: Vec<String>,
    pub media_types: Option<MediaTypes>,
    pub compression: Option<Compression>,
    pub compression_level: Option<i32>,
    pub rewrite_timestamp: bool,
    pub annotations: BTreeMap<String, String>,
}

impl OutputKind {
    /// Why this output cannot take the images of several platforms, if it cannot: a Docker
    /// archive and a filesystem tar hold one image.
    pub fn single_platform_only(&self) -> Option<&'static str> {
        match self {
            OutputKind::Tar(_) => Some("--output type=tar"),
            OutputKind::Archive {
                format: ArchiveFormat::Docker,
                ..
            } => Some("--output type=docker (a Docker archive holds one platform)"),
            OutputKind::Archive { .. } | OutputKind::Local(_) | OutputKind::Image { .. } => None,
        }
    }
}

fn spec_error(spec: &str, message: impl Into<String>) -> OutputSpecError {
    OutputSpecError {
        spec: spec.to_string(),
        message: message.into(),
    }
}

/// Output options are csv values as buildx reads them: `1`/`0` count too.
fn parse_bool(spec: &str, key: &str, value: &str) -> Result<bool, OutputSpecError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(spec_error(
            spec,
            format!("{key}={value}: expected true or false"),
        )),
    }
}

/// Parses one `--output` spec.
pub fn parse_output(spec: &str) -> Result<Output, OutputSpecError> {
    let mut output = Output {
        kind: OutputKind::Tar(PathBuf::from("-")),
        names: Vec::new(),
        media_types: None,
        compression: None,
        compression_level: None,
        rewrite_timestamp: false,
        annotations: BTreeMap::new(),
    };
    // Shorthands, as buildx: `-o -` is a tar of the filesystem on stdout, `-o DIR` a local dir.
    if spec == "-" {
        return Ok(output);
    }
    if !spec.contains('=') {
        output.kind = OutputKind::Local(PathBuf::from(spec));
        return Ok(output);
    }
    let mut kind = None;
    let mut dest = None;
    let mut tar = true;
    let mut push = false;
    for part in spec.split(',') {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match key {
            "type" => kind = Some(value.to_string()),
            "dest" => dest = Some(PathBuf::from(value)),
            "tar" => tar = parse_bool(spec, key, value)?,
            "name" => output.names.push(value.to_string()),
            "compression" => output.compression = Some(parse_compression(spec, value)?),
            "compression-level" => {
                output.compression_level = Some(value.parse().map_err(|_| {
                    spec_error(
                        spec,
                        format!("compression-level={value}: expected a number"),
                    )
                })?)
            }
            "force-compression" => {
                parse_bool(spec, key, value)?;
            }
            "oci-mediatypes" => {
                output.media_types = Some(if parse_bool(spec, key, value)? {
                    MediaTypes::Oci
                } else {
                    MediaTypes::Docker
                })
            }
            "rewrite-timestamp" => output.rewrite_timestamp = parse_bool(spec, key, value)?,
            "push" => push = parse_bool(spec, key, value)?,
            k if k.starts_with("annotation.") || k.starts_with("annotation-manifest.") => {
                let (_, name) = k.split_once('.').unwrap_or((k, ""));
                output
                    .annotations
                    .insert(name.to_string(), value.to_string());
            }
            _ => return Err(spec_error(spec, format!("unknown option {key:?}"))),
        }
    }
    output.kind = output_kind(spec, kind.as_deref(), dest, tar, push, &output.names)?;
    if let OutputKind::Archive {
        format: ArchiveFormat::Docker,
        tar: false,
        ..
    } = output.kind
    {
        return Err(spec_error(spec, "tar=false is only for type=oci"));
    }
    Ok(output)
}

fn parse_compression(spec: &str, value: &str) -> Result<Compression, OutputSpecError> {
    match value {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "uncompressed" => Ok(Compression::Uncompressed),
        _ => Err(spec_error(
            spec,
            format!("compression={value}: expected gzip, zstd or uncompressed"),
        )),
    }
}

/// Where a `type=` output goes: its dest (or, for images, its names).
fn output_kind(
    spec: &str,
    kind: Option<&str>,
    dest: Option<PathBuf>,
    tar: bool,
    push: bool,
    names: &[String],
) -> Result<OutputKind, OutputSpecError> {
    let dest = |what: &str| {
        dest.clone()
            .ok_or_else(|| spec_error(spec, format!("missing dest={what}")))
    };
    Ok(match kind {
        Some("oci") => OutputKind::Archive {
            format: ArchiveFormat::Oci,
            dest: dest("FILE")?,
            tar,
        },
        Some("docker") => OutputKind::Archive {
            format: ArchiveFormat::Docker,
            dest: dest("FILE")?,
            tar,
        },
        Some("local") => OutputKind::Local(dest("DIR")?),
        Some("tar") => OutputKind::Tar(dest("FILE")?),
        Some("image") | Some("registry") => {
            if names.is_empty() {
                return Err(spec_error(spec, "missing name=NAME[:TAG]"));
            }
            OutputKind::Image {
                push: push || kind == Some("registry"),
            }
        }
        Some(other) => {
            return Err(spec_error(
                spec,
                format!(
                    "type={other} is not supported (supported: oci, docker, local, tar, image, \
                     registry)"
                ),
            ))
        }
        None => {
            return Err(spec_error(
                spec,
                "missing type= (e.g. type=oci,dest=image.tar)",
            ))
        }
    })
}

/// What writing one output gave: the image as written (archives), and what could not be
/// reproduced (device nodes an unprivileged user cannot make, for `type=local`).
#[derive(Debug, Default)]
pub struct OutputReport {
    pub written: Option<super::ExportedImage>,
    pub skipped_devices: Vec<String>,
}

impl Output {
    /// Where it goes, for messages: the dest path, or the names of a `type=image` output.
    pub fn describe_dest(&self) -> String {
        match &self.kind {
            OutputKind::Archive { dest, .. } | OutputKind::Local(dest) | OutputKind::Tar(dest) => {
                dest.display().to_string()
            }
            OutputKind::Image { .. } => self.names.join(", "),
        }
    }

    /// True when the output goes to standard output.
    pub fn to_stdout(&self) -> bool {
        match &self.kind {
            OutputKind::Tar(dest) | OutputKind::Archive { dest, .. } => dest.as_os_str() == "-",
            OutputKind::Local(_) | OutputKind::Image { .. } => false,
        }
    }
}

/// Writes one image to a file output (`type=oci|docker` archive or layout, `type=local`,
/// `type=tar`) with `options`. A file is written beside its destination and renamed, so a
/// failed export leaves nothing half-written. `type=image` outputs are names and pushes: the
/// caller's (they need the registry).
pub fn write_output(
    store: &crate::store::Store,
    image_id: &str,
    output: &Output,
    options: &super::ExportOptions,
) -> Result<OutputReport, super::ArchiveError> {
    let clamp = options.rewrite_timestamp;
    let mut report = OutputReport::default();
    match &output.kind {
        OutputKind::Archive { format, dest, tar } => {
            let sink = if dest.as_os_str() == "-" {
                super::ArchiveDest::Stream(Box::new(std::io::stdout().lock()))
            } else if *tar {
                super::ArchiveDest::File(dest.clone())
            } else {
                super::ArchiveDest::Dir(dest.clone())
            };
            report.written = Some(super::save_with(store, image_id, options, *format, sink)?);
        }
        OutputKind::Local(dest) => {
            report.skipped_devices =
                super::export_local(store, image_id, dest, clamp)?.skipped_devices;
        }
        OutputKind::Tar(dest) if dest.as_os_str() == "-" => {
            let out = Box::new(std::io::BufWriter::new(std::io::stdout().lock()));
            super::export_tar(store, image_id, out, clamp)?;
        }
        OutputKind::Tar(dest) => {
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let io = |action: &'static str| {
                move |source| super::ArchiveError::Io {
                    action,
                    path: dest.clone(),
                    source,
                }
            };
            let temp = super::output_temp_file(parent).map_err(io("create"))?;
            let file = temp.reopen().map_err(io("open"))?;
            super::export_tar(
                store,
                image_id,
                Box::new(std::io::BufWriter::new(file)),
                clamp,
            )?;
            temp.persist(dest).map_err(|e| io("write")(e.error))?;
        }
        OutputKind::Image { .. } => {}
    }
    Ok(report)
}

/// What writing several platforms' images to one output gave.
#[derive(Debug, Default)]
pub struct PlatformsReport {
    /// The image index written (`type=oci`).
    pub index: Option<super::ExportedIndex>,
    pub skipped_devices: Vec<String>,
}

/// Writes the images of several platforms (`platforms[i]` is `images[i]`'s, as `os/arch`) to
/// an output that takes them: one OCI image index (`type=oci`), or one directory per platform
/// named as BuildKit names them (`type=local`: `linux_arm64/`, `linux_arm_v7/`). Outputs that
/// hold one image are refused before building (`OutputKind::single_platform_only`);
/// `type=image` is the caller's.
pub fn write_output_platforms(
    store: &crate::store::Store,
    images: &[super::PlatformImage],
    platforms: &[String],
    output: &Output,
    options: &super::ExportOptions,
) -> Result<PlatformsReport, super::ArchiveError> {
    let mut report = PlatformsReport::default();
    match &output.kind {
        OutputKind::Archive { dest, tar, .. } => {
            let sink = if dest.as_os_str() == "-" {
                super::ArchiveDest::Stream(Box::new(std::io::stdout().lock()))
            } else if *tar {
                super::ArchiveDest::File(dest.clone())
            } else {
                super::ArchiveDest::Dir(dest.clone())
            };
            report.index = Some(super::save_platforms(store, images, options, sink)?);
        }
        OutputKind::Local(dest) => {
            for (platform, image) in platforms.iter().zip(images) {
                let subdir = dest.join(platform.replace('/', "_"));
                let written = super::export_local(
                    store,
                    &image.image_id,
                    &subdir,
                    options.rewrite_timestamp,
                )?;
                report.skipped_devices.extend(written.skipped_devices);
            }
        }
        OutputKind::Tar(_) | OutputKind::Image { .. } => {}
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_shorthands_and_types() {
        let parsed = |spec: &str| parse_output(spec).map(|o| o.kind);
        assert_eq!(parsed("-").ok(), Some(OutputKind::Tar(PathBuf::from("-"))));
        assert_eq!(
            parsed("out").ok(),
            Some(OutputKind::Local(PathBuf::from("out")))
        );
        assert_eq!(
            parsed("type=oci,dest=d,tar=false").ok(),
            Some(OutputKind::Archive {
                format: ArchiveFormat::Oci,
                dest: PathBuf::from("d"),
                tar: false
            })
        );
        assert_eq!(
            parsed("type=tar,dest=-").ok(),
            Some(OutputKind::Tar(PathBuf::from("-")))
        );
        let full = parse_output(
            "type=oci,dest=x,compression=zstd,compression-level=12,rewrite-timestamp=true,\
             oci-mediatypes=true,annotation.a=b,name=app:2",
        )
        .expect("valid");
        assert_eq!(full.compression, Some(Compression::Zstd));
        assert_eq!(full.compression_level, Some(12));
        assert!(full.rewrite_timestamp);
        assert_eq!(full.media_types, Some(MediaTypes::Oci));
        assert_eq!(full.annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!(full.names, ["app:2"]);
    }

    #[test]
    fn unsupported_outputs_say_so() {
        let error = |spec: &str| format!("{:#}", parse_output(spec).expect_err("an error"));
        assert!(error("type=registry").contains("missing name="));
        assert!(error("type=docker,dest=x,tar=false").contains("only for type=oci"));
        assert!(error("type=oci").contains("missing dest="));
        assert!(error("type=oci,dest=x,bogus=1").contains("unknown option"));
        assert!(error("type=oci,dest=x,compression-level=high").contains("expected a number"));
    }

    #[test]
    fn each_kind_says_whether_it_takes_several_platforms() {
        let kind = |spec: &str| parse_output(spec).expect("valid").kind;
        assert!(kind("type=oci,dest=x").single_platform_only().is_none());
        assert!(kind("type=local,dest=d").single_platform_only().is_none());
        assert!(kind("type=image,name=a:1").single_platform_only().is_none());
        assert!(kind("type=docker,dest=x").single_platform_only().is_some());
        assert!(kind("type=tar,dest=x").single_platform_only().is_some());
    }
}
