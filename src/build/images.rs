//! The images a build starts from or copies out of: resolved in the store (a platform's
//! member of a multi-platform tag), pulled when missing, claimed for the build's lease.

use super::error::{BuildError, Location};
use super::steps::StepContext;
use crate::image::ImageConfig;

/// Reads an image's config, after checking every layer is there; an image the store does not
/// have (or any, with `--pull` for FROM) is pulled from its registry first.
pub(super) fn image_config(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
) -> Result<(ImageConfig, String), BuildError> {
    image_config_for(ctx, loc, keyword, name, None)
}

/// `image_config`, pulling the variant for `platform` (default: the build's) when it pulls.
pub(super) fn image_config_for(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
    platform: Option<&crate::plan::Platform>,
) -> Result<(ImageConfig, String), BuildError> {
    use super::PullPolicy;
    let policy = ctx.options.pull;
    let pull = keyword == "FROM" && matches!(policy, PullPolicy::Always | PullPolicy::Newer);
    let mut pulled_now = pull;
    let image_id = match (pull, ctx.store.resolve_image(name)) {
        (false, Ok(id)) => id,
        (false, Err(crate::store::StoreError::NoSuchImage { .. }))
            if policy == PullPolicy::Never =>
        {
            return Err(loc.error(
                keyword,
                format!(
                    "image {name} is not in the store and --pull=never forbids pulling it: \
                     load it (rbuild load -i FILE) or pull it (rbuild pull {name}) first"
                ),
            ))
        }
        (false, Err(crate::store::StoreError::NoSuchImage { .. })) | (true, _) => {
            pulled_now = true;
            pull_image(
                ctx,
                loc,
                keyword,
                name,
                platform.unwrap_or(&ctx.plan.platform),
            )?
        }
        (false, Err(e)) => return Err(loc.error(keyword, e.to_string())),
    };
    let image_id = match platform {
        Some(platform) => match platform_member(ctx, name, platform)? {
            Some(member) => member,
            // A pull just picked the platform from the registry.
            None if pulled_now => image_id,
            None => of_platform(ctx, loc, keyword, name, image_id, platform)?,
        },
        None => image_id,
    };
    let bytes = ctx.store.read_blob(&image_id)?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
        loc.error(
            keyword,
            format!("image {name} has an unreadable config: {e}"),
        )
    })?;
    // Claimed before use: a prune from now on keeps them.
    if !ctx.lease.hold(ctx.store, &config.rootfs.diff_ids)? {
        let missing = config
            .rootfs
            .diff_ids
            .iter()
            .find(|d| !ctx.store.has_layer(d))
            .cloned()
            .unwrap_or_default();
        return Err(loc.error(
            keyword,
            format!("image {name} is incomplete: layer {missing} is missing"),
        ));
    }
    Ok((config, image_id))
}

/// `image_id` (what `name` names in the store) when it is of `platform`; otherwise the image
/// of `platform` pulled from `name`'s registry, as podman does. A local image of another
/// platform is never used for a platform it is not (BuildKit resolves the platform's own
/// image too): it would run arm64 binaries with TARGETARCH=amd64.
fn of_platform(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
    image_id: String,
    platform: &crate::plan::Platform,
) -> Result<String, BuildError> {
    let config: ImageConfig = match serde_json::from_slice(&ctx.store.read_blob(&image_id)?) {
        Ok(config) => config,
        Err(_) => return Ok(image_id),
    };
    if config.os.is_empty() || platform.matches_config(&config) {
        return Ok(image_id);
    }
    let have = crate::plan::Platform::of_config(&config);
    if ctx.options.pull == super::PullPolicy::Never {
        return Err(loc.error(
            keyword,
            format!(
                "image {name} in the store is {have}, not {platform}, and --pull=never forbids                  pulling the {platform} image: pull it (rbuild pull --platform {platform} {name})                  or load it first"
            ),
        ));
    }
    pull_image(ctx, loc, keyword, name, platform).map_err(|e| {
        loc.error(
            keyword,
            format!("image {name} in the store is {have}, not {platform}: {e}"),
        )
    })
}

/// The image of `platform` when `name` is a multi-platform tag of the store.
pub(super) fn platform_member(
    ctx: &StepContext,
    name: &str,
    platform: &crate::plan::Platform,
) -> Result<Option<String>, BuildError> {
    for image_id in ctx.store.platform_list(name)?.unwrap_or_default() {
        let config: ImageConfig = match serde_json::from_slice(&ctx.store.read_blob(&image_id)?) {
            Ok(config) => config,
            Err(_) => continue,
        };
        if platform.matches_config(&config) {
            return Ok(Some(image_id));
        }
    }
    Ok(None)
}

pub(super) fn pull_image(
    ctx: &StepContext,
    loc: &Location,
    keyword: &'static str,
    name: &str,
    platform: &crate::plan::Platform,
) -> Result<String, BuildError> {
    let reference =
        crate::image::parse_reference(name).map_err(|e| loc.error(keyword, e.to_string()))?;
    let plain = |line: &str| eprintln!("  {line}");
    let quiet = |_: &str| {};
    let log: &dyn crate::progress::Reporter = match ctx.progress_mode {
        crate::progress::ProgressMode::Plain => &plain,
        // Through the live display, never drawn over it.
        crate::progress::ProgressMode::Tty => ctx.progress,
        crate::progress::ProgressMode::Quiet => &quiet,
        crate::progress::ProgressMode::RawJson => &crate::progress::JsonTransfers,
    };
    crate::registry::pull(
        ctx.store,
        &reference,
        &crate::registry::PullOptions {
            platform: Some(platform.clone()),
        },
        log,
    )
    .map(|pulled| pulled.image_id)
    .map_err(|e| loc.error(keyword, format!("cannot pull {name}: {e}")))
}
