//! The bookkeeping every step shares: the build-wide step context, cache lookups and
//! records, the worker's snapshots and commits, and the history entry a layer adds.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::error::BuildError;
use super::{created_time, BuildOptions, Stage};
use crate::context::BuildContext;
use crate::dockerfile::Instruction;
use crate::plan::Plan;
use crate::store::{CacheRecord, Store};

/// What every step of a build reads: the store, the context, the options and plan, the
/// caches, the lease on the layers in use, and whether another stage has failed.
pub(crate) struct StepContext<'a> {
    /// Where the time goes (printed with RBUILD_TIMINGS=1).
    pub timings: super::Timings,
    /// How progress is shown (pull progress follows it).
    pub progress_mode: crate::progress::ProgressMode,
    /// Digests of context files, by stat, kept between builds.
    pub hashes: std::sync::Arc<crate::context::HashCache>,
    /// Caches given with --cache-from, consulted when the store misses.
    pub imported: crate::cache::Imported,
    /// Keys and cache mounts this build used, for --cache-to.
    pub used: crate::cache::UsedCache,
    pub store: &'a Store,
    pub context: &'a BuildContext,
    pub options: &'a BuildOptions,
    pub escape: char,
    pub plan: &'a Plan<'a>,
    /// Set when a stage failed: the others stop before their next step.
    pub cancelled: AtomicBool,
    /// The layers this build uses, kept by a `prune` that runs meanwhile.
    pub lease: crate::store::Lease,
    /// Where steps run and how their changes become layers.
    pub worker: crate::worker::Worker,
    /// Which build checks run (for the one found while building: InvalidBaseImagePlatform).
    pub checks: crate::plan::checks::CheckDirective,
    /// The build's display, where pulls of base images report in tty mode.
    pub progress: &'a crate::progress::Progress,
}

impl StepContext<'_> {
    /// A cache record from the store, else from an imported cache (its layer is imported
    /// now); the key counts as used by this stage.
    pub fn lookup(&self, stage: &Stage, key: &str) -> Option<CacheRecord> {
        let started = Instant::now();
        let record = self
            .store
            .cache_lookup(key)
            .or_else(|| self.imported.lookup(self.store, key));
        self.timings.add(&self.timings.lookup_ns, started);
        let record = record?;
        self.used.key(stage.index, key);
        Some(record)
    }

    /// A writable root over `layers` for a step (`purpose` names its temp dir).
    pub fn prepare(
        &self,
        layers: &[String],
        purpose: &str,
    ) -> Result<crate::worker::Snapshot, BuildError> {
        Ok(self
            .worker
            .snapshotter
            .prepare(self.store, layers, purpose)?)
    }

    /// A read-only view of `layers`, mounted in rbuild's own mount namespace.
    pub fn mount_view(
        &self,
        layers: &[String],
        purpose: &str,
    ) -> Result<(crate::worker::MountedRootfs, crate::worker::Snapshot), BuildError> {
        let view = self.worker.snapshotter.view(self.store, layers, purpose)?;
        Ok((self.worker.snapshotter.mount(&view)?, view))
    }

    /// Mounts a prepared root in rbuild's own mount namespace (COPY, WORKDIR).
    pub fn mount(
        &self,
        snapshot: &crate::worker::Snapshot,
    ) -> Result<crate::worker::MountedRootfs, BuildError> {
        Ok(self.worker.snapshotter.mount(snapshot)?)
    }

    /// What changed in `snapshot` as a layer held by this build's lease. A step that changed
    /// nothing still gets a layer, an empty one, as BuildKit gives every RUN, COPY, ADD and
    /// WORKDIR (its testExportedHistory: `RUN ["ls"]` is not an empty_layer; conformance
    /// cases run-001-empty-layer and copy-012-wildcard-none-alone).
    pub fn commit(&self, snapshot: crate::worker::Snapshot) -> Result<Option<String>, BuildError> {
        match self
            .worker
            .snapshotter
            .commit(self.store, &self.lease, snapshot)?
        {
            Some(diff_id) => Ok(Some(diff_id)),
            None => {
                let empty = self.store.temp_dir("empty-layer")?;
                Ok(Some(crate::worker::commit_layer_dir(
                    self.store,
                    &self.lease,
                    empty.path(),
                )?))
            }
        }
    }

    /// Stores what a step produced under its key, as used by this stage.
    pub fn remember(
        &self,
        stage: &Stage,
        key: &str,
        record: CacheRecord,
    ) -> Result<(), BuildError> {
        self.store.cache_store(key, &record)?;
        self.used.key(stage.index, key);
        Ok(())
    }
}

/// Adds a layer (or none for an empty diff) produced by a step, with its history entry.
pub(super) fn record_layer(
    stage: &mut Stage,
    diff_id: Option<String>,
    created_by: String,
    created: String,
) {
    let empty = diff_id.is_none();
    if let Some(diff_id) = diff_id {
        stage.config.rootfs.diff_ids.push(diff_id);
    }
    stage.add_history(created_by, created, empty);
}

/// The `created` time of a metadata step (no layer): remembered per position in the cache
/// chain, so that a rebuild with every step cached writes the same history and so the same
/// image digest. Metadata steps never move the chain: a changed LABEL does not make the RUN
/// after it miss, as in BuildKit.
pub(super) fn metadata_created(
    ctx: &StepContext,
    stage: &Stage,
    ins: &Instruction,
) -> (String, bool) {
    if ctx.options.source_date_epoch.is_some() {
        return (created_time(ctx.options), false);
    }
    let position = stage.config.history.len().to_string();
    let key = stage.next_key(&["METADATA", &position, &ins.original]);
    if !stage.no_cache {
        if let Some(record) = ctx.lookup(stage, &key) {
            return (record.created, true);
        }
    }
    let created = created_time(ctx.options);
    let _ = ctx.remember(
        stage,
        &key,
        CacheRecord {
            diff_id: None,
            created: created.clone(),
        },
    );
    (created, false)
}

/// A cache hit: reuse the recorded layer. Returns true when it hit.
pub(super) fn try_cache(ctx: &StepContext, stage: &mut Stage, key: &str, created_by: &str) -> bool {
    if stage.no_cache {
        return false;
    }
    match ctx.lookup(stage, key) {
        // claimed, or gone since the lookup (a prune): then it is a miss
        Some(record)
            if record.diff_id.as_ref().is_some_and(|d| {
                !ctx.lease
                    .hold(ctx.store, std::slice::from_ref(d))
                    .unwrap_or(false)
            }) =>
        {
            false
        }
        Some(record) => {
            record_layer(
                stage,
                record.diff_id,
                created_by.to_string(),
                record.created,
            );
            stage.cache_key = key.to_string();
            true
        }
        None => false,
    }
}

pub(super) fn finish_step(
    ctx: &StepContext,
    stage: &mut Stage,
    key: String,
    diff_id: Option<String>,
    created_by: String,
) -> Result<(), BuildError> {
    let next = key.clone();
    finish_step_chained(ctx, stage, &key, next, diff_id, created_by)
}

/// Records what a step produced under `key` and moves the stage's chain to `next` (the key
/// itself, except for COPY --link whose key does not depend on the chain).
pub(super) fn finish_step_chained(
    ctx: &StepContext,
    stage: &mut Stage,
    key: &str,
    next: String,
    diff_id: Option<String>,
    created_by: String,
) -> Result<(), BuildError> {
    let created = created_time(ctx.options);
    ctx.remember(
        stage,
        key,
        CacheRecord {
            diff_id: diff_id.clone(),
            created: created.clone(),
        },
    )?;
    record_layer(stage, diff_id, created_by, created);
    stage.cache_key = next;
    Ok(())
}
