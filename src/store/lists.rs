//! Multi-platform images: platform-lists.json maps a tag to the image ids built for it, one per
//! platform (each config says its platform). The tag itself (refs.json) names one of them, the
//! host's when built, so that every single-image command sees the image this host runs; push
//! and save see the whole list and write an image index. Changes only under the store lock.

use std::collections::BTreeMap;

use super::{write_atomic, Store, StoreError};

impl Store {
    fn lists_path(&self) -> std::path::PathBuf {
        self.root.join("platform-lists.json")
    }

    /// tag -> image ids, one per platform.
    pub fn platform_lists(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let path = self.lists_path();
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

    pub(super) fn write_lists(
        &self,
        lists: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(lists).unwrap_or_default();
        write_atomic(&self.lists_path(), &bytes)
    }

    /// Records the images of a multi-platform build (already added with [`Store::add_image`])
    /// under `tags`, and points the tags themselves at `default_image`.
    pub fn add_platform_list(
        &self,
        image_ids: &[String],
        default_image: &str,
        tags: &[String],
    ) -> Result<(), StoreError> {
        self.add_image(default_image, tags)?;
        let _lock = self.lock()?;
        let mut lists = self.platform_lists()?;
        for tag in tags {
            lists.insert(tag.clone(), image_ids.to_vec());
        }
        self.write_lists(&lists)
    }

    /// tag -> image ids of the lists still in force: a list is only as current as its tag (a
    /// tag moved to an image outside it ends it).
    pub fn current_platform_lists(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let tags = self.tags()?;
        let mut lists = self.platform_lists()?;
        lists.retain(|tag, ids| tags.get(tag).is_some_and(|id| ids.contains(id)));
        Ok(lists)
    }

    /// The images of a multi-platform tag, when `name` (as typed) is one.
    pub fn platform_list(&self, name: &str) -> Result<Option<Vec<String>>, StoreError> {
        let Ok(reference) = crate::image::parse_reference(name) else {
            return Ok(None);
        };
        let Some(key) = reference.tag_key() else {
            return Ok(None);
        };
        Ok(self.current_platform_lists()?.remove(&key))
    }

    /// Every image some multi-platform tag still needs.
    pub fn listed_images(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        Ok(self
            .current_platform_lists()?
            .into_values()
            .flatten()
            .collect())
    }
}
