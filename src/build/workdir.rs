//! The WORKDIR instruction: the directory made (owned by USER) and committed as a layer.

use super::copy::join_image_path;
use super::copy_add::resolve_owner;
use super::error::{BuildError, Location};
use super::rootfs::mkdir_all_in_root;
use super::steps::{finish_step, try_cache, StepContext};
use super::{created_time, Stage};

pub(super) fn workdir(
    ctx: &StepContext,
    stage: &mut Stage,
    loc: &Location,
    path: &str,
) -> Result<bool, BuildError> {
    // An absolute path is kept as written (a trailing `/` too), a relative one joins the
    // current directory: BuildKit's NormalizeWorkdir (util/system/path.go).
    let wd = if path.starts_with('/') {
        path.to_string()
    } else {
        join_image_path(&stage.workdir(), path)
    };
    stage.config.config.working_dir = wd.clone();
    let created_by = format!("WORKDIR {wd}");
    if wd == "/" {
        stage.add_history(created_by, created_time(ctx.options), true);
        return Ok(false);
    }
    let user = stage.config.config.user.clone();
    let key = stage.next_key(&["WORKDIR", &wd, &user]);
    let _step_lock = ctx.store.step_lock(&key)?;
    if try_cache(ctx, stage, &key, &created_by) {
        return Ok(true);
    }
    let snapshot = ctx.prepare(&stage.config.rootfs.diff_ids, "workdir")?;
    {
        let mounted = ctx.mount(&snapshot)?;
        // A USER the image does not know (yet) makes no error here: the directory is
        // root's, as BuildKit makes it (conformance case user-001-missing-name-workdir).
        let owner = if user.is_empty() {
            (0, 0)
        } else {
            resolve_owner(&mounted, &user, loc, "WORKDIR").unwrap_or((0, 0))
        };
        mkdir_all_in_root(mounted.root_fd(), &wd, 0o755, owner)
            .map_err(|e| loc.error("WORKDIR", crate::error_chain(&e)))?;
    }
    let diff_id = ctx.commit(snapshot)?;
    finish_step(ctx, stage, key, diff_id, created_by)?;
    Ok(false)
}
