//! Image names as users type them (`app`, `app:1`, `registry:5000/team/app:1`): validation and
//! the familiar short form used as the key of a tag in the store.

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
        repository: repository.to_string(),
        tag: tag.to_string(),
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
    }
}
