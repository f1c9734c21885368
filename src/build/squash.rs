//! `--squash` (podman, buildah) and kaniko's `--single-snapshot`: the layers a build made over
//! its base become one layer. The base is applied to a scratch tree and walked, the build's
//! layers are applied over it and the tree walked again: the difference (deletions of base
//! files as whiteouts) is the one layer. History keeps an entry per instruction; all but the
//! last of the build's layer entries become empty, so non-empty entries still match layers.

// The scratch tree and layer dir are store temp dirs rbuild makes; the trees are walked,
// read and written only through boundary::walk, by fd.
#![allow(clippy::disallowed_methods)]

use boundary::walk::{apply_layer, changes, write_layer, Scan};

use super::error::{io_error, BuildError};
use crate::image::ImageConfig;
use crate::store::{Lease, Store};

/// Squashes the layers of `config` above its first `base_layers` into one.
pub(super) fn squash(
    store: &Store,
    lease: &Lease,
    config: &mut ImageConfig,
    base_layers: usize,
) -> Result<(), BuildError> {
    let all = config.rootfs.diff_ids.clone();
    let base_layers = base_layers.min(all.len());
    if all.len() - base_layers < 2 {
        return Ok(());
    }
    let temp = store.temp_dir("squash")?;
    let tree = temp.path().join("tree");
    let layer = temp.path().join("layer");
    for dir in [&tree, &layer] {
        std::fs::create_dir(dir).map_err(io_error(format!("create {}", dir.display())))?;
    }
    let tree_fd = boundary::open_root(&tree).map_err(io_error("open the squash tree"))?;
    let apply = |diff_ids: &[String]| -> Result<(), BuildError> {
        for diff_id in diff_ids {
            let dir = store.layer_dir(diff_id)?;
            let fd =
                boundary::open_root(&dir).map_err(io_error(format!("open {}", dir.display())))?;
            apply_layer(&fd, &tree_fd)?;
        }
        Ok(())
    };
    let walk = || Scan::of(&tree_fd, &|_| false).map_err(io_error("walk the squash tree"));
    apply(&all[..base_layers])?;
    let before = walk()?;
    apply(&all[base_layers..])?;
    let after = walk()?;
    let layer_fd = boundary::open_root(&layer).map_err(io_error("open the squashed layer"))?;
    write_layer(&tree_fd, &after, &changes(&before, &after), &layer_fd)?;
    let diff_id = crate::worker::commit_layer_dir(store, lease, &layer)?;
    config.rootfs.diff_ids = all[..base_layers].to_vec();
    config.rootfs.diff_ids.push(diff_id);
    mark_squashed_history(config, base_layers);
    Ok(())
}

/// All but the last of the layer entries after the base's become empty.
fn mark_squashed_history(config: &mut ImageConfig, base_layers: usize) {
    let layer_entries: Vec<usize> = config
        .history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect();
    if let Some((_, squashed)) = layer_entries
        .split_at(base_layers.min(layer_entries.len()))
        .1
        .split_last()
    {
        for i in squashed {
            config.history[*i].empty_layer = true;
        }
    }
}
