//! The packages an image's own databases record: Debian and Ubuntu (`/var/lib/dpkg/status`),
//! Alpine (`/lib/apk/db/installed`), and the OS from `/etc/os-release`. Parsers of untrusted
//! text: they never fail on odd input, they skip what they cannot read.

use std::os::fd::AsFd;

use rustix::fs::OFlags;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `amd64`, `x86_64`, `all`...; empty when the database does not say.
    pub arch: String,
    /// The license as the database records it (apk does; dpkg does not).
    pub license: Option<String>,
    /// The source package, when it differs from the binary one.
    pub source: Option<String>,
    /// Which database said so: `dpkg` or `apk`.
    pub ecosystem: Ecosystem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecosystem {
    Dpkg,
    Apk,
}

/// What `/etc/os-release` says (ID, VERSION_ID, PRETTY_NAME).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

/// The largest database file read (a full Debian install's status is a few MB): a bigger one is
/// not a package database but something planted, and is not read.
pub const MAX_DATABASE: u64 = 64 << 20;

impl Package {
    /// The package URL (purl) a scanner would give it: `pkg:deb/debian/bash@5.2.15-2+b2?arch=amd64&distro=debian-12`.
    pub fn purl(&self, os: &OsRelease) -> String {
        let (kind, namespace) = match self.ecosystem {
            Ecosystem::Dpkg => ("deb", if os.id.is_empty() { "debian" } else { &os.id }),
            Ecosystem::Apk => ("apk", if os.id.is_empty() { "alpine" } else { &os.id }),
        };
        let mut qualifiers = Vec::new();
        if !self.arch.is_empty() {
            qualifiers.push(format!("arch={}", purl_escape(&self.arch)));
        }
        if !os.id.is_empty() && !os.version_id.is_empty() {
            qualifiers.push(format!(
                "distro={}",
                purl_escape(&format!("{}-{}", os.id, os.version_id))
            ));
        }
        let mut purl = format!(
            "pkg:{kind}/{}/{}@{}",
            purl_escape(namespace),
            purl_escape(&self.name),
            purl_escape(&self.version)
        );
        if !qualifiers.is_empty() {
            purl.push('?');
            purl.push_str(&qualifiers.join("&"));
        }
        purl
    }
}

/// Percent-encodes what a purl component may not hold as is (the purl spec's rules: letters,
/// digits and `.-_~` stay; `+` and `:` in versions are encoded).
fn purl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The installed packages of a dpkg status file: stanzas separated by blank lines, fields
/// `Name: value` with continuation lines starting with a space. Only packages whose Status
/// ends in `installed` count (removed ones keep a `deinstall ok config-files` stanza).
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = String::new();
        let mut source = None;
        let mut installed = false;
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match field {
                "Package" => name = Some(value.to_string()),
                "Version" => version = Some(value.to_string()),
                "Architecture" => arch = value.to_string(),
                // `Source: name (version)` when the source version differs.
                "Source" => {
                    source = value.split_whitespace().next().map(str::to_string);
                }
                "Status" => installed = value.split_whitespace().last() == Some("installed"),
                _ => {}
            }
        }
        if let (Some(name), Some(version), true) = (name, version, installed) {
            if name.is_empty() || version.is_empty() {
                continue;
            }
            let source = source.filter(|s| *s != name);
            packages.push(Package {
                name,
                version,
                arch,
                license: None,
                source,
                ecosystem: Ecosystem::Dpkg,
            });
        }
    }
    packages
}

/// The packages of an apk `installed` database: stanzas separated by blank lines, one field
/// per line as `X:value` (P name, V version, A arch, L license, o origin).
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for stanza in text.split("\n\n") {
        let mut package = Package {
            name: String::new(),
            version: String::new(),
            arch: String::new(),
            license: None,
            source: None,
            ecosystem: Ecosystem::Apk,
        };
        for line in stanza.lines() {
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            match field {
                "P" => package.name = value.to_string(),
                "V" => package.version = value.to_string(),
                "A" => package.arch = value.to_string(),
                "L" if !value.is_empty() => package.license = Some(value.to_string()),
                "o" if !value.is_empty() => package.source = Some(value.to_string()),
                _ => {}
            }
        }
        if !package.name.is_empty() && !package.version.is_empty() {
            if package.source.as_deref() == Some(package.name.as_str()) {
                package.source = None;
            }
            packages.push(package);
        }
    }
    packages
}

/// `/etc/os-release`: `KEY=value` lines, values optionally quoted.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .to_string();
        match key.trim() {
            "ID" => os.id = value,
            "VERSION_ID" => os.version_id = value,
            "PRETTY_NAME" => os.pretty_name = value,
            _ => {}
        }
    }
    os
}

/// A file of the image, read through the boundary: every symlink on the way resolves inside
/// the image's root (a hostile `/var/lib/dpkg/status -> /home/me/.ssh/id_ed25519` reads the
/// image's own path of that name, never the host's), only a regular file is read, and at most
/// `cap` bytes. None when it is missing, not a regular file, or too big.
pub fn read_image_file(root: impl AsFd, path: &str, cap: u64) -> Option<String> {
    use std::io::Read as _;
    let fd = boundary::open_in_root(root, path, OFlags::RDONLY | OFlags::NONBLOCK).ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > cap {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > cap {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The OS and the system packages an image's root records (dpkg, then apk; an image may have
/// both).
pub fn system_packages(root: impl AsFd) -> (OsRelease, Vec<Package>) {
    let root = root.as_fd();
    let os = read_image_file(root, "/etc/os-release", 1 << 20)
        .or_else(|| read_image_file(root, "/usr/lib/os-release", 1 << 20))
        .map(|text| parse_os_release(&text))
        .unwrap_or_default();
    let mut packages = Vec::new();
    if let Some(text) = read_image_file(root, "/var/lib/dpkg/status", MAX_DATABASE) {
        packages.extend(parse_dpkg_status(&text));
    }
    if let Some(text) = read_image_file(root, "/lib/apk/db/installed", MAX_DATABASE) {
        packages.extend(parse_apk_installed(&text));
    }
    (os, packages)
}

#[cfg(test)]
// The tests build their own temp trees (and a canary outside the image's root) by path.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    const DPKG: &str = "Package: bash\nStatus: install ok installed\nPriority: required\n\
        Architecture: amd64\nVersion: 5.2.15-2+b2\nDescription: GNU Bourne Again SHell\n \
        Bash is an sh-compatible command language interpreter.\n\n\
        Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n\
        Source: glibc\nVersion: 2.36-9+deb12u4\n\n\
        Package: oldpkg\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n\
        Package: tzdata\nStatus: install ok installed\nArchitecture: all\n\
        Source: tzdata (2024a-0+deb12u1)\nVersion: 2024a-0+deb12u1\n";

    #[test]
    fn dpkg_status_lists_installed_packages_only() {
        let packages = parse_dpkg_status(DPKG);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bash", "libc6", "tzdata"]);
        assert_eq!(packages[0].version, "5.2.15-2+b2");
        assert_eq!(packages[1].source.as_deref(), Some("glibc"));
        // A source named as the package, with its version in parentheses, is no other source.
        assert_eq!(packages[2].source, None);
        assert_eq!(packages[2].arch, "all");
    }

    #[test]
    fn apk_installed_reads_name_version_arch_license_origin() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n\
                    P:ssl_client\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0\no:openssl\n\n\
                    P:\nV:broken\n";
        let packages = parse_apk_installed(text);
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].license.as_deref(), Some("MIT"));
        assert_eq!(packages[0].source, None);
        assert_eq!(packages[1].source.as_deref(), Some("openssl"));
    }

    #[test]
    fn os_release_and_purls() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        let bash = &parse_dpkg_status(DPKG)[0];
        assert_eq!(
            bash.purl(&os),
            "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn odd_input_is_skipped_not_fatal() {
        assert!(parse_dpkg_status("").is_empty());
        assert!(parse_dpkg_status("Package: x\nStatus: install ok installed\n").is_empty());
        assert!(parse_dpkg_status("\u{0}\u{1}:::\n\n\n").is_empty());
        assert!(parse_apk_installed("P\nV\n").is_empty());
        assert_eq!(parse_os_release("no equals\n=\n"), OsRelease::default());
    }

    /// Ground truth: this Debian host's own dpkg database, read as an image root, against
    /// what dpkg-query says is installed there.
    #[test]
    fn the_dpkg_reader_agrees_with_dpkg_query_on_a_real_database() {
        let Ok(output) = std::process::Command::new("dpkg-query")
            .args([
                "-W",
                "-f",
                "${db:Status-Abbrev}|${Package}|${Version}|${Architecture}\n",
            ])
            .output()
        else {
            return;
        };
        assert!(output.status.success());
        let mut truth: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("ii |").or_else(|| l.strip_prefix("ii|")))
            .map(str::to_string)
            .collect();
        truth.sort();
        let root = boundary::open_root(std::path::Path::new("/")).expect("open /");
        let (os, packages) = system_packages(&root);
        let mut read: Vec<String> = packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Dpkg)
            .map(|p| format!("{}|{}|{}", p.name, p.version, p.arch))
            .collect();
        read.sort();
        assert!(
            truth.len() > 100,
            "{} packages installed here?",
            truth.len()
        );
        assert_eq!(read, truth);
        assert!(!os.id.is_empty());
    }

    #[test]
    fn image_files_are_read_inside_the_root_and_capped() {
        let host = tempfile::tempdir().expect("tempdir");
        let secret = host.path().join("secret");
        std::fs::write(
            &secret,
            "Package: hostfile\nStatus: install ok installed\nVersion: 1\n",
        )
        .expect("write the canary");
        let root = host.path().join("root");
        std::fs::create_dir_all(root.join("var/lib/dpkg")).expect("mkdir");
        // An absolute link to the host's file, and a relative one climbing out.
        std::os::unix::fs::symlink(&secret, root.join("var/lib/dpkg/status")).expect("link");
        std::fs::create_dir_all(root.join("lib/apk/db")).expect("mkdir");
        std::os::unix::fs::symlink("../../../../secret", root.join("lib/apk/db/installed"))
            .expect("link");
        let fd = boundary::open_root(&root).expect("open root");
        let (_, packages) = system_packages(&fd);
        assert!(packages.is_empty(), "read the host's file: {packages:?}");

        // The same path as a real file of the image is read; one over the cap is not.
        std::fs::remove_file(root.join("var/lib/dpkg/status")).expect("rm");
        std::fs::write(root.join("var/lib/dpkg/status"), DPKG).expect("write");
        let (_, packages) = system_packages(&fd);
        assert_eq!(packages.len(), 3);
        assert_eq!(read_image_file(&fd, "/var/lib/dpkg/status", 10), None);
        // A directory or a FIFO is not read.
        assert_eq!(read_image_file(&fd, "/var/lib", MAX_DATABASE), None);
        rustix::fs::mkfifoat(&fd, "fifo", rustix::fs::Mode::from_raw_mode(0o644)).expect("fifo");
        assert_eq!(read_image_file(&fd, "/fifo", MAX_DATABASE), None);
    }
}
