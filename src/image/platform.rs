//! `os/arch[/variant]`: the one platform type of rbuild (what `--platform` names, what a
//! stage builds for, what a pull picks from an index), parsed as containerd parses it.

use super::host_architecture;

/// A platform; an empty `variant` means none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

/// A platform rbuild cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64")]
    Syntax(String),
    #[error("invalid platform {0:?}: only linux images are built")]
    NotLinux(String),
}

impl Platform {
    /// The machine rbuild runs on.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: host_architecture().into(),
            variant: String::new(),
        }
    }

    /// `os/arch[/variant]`, `arch` alone (os linux), or `local` for this host; architecture
    /// aliases (`x86_64`, `aarch64`, `armhf`, `i386`) take their OCI names.
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        if text == "local" {
            return Ok(Platform::host());
        }
        let parts: Vec<&str> = text.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformError::Syntax(text.to_string()));
        }
        let (os, architecture, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, ""),
            [os, arch] => (*os, *arch, ""),
            [os, arch, variant] => (*os, *arch, *variant),
            _ => return Err(PlatformError::Syntax(text.to_string())),
        };
        if os != "linux" {
            return Err(PlatformError::NotLinux(text.to_string()));
        }
        let architecture = match architecture {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "armhf" => "arm",
            "i386" => "386",
            other => other,
        };
        Ok(Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
        })
    }

    /// `os/arch[/variant]`.
    pub fn text(&self) -> String {
        self.to_string()
    }

    /// Does an index entry's platform object match? No variant matches any, except that
    /// arm64 entries with variant v8 and without one are the same.
    pub fn matches(&self, platform: &serde_json::Value) -> bool {
        self.matches_parts(
            platform["os"].as_str().unwrap_or(""),
            platform["architecture"].as_str().unwrap_or(""),
            platform["variant"].as_str(),
        )
    }

    /// Is an image config (`os`, `architecture`, `variant`) of this platform? The same rule
    /// as [`Platform::matches`].
    pub fn matches_config(&self, config: &super::ImageConfig) -> bool {
        self.matches_parts(
            &config.os,
            &config.architecture,
            config.variant.as_deref().filter(|v| !v.is_empty()),
        )
    }

    /// The platform an image config says it is.
    pub fn of_config(config: &super::ImageConfig) -> Platform {
        Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone().unwrap_or_default(),
        }
    }

    fn matches_parts(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        if os != self.os || arch != self.architecture {
            return false;
        }
        match (self.variant.as_str(), variant) {
            ("", _) => true,
            (want, Some(have)) => want == have,
            (want, None) => arch == "arm64" && want == "v8",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_as_containerd_parses_them() {
        let p = Platform::parse("linux/arm/v7").expect("parse");
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
            ("linux", "arm", "v7")
        );
        assert_eq!(p.text(), "linux/arm/v7");
        assert_eq!(
            Platform::parse("linux/aarch64")
                .expect("parse")
                .architecture,
            "arm64"
        );
        assert_eq!(
            Platform::parse("arm64").expect("parse").text(),
            "linux/arm64"
        );
        assert_eq!(Platform::parse("local").expect("parse"), Platform::host());
        assert_eq!(
            Platform::parse("windows/amd64"),
            Err(PlatformError::NotLinux("windows/amd64".into()))
        );
        for bad in ["", "linux/", "/amd64", "linux/arm/v7/x"] {
            assert_eq!(
                Platform::parse(bad),
                Err(PlatformError::Syntax(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn index_entries_match_by_os_arch_and_variant() {
        let entry = |v: serde_json::Value| v;
        let arm64 = Platform::parse("linux/arm64").expect("parse");
        assert!(arm64.matches(&entry(
            serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
        )));
        let v8 = Platform::parse("linux/arm64/v8").expect("parse");
        assert!(v8.matches(&entry(
            serde_json::json!({"os": "linux", "architecture": "arm64"})
        )));
        let v7 = Platform::parse("linux/arm/v7").expect("parse");
        assert!(!v7.matches(&entry(
            serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v6"})
        )));
        assert!(!arm64.matches(&entry(
            serde_json::json!({"os": "linux", "architecture": "amd64"})
        )));
    }
}
