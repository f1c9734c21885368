//! Images and tags: images/HEX marks an image id present in the store, refs.json maps tags to
//! image ids. Both change only under the store lock.

use std::collections::BTreeMap;

use super::{digest_hex, io_err, write_atomic, Store, StoreError};

impl Store {
    fn refs_path(&self) -> std::path::PathBuf {
        self.root.join("refs.json")
    }

    /// tag -> image id.
    pub fn tags(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let path = self.refs_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StoreError::Io {
                action: "read",
                path,
                source: e,
            }),
        }
    }

    fn write_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(tags).unwrap_or_default();
        write_atomic(&self.refs_path(), &bytes)
    }

    /// Records `image_id` (whose config blob is stored) as an image, and points `tags` at it.
    pub fn add_image(&self, image_id: &str, tags: &[String]) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let marker = self.root.join("images").join(digest_hex(image_id)?);
        if !marker.exists() {
            write_atomic(&marker, b"")?;
        }
        if !tags.is_empty() {
            let mut all = self.tags()?;
            for tag in tags {
                all.insert(tag.clone(), image_id.to_string());
            }
            self.write_tags(&all)?;
            // A tag given to one image is no longer a multi-platform tag.
            let mut lists = self.platform_lists()?;
            let before = lists.len();
            lists.retain(|tag, _| !tags.contains(tag));
            if lists.len() != before {
                self.write_lists(&lists)?;
            }
        }
        Ok(())
    }

    /// Every image id in the store.
    pub fn list_images(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(io_err("list", &dir))?
            .flatten()
        {
            if let Some(name) = entry.file_name().to_str() {
                if digest_hex(&format!("sha256:{name}")).is_ok() {
                    out.push(format!("sha256:{name}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Finds an image by tag (`app`, `app:1`), full id (`sha256:...`) or unique id prefix.
    pub fn resolve_image(&self, name: &str) -> Result<String, StoreError> {
        let tags = self.tags()?;
        // `busybox`, `docker.io/library/busybox:latest` and `busybox:latest` are one key;
        // a digest reference is found under `REPO@sha256:...` (recorded by pull).
        if let Ok(reference) = crate::image::parse_reference(name) {
            let key = reference.digest_key().or_else(|| reference.tag_key());
            if let Some(id) = key.and_then(|k| tags.get(&k)) {
                return Ok(id.clone());
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<String> = self
                .list_images()?
                .into_iter()
                .filter(|id| id["sha256:".len()..].starts_with(prefix))
                .collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => {
                    return Err(StoreError::AmbiguousImage {
                        prefix: prefix.to_string(),
                    })
                }
            }
        }
        Err(StoreError::NoSuchImage {
            name: name.to_string(),
        })
    }

    /// Tags pointing at `image_id` (not the `REPO@sha256:...` keys of digest pulls).
    pub fn tags_of(&self, image_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .tags()?
            .into_iter()
            .filter(|(tag, id)| id == image_id && !tag.contains('@'))
            .map(|(tag, _)| tag)
            .collect())
    }

    /// Removes the `REPO@sha256:...` keys pointing at `image_id` (when its last tag goes).
    pub fn untag_digests(&self, image_id: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut all = self.tags()?;
        let before = all.len();
        all.retain(|key, id| !(id == image_id && key.contains('@')));
        if all.len() != before {
            self.write_tags(&all)?;
        }
        Ok(())
    }

    /// Removes a tag (and its platform list); returns the image id it pointed at, if any.
    pub fn untag(&self, tag: &str) -> Result<Option<String>, StoreError> {
        let _lock = self.lock()?;
        let mut all = self.tags()?;
        let removed = all.remove(tag);
        if removed.is_some() {
            self.write_tags(&all)?;
        }
        let mut lists = self.platform_lists()?;
        if lists.remove(tag).is_some() {
            self.write_lists(&lists)?;
        }
        Ok(removed)
    }

    /// Forgets an image id (its tags must be gone). Blobs and layers are collected by `gc`.
    pub fn remove_image_record(&self, image_id: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let marker = self.root.join("images").join(digest_hex(image_id)?);
        let manifest = self.image_manifest_path(image_id)?;
        match std::fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &manifest)(e)),
        }
        std::fs::remove_file(&marker).map_err(io_err("remove", &marker))
    }

    /// images/HEX.manifest: the digest of the manifest an image came with (not a name
    /// `list_images` takes for an image id).
    fn image_manifest_path(&self, image_id: &str) -> Result<std::path::PathBuf, StoreError> {
        Ok(self
            .root
            .join("images")
            .join(format!("{}.manifest", digest_hex(image_id)?)))
    }

    /// Records the digest of the manifest a loaded (or pulled) image came with: the
    /// `org.opencontainers.image.base.digest` of images built on it.
    pub fn set_image_manifest(
        &self,
        image_id: &str,
        manifest_digest: &str,
    ) -> Result<(), StoreError> {
        digest_hex(manifest_digest)?;
        write_atomic(
            &self.image_manifest_path(image_id)?,
            manifest_digest.as_bytes(),
        )
    }

    /// The manifest digest recorded by [`Store::set_image_manifest`], if any.
    pub fn image_manifest(&self, image_id: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.image_manifest_path(image_id).ok()?).ok()?;
        let digest = text.trim().to_string();
        digest_hex(&digest).is_ok().then_some(digest)
    }
}
