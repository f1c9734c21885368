//! What a build made, for the exporters: a [`BuildResult`] is an index, one image per platform
//! (a single-platform build is an index of one), with each image's base and the cache records
//! every platform used. [`build_platforms`] builds it: the platforms in parallel, over one
//! parsed Dockerfile, its warnings said once.

use super::{build, BuildError, BuildOptions, BuildOutcome};
use crate::archive::{BaseImage, PlatformImage};
use crate::cache::UsedRecords;
use crate::plan::Platform;
use crate::progress::Progress;
use crate::store::Store;

/// One platform's image.
#[derive(Debug, Clone)]
pub struct ResultImage {
    pub platform: Platform,
    pub image_id: String,
    /// The base image its bottom layers are (for the `base.*` annotations and to keep the
    /// base's layers out of `rewrite-timestamp`); `Some(default)` for `FROM scratch`, None when
    /// the base is no longer in the store (then every layer counts as the build's).
    pub base: Option<BaseImage>,
}

/// The images of one build, one per platform in the order asked.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub images: Vec<ResultImage>,
    /// The image a plain tag names (the host's platform when built, else the first): what
    /// every command that reads one image sees; pushes and archives see them all.
    pub default: usize,
    /// The cache records of every platform's steps, for `--cache-to`.
    pub cache: UsedRecords,
    /// Export an index even for one platform (`--build-arg BUILDKIT_MULTI_PLATFORM=1`).
    pub force_index: bool,
}

impl BuildResult {
    /// The result of a build for one platform.
    pub fn single(store: &Store, platform: Platform, outcome: BuildOutcome) -> BuildResult {
        BuildResult {
            images: vec![ResultImage {
                base: base_image(store, &outcome),
                platform,
                image_id: outcome.image_id,
            }],
            default: 0,
            cache: outcome.cache,
            force_index: false,
        }
    }

    /// True when the result is an image index: several platforms, or one with
    /// `BUILDKIT_MULTI_PLATFORM=1`.
    pub fn is_index(&self) -> bool {
        self.images.len() > 1 || self.force_index
    }

    pub fn image_ids(&self) -> Vec<String> {
        self.images.iter().map(|i| i.image_id.clone()).collect()
    }

    /// The image a plain tag names.
    pub fn default_image(&self) -> &ResultImage {
        &self.images[self.default]
    }

    /// The images as the archive writer takes them.
    pub fn platform_images(&self) -> Vec<PlatformImage> {
        self.images
            .iter()
            .map(|i| PlatformImage {
                image_id: i.image_id.clone(),
                base: i.base.clone(),
            })
            .collect()
    }
}

/// Builds `options` for each of `platforms` (at least one), in parallel: one parsed
/// Dockerfile (`options.loaded`) for all, warnings and check findings said by the first only,
/// step headers labelled with their platform when there are several. `--check` looks at the
/// Dockerfile once, for the first platform.
pub fn build_platforms(
    store: &Store,
    options: &BuildOptions,
    platforms: &[Platform],
    progress: &Progress,
) -> Result<BuildResult, BuildError> {
    let platforms: Vec<Platform> = match platforms {
        [] => vec![options.platform.clone().unwrap_or_else(Platform::host)],
        [first, ..] if options.check_only => vec![first.clone()],
        all => all.to_vec(),
    };
    if options.in_place.is_some() && platforms.len() > 1 {
        return Err(BuildError::Setup(rbuild_runtime::SetupError::Refused(
            "--isolation none builds one platform per run (there is one root to build on): \
             run rbuild once per --platform"
                .into(),
        )));
    }
    if let [platform] = platforms.as_slice() {
        let mut options = options.clone();
        options.platform = Some(platform.clone());
        let outcome = build(store, &options, progress)?;
        let mut result = BuildResult::single(store, platform.clone(), outcome);
        result.force_index = options.wants_index();
        return Ok(result);
    }
    let outcomes: Vec<Result<BuildOutcome, BuildError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = platforms
            .iter()
            .enumerate()
            .map(|(index, platform)| {
                let mut options = options.clone();
                options.platform = Some(platform.clone());
                options.label_platform = true;
                // The Dockerfile's warnings are the same for every platform: said once.
                options.quiet_warnings = index > 0;
                scope.spawn(move || build(store, &options, progress))
            })
            .collect();
        handles
            .into_iter()
            .zip(&platforms)
            .map(|(handle, platform)| {
                handle.join().unwrap_or_else(|_| {
                    Err(BuildError::Panicked {
                        platform: platform.text(),
                    })
                })
            })
            .collect()
    });
    let mut result = BuildResult {
        images: Vec::with_capacity(platforms.len()),
        default: platforms
            .iter()
            .position(|p| *p == Platform::host())
            .unwrap_or(0),
        cache: UsedRecords::default(),
        force_index: true,
    };
    for (outcome, platform) in outcomes.into_iter().zip(platforms) {
        let outcome = outcome.map_err(|source| BuildError::ForPlatform {
            platform: platform.text(),
            source: Box::new(source),
        })?;
        result.cache.merge(&outcome.cache);
        result.images.push(ResultImage {
            base: base_image(store, &outcome),
            platform,
            image_id: outcome.image_id,
        });
    }
    Ok(result)
}

/// The base image the build resolved for the target stage (through `FROM <stage>` chains),
/// when the built image's layers start with its layers.
fn base_image(store: &Store, outcome: &BuildOutcome) -> Option<BaseImage> {
    let Some(base) = &outcome.base else {
        return Some(BaseImage::default()); // FROM scratch: every layer is the build's
    };
    let config: crate::image::ImageConfig =
        serde_json::from_slice(&store.read_blob(&base.image_id).ok()?).ok()?;
    let base_layers = &config.rootfs.diff_ids;
    outcome
        .config
        .rootfs
        .diff_ids
        .starts_with(base_layers)
        .then(|| BaseImage {
            name: crate::image::parse_tag(&base.name)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| base.name.clone()),
            digest: store.image_manifest(&base.image_id),
            layer_count: base_layers.len(),
        })
}
