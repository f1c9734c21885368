//! `rbuild system check [--repair]`: verifies a store. Every blob against its digest; every
//! layer for its record and, for layers built here (no blob of their own), its files against
//! its diff_id; every image for a readable config whose layers are all present. With repair,
//! what is corrupt goes: a bad blob or layer is deleted, an image that cannot be used loses its
//! record and its names, so the next build or pull makes it again instead of failing on it.

use crate::snapshot;
use crate::store::{Store, StoreError};

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `blob sha256:...`, `layer sha256:...`, `image sha256:...`.
    pub what: String,
    pub why: String,
    /// Removed by `--repair`.
    pub repaired: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub blobs: usize,
    pub layers: usize,
    pub images: usize,
    pub problems: Vec<Problem>,
}

/// Checks the whole store; with `repair`, removes what is corrupt.
pub fn check_store(store: &Store, repair: bool) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();
    let problem = |what: String, why: String, fix: &dyn Fn() -> Result<(), StoreError>| {
        let repaired = repair && fix().is_ok();
        Problem {
            what,
            why,
            repaired,
        }
    };
    let mut problems = Vec::new();

    for digest in store.list_blobs()? {
        report.blobs += 1;
        let why = match store.verify_blob(&digest) {
            Ok(true) => continue,
            Ok(false) => "its bytes do not match its digest".to_string(),
            Err(e) => e.to_string(),
        };
        problems.push(problem(format!("blob {digest}"), why, &|| {
            store.remove_blob(&digest)
        }));
    }

    for diff_id in store.list_layers()? {
        report.layers += 1;
        if let Some(why) = layer_problem(store, &diff_id) {
            problems.push(problem(format!("layer {diff_id}"), why, &|| {
                store.remove_layer(&diff_id)
            }));
        }
    }

    for image_id in store.list_images()? {
        report.images += 1;
        let why = match store.read_blob(&image_id) {
            Err(e) => Some(format!("config: {e}")),
            Ok(bytes) => match serde_json::from_slice::<crate::image::ImageConfig>(&bytes) {
                Err(e) => Some(format!("config is not an image config: {e}")),
                Ok(config) => config
                    .rootfs
                    .diff_ids
                    .iter()
                    .find(|d| !store.has_layer(d))
                    .map(|d| format!("layer {d} is missing")),
            },
        };
        if let Some(why) = why {
            problems.push(problem(format!("image {image_id}"), why, &|| {
                for tag in store.tags_of(&image_id)? {
                    store.untag(&tag)?;
                }
                store.untag_digests(&image_id)?;
                store.remove_image_record(&image_id)
            }));
        }
    }
    report.problems = problems;
    Ok(report)
}

/// What is wrong with the layer `diff_id`, if anything: no record (an interrupted commit), an
/// unreadable one, or, for a layer built here (no blob of its own: its tar is made from its
/// files), files that no longer give its diff_id (changed behind the store's back).
pub fn layer_problem(store: &Store, diff_id: &str) -> Option<String> {
    match store.layer_info(diff_id) {
        Err(StoreError::MissingLayer { .. }) => {
            Some("no layer.json: the leftover of an interrupted commit".to_string())
        }
        Err(e) => Some(e.to_string()),
        Ok(info) if info.blobs.is_empty() => {
            match store
                .layer_dir(diff_id)
                .map(|dir| snapshot::layer_diff_id(&dir))
            {
                Ok(Ok(digest)) if digest.as_oci() == diff_id => None,
                Ok(Ok(digest)) => Some(format!(
                    "its files hash to {}: the store's copy is damaged",
                    digest.as_oci()
                )),
                Ok(Err(e)) => Some(crate::error_chain(&e)),
                Err(e) => Some(e.to_string()),
            }
        }
        Ok(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures the tests create
mod tests {
    use super::*;
    use crate::store::LayerInfo;

    #[test]
    fn corrupt_blobs_layers_and_images_are_found_and_repaired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let good = store.put_blob(b"good").expect("blob");
        let bad = store.put_blob(b"will be changed").expect("blob");
        std::fs::write(store.blob_path(&bad).expect("path"), b"tampered").expect("write");
        // a layer built here, then changed on disk
        let upper = dir.path().join("upper");
        std::fs::create_dir(&upper).expect("mkdir");
        std::fs::write(upper.join("f"), "x").expect("write");
        let digest = snapshot::layer_diff_id(&upper).expect("diff_id");
        let diff_id = digest.as_oci();
        store
            .commit_layer(
                &upper,
                &LayerInfo {
                    diff_id: diff_id.clone(),
                    tar_size: digest.size,
                    blobs: Vec::new(),
                },
            )
            .expect("commit");
        std::fs::write(store.layer_dir(&diff_id).expect("dir").join("f"), "y").expect("write");
        // an image whose config is not a config
        let image = store.put_blob(b"{\"not\": \"a config\"").expect("blob");
        store
            .add_image(&image, &["broken:1".to_string()])
            .expect("add");

        let found = check_store(&store, false).expect("check");
        let whats: Vec<&str> = found.problems.iter().map(|p| p.what.as_str()).collect();
        assert!(whats.contains(&format!("blob {bad}").as_str()), "{whats:?}");
        assert!(
            whats.contains(&format!("layer {diff_id}").as_str()),
            "{whats:?}"
        );
        assert!(
            whats.contains(&format!("image {image}").as_str()),
            "{whats:?}"
        );
        assert!(!whats.contains(&format!("blob {good}").as_str()));
        assert!(found.problems.iter().all(|p| !p.repaired));

        let repaired = check_store(&store, true).expect("repair");
        assert!(repaired.problems.iter().all(|p| p.repaired), "{repaired:?}");
        assert!(!store.has_blob(&bad) && store.has_blob(&good));
        assert!(!store.has_layer(&diff_id));
        assert!(store.resolve_image("broken:1").is_err());
        assert!(check_store(&store, false)
            .expect("check")
            .problems
            .is_empty());
    }
}
