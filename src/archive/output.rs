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
            "compression" => {
                output.compression = Some(match value {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "uncompressed" => Compression::Uncompressed,
                    _ => {
                        return Err(spec_error(
                            spec,
                            format!("compression={value}: expected gzip, zstd or uncompressed"),
                        ))
                    }
                })
            }
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
    let dest = |what: &str| {
        dest.clone()
            .ok_or_else(|| spec_error(spec, format!("missing dest={what}")))
    };
    output.kind = match kind.as_deref() {
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
            if output.names.is_empty() {
                return Err(spec_error(spec, "missing name=NAME[:TAG]"));
            }
            OutputKind::Image {
                push: push || kind.as_deref() == Some("registry"),
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
    };
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
