//! Image names as users type them (`app`, `app:1`, `registry:5000/team/app:1`,
//! `ghcr.io/org/app@sha256:...`): Docker's reference grammar, normalisation to a full name
//! (`busybox` -> `docker.io/library/busybox:latest`) and the familiar short form used as the
//! key of a tag in the store.
//!
//! Store keys are docker's familiar form: `docker.io/library/` and `docker.io/` are dropped
//! (`busybox:latest`, `user/app:1`), every other registry keeps its host
//! (`127.0.0.1:5000/library/busybox:latest`). So `FROM busybox`, `FROM docker.io/library/busybox`
//! and a loaded `busybox:latest` all name the same tag. An image pulled by digest is recorded
//! under `REPO@sha256:...` (familiar repository) as well.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {reference:?}: {why}")]
    Invalid {
        reference: String,
        why: &'static str,
    },
}

/// A tag reference: repository and tag (default `latest`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagRef {
    pub repository: String,
    pub tag: String,
}

impl std::fmt::Display for TagRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

fn invalid(reference: &str, why: &'static str) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        why,
    }
}

/// Parses `name[:tag]` as docker does for `-t` (no digest: a tag names a mutable pointer).
/// Repository path components are lower-case alphanumerics with `.`, `_`, `__`, `-`
/// separators; the first component may be a registry host with a port.
pub fn parse_tag(reference: &str) -> Result<TagRef, ReferenceError> {
    if reference.is_empty() {
        return Err(invalid(reference, "empty name"));
    }
    if reference.contains('@') {
        return Err(invalid(reference, "a digest cannot be used as a tag"));
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !tag_ok {
        return Err(invalid(
            reference,
            "a tag is 1-128 characters of [A-Za-z0-9_.-], not starting with . or -",
        ));
    }
    // The distribution spec's limit, which parse_reference applies too.
    if repository.len() > 255 {
        return Err(invalid(
            reference,
            "repository name is longer than 255 characters",
        ));
    }
    let components: Vec<&str> = repository.split('/').collect();
    for (i, component) in components.iter().enumerate() {
        let is_host = i == 0
            && components.len() > 1
            && (component.contains(['.', ':']) || *component == "localhost");
        let ok = if is_host {
            !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        } else {
            path_component_ok(component)
        };
        if !ok {
            return Err(invalid(
                reference,
                "repository names are lower-case letters, digits and separators (. _ __ -)",
            ));
        }
    }
    Ok(TagRef {
        repository: familiar_repository(repository).to_string(),
        tag: tag.to_string(),
    })
}

/// The registry names (and the hosts docker treats as aliases of) Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";

/// Drops `docker.io/library/` and `docker.io/` (and `index.docker.io/`) from a repository.
fn familiar_repository(repository: &str) -> &str {
    let rest = repository
        .strip_prefix("docker.io/")
        .or_else(|| repository.strip_prefix("index.docker.io/"));
    match rest {
        Some(rest) => rest.strip_prefix("library/").unwrap_or(rest),
        None => repository,
    }
}

/// A fully qualified reference: registry host, repository path, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `localhost:5000`, ...
    pub registry: String,
    /// The path inside the registry: `library/busybox`, `org/app`.
    pub repository: String,
    /// `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    /// `sha256:HEX`
    pub digest: Option<String>,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl Reference {
    /// `registry/repository` (no tag or digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository as docker shows it (`busybox`, `user/app`, `ghcr.io/org/app`).
    pub fn familiar_name(&self) -> String {
        familiar_repository(&self.name()).to_string()
    }

    /// The store key of the tag (`busybox:latest`), if the reference has a tag.
    pub fn tag_key(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|tag| format!("{}:{tag}", self.familiar_name()))
    }

    /// The store key of the digest (`busybox@sha256:...`), if the reference has a digest.
    pub fn digest_key(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|digest| format!("{}@{digest}", self.familiar_name()))
    }

    /// What the registry is asked for: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository on another tag (or the same one), without a digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

/// Parses and normalises a reference as docker does: `busybox` ->
/// `docker.io/library/busybox:latest`; `host:5000/a/b:tag`; `name@sha256:...`;
/// `name:tag@sha256:...` (the digest wins when pulling).
pub fn parse_reference(reference: &str) -> Result<Reference, ReferenceError> {
    if reference.is_empty() {
        return Err(invalid(reference, "empty name"));
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or_else(|| invalid(reference, "a digest is ALGORITHM:HEX"))?;
        if algorithm != "sha256" {
            return Err(invalid(reference, "only sha256 digests are supported"));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                reference,
                "a sha256 digest has 64 lower-case hex digits",
            ));
        }
    }
    let (registry, remainder) = match name_tag.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name_tag),
    };
    if registry.chars().any(|c| c.is_ascii_uppercase()) && registry != DOCKER_HUB {
        // Host names are case-insensitive but docker refuses upper case here too.
        return Err(invalid(reference, "registry host names are lower-case"));
    }
    if registry.is_empty()
        || !registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(invalid(reference, "invalid registry host"));
    }
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    let last_slash = remainder.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match remainder[last_slash..].rfind(':') {
        Some(i) => (
            &remainder[..last_slash + i],
            Some(&remainder[last_slash + i + 1..]),
        ),
        None => (remainder, None),
    };
    if let Some(tag) = tag {
        // Validated by the tag grammar below.
        parse_tag(&format!("x:{tag}")).map_err(|_| {
            invalid(
                reference,
                "a tag is 1-128 characters of [A-Za-z0-9_.-], not starting with . or -",
            )
        })?;
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid(reference, "repository name must be lowercase"));
    }
    if path.is_empty() || !path.split('/').all(path_component_ok) {
        return Err(invalid(
            reference,
            "repository names are lower-case letters, digits and separators (. _ __ -)",
        ));
    }
    if path.len() + registry.len() > 255 {
        return Err(invalid(
            reference,
            "repository name is longer than 255 characters",
        ));
    }
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    let tag = match (tag, digest) {
        (Some(tag), _) => Some(tag.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_string()),
    };
    Ok(Reference {
        registry: registry.to_string(),
        repository,
        tag,
        digest: digest.map(str::to_string),
    })
}

fn path_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_alnum(b) {
            i += 1;
            continue;
        }
        // a separator: ".", "_", "__" or a run of "-", between alphanumerics
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_normalise_as_docker_does() {
        let d = D;
        let ok: &[(&str, &str, &str, Option<&str>, bool)] = &[
            // input, registry, repository, tag, has digest
            (
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
            ),
            (
                "busybox:1.36",
                "docker.io",
                "library/busybox",
                Some("1.36"),
                false,
            ),
            (
                "library/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
            ),
            (
                "docker.io/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
            ),
            (
                "index.docker.io/library/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                false,
            ),
            ("user/app:v1", "docker.io", "user/app", Some("v1"), false),
            (
                "ghcr.io/org/app",
                "ghcr.io",
                "org/app",
                Some("latest"),
                false,
            ),
            ("localhost/app", "localhost", "app", Some("latest"), false),
            (
                "localhost:5000/app:1",
                "localhost:5000",
                "app",
                Some("1"),
                false,
            ),
            (
                "127.0.0.1:5000/library/busybox:latest",
                "127.0.0.1:5000",
                "library/busybox",
                Some("latest"),
                false,
            ),
            (
                "registry.example.com:443/a/b/c:x",
                "registry.example.com:443",
                "a/b/c",
                Some("x"),
                false,
            ),
            ("[::1]:5000/app", "[::1]:5000", "app", Some("latest"), false),
        ];
        for (input, registry, repository, tag, _) in ok {
            let r = parse_reference(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (
                    r.registry.as_str(),
                    r.repository.as_str(),
                    r.tag.as_deref(),
                    r.digest.as_deref()
                ),
                (*registry, *repository, *tag, None),
                "{input}"
            );
        }
        let by_digest = parse_reference(&format!("ghcr.io/org/app@{d}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(by_digest.digest.as_deref(), Some(d));
        assert_eq!(by_digest.manifest_ref(), d);
        assert_eq!(by_digest.to_string(), format!("ghcr.io/org/app@{d}"));
        assert_eq!(by_digest.digest_key(), Some(format!("ghcr.io/org/app@{d}")));
        let both = parse_reference(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("1"));
        assert_eq!(both.manifest_ref(), d);
        assert_eq!(both.digest_key(), Some(format!("busybox@{d}")));
        let with_port = parse_reference(&format!("localhost:5000/app@{d}")).unwrap();
        assert_eq!(with_port.registry, "localhost:5000");
        assert_eq!(with_port.tag, None);
    }

    #[test]
    fn familiar_keys_match_loaded_tags() {
        for (input, key) in [
            ("busybox", "busybox:latest"),
            ("docker.io/library/busybox:latest", "busybox:latest"),
            ("docker.io/user/app:1", "user/app:1"),
            (
                "127.0.0.1:5000/library/busybox",
                "127.0.0.1:5000/library/busybox:latest",
            ),
        ] {
            let r = parse_reference(input).unwrap();
            assert_eq!(r.tag_key().as_deref(), Some(key), "{input}");
            // parse_tag (used for -t and for loaded archives) makes the same key
            assert_eq!(parse_tag(input).unwrap().to_string(), key, "{input}");
        }
        assert_eq!(
            parse_reference("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn bad_references_are_refused_clearly() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:00",
            "busybox@md5:0123456789abcdef0123456789abcdef",
            "busybox@",
            "a//b",
            "/a",
            "a/",
            "ghcr.io/",
            "app:x y",
            "UPPER.io/app",
        ] {
            let error = parse_reference(bad).expect_err(bad);
            assert!(
                error.to_string().starts_with("invalid reference format"),
                "{error}"
            );
        }
    }

    #[test]
    fn tags_parse_and_normalise() {
        let ok = [
            ("hello", "hello", "latest"),
            ("hello:1", "hello", "1"),
            ("team/app:v1.2-rc_3", "team/app", "v1.2-rc_3"),
            ("localhost:5000/app", "localhost:5000/app", "latest"),
            (
                "registry.example.com:443/a/b:c",
                "registry.example.com:443/a/b",
                "c",
            ),
            ("a__b.c-d---e", "a__b.c-d---e", "latest"),
        ];
        for (input, repository, tag) in ok {
            assert_eq!(
                parse_tag(input),
                Ok(TagRef {
                    repository: repository.into(),
                    tag: tag.into()
                }),
                "{input}"
            );
        }
        for bad in [
            "",
            "Hello",
            "app:",
            "app:-x",
            "app@sha256:00",
            "a//b",
            "-a",
            "a_",
            "a___b",
            "app:x y",
        ] {
            assert!(parse_tag(bad).is_err(), "{bad} should be refused");
        }
        let long = "a".repeat(300);
        assert!(parse_tag(&long).is_err(), "a 300-character name");
        assert!(parse_tag(&"a".repeat(255)).is_ok());
    }
}
