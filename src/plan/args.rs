//! Build args every Dockerfile has without declaring them: the platform args BuildKit
//! predefines, and the proxy args that reach RUN but never history or cache keys.

use crate::image::host_architecture;

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

impl Platform {
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: host_architecture().into(),
            variant: String::new(),
        }
    }

    /// `os/arch[/variant]`, or `local` for this host.
    pub fn parse(text: &str) -> Result<Platform, String> {
        if text == "local" {
            return Ok(Platform::host());
        }
        let parts: Vec<&str> = text.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, ""),
            [os, arch, variant] => (*os, *arch, *variant),
            _ => {
                return Err(format!(
                    "invalid platform {text:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
                ))
            }
        };
        if os != "linux" {
            return Err(format!(
                "invalid platform {text:?}: only linux images are built"
            ));
        }
        let architecture = match architecture {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "armhf" => "arm",
            "i386" => "386",
            other => other,
        };
        if architecture.is_empty() {
            return Err(format!("invalid platform {text:?}: no architecture"));
        }
        Ok(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
        })
    }

    pub fn text(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.architecture)
        } else {
            format!("{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }
}

/// TARGET* and BUILD* args for building `target` on this host.
pub fn platform_args(target: &Platform) -> Vec<(String, String)> {
    let build = Platform::host();
    vec![
        ("TARGETPLATFORM".into(), target.text()),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETARCH".into(), target.architecture.clone()),
        ("TARGETVARIANT".into(), target.variant.clone()),
        ("BUILDPLATFORM".into(), build.text()),
        ("BUILDOS".into(), build.os.clone()),
        ("BUILDARCH".into(), build.architecture.clone()),
        ("BUILDVARIANT".into(), build.variant.clone()),
    ]
}

/// Proxy settings usable with `--build-arg` without an ARG declaration.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::Platform;

    #[test]
    fn platforms_parse() {
        let p = Platform::parse("linux/arm/v7").expect("parse");
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
            ("linux", "arm", "v7")
        );
        assert_eq!(
            Platform::parse("linux/aarch64")
                .expect("parse")
                .architecture,
            "arm64"
        );
        assert_eq!(Platform::parse("local").expect("parse"), Platform::host());
        assert!(Platform::parse("windows/amd64").is_err());
        assert!(Platform::parse("arm64").is_err());
    }
}
