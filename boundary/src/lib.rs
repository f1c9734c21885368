//! The boundary: every host-side operation on a tree rbuild was given — a build context, a
//! base image's layers, a pulled or loaded layer, an imported cache, an archive to `ADD` — goes
//! through this crate.
//!
//! The rule it enforces: a path that came from such a tree is only ever resolved *inside* a
//! root directory held as a file descriptor (`openat2` with `RESOLVE_IN_ROOT` or
//! `RESOLVE_BENEATH`, always with `RESOLVE_NO_MAGICLINKS`), and the final component is acted
//! on relative to its parent's fd without following it. No host path string is built with
//! `join` from untrusted names, so a symlink planted in the tree (`/leak -> /home/me/.ssh`,
//! `up -> ..`) resolves to something inside the root or is refused, and a swap of a component
//! between two calls cannot redirect a later one outside.
//!
//! - [`root`]: open, create and remove inside a root, by fd.
//! - [`extract`]: the one tar extractor (layers, ADD archives, context tars, loads, cache
//!   imports), with the layer-format rules (whiteouts, opaque dirs, overlay xattrs).
//! - [`write`]: creating entries in a tree by fd (COPY into an image, `type=local` output).
//! - [`decompress`]: compression told by magic bytes, decoded as it streams.
//! - [`walk`]: walk-based snapshots: what a step changed in a tree, as a layer dir, without
//!   overlayfs.
//!
//! Both other crates use it: `rbuild` for everything on the host side, `rbuild-runtime` to give
//! a bind mount its source inside the step's mount namespace. `clippy.toml` forbids the
//! `std::fs` path functions elsewhere in the modules that handle such trees.

// Paths here are resolved by this crate itself, by fd; it is the one place allowed to use them: the boundary rule (clippy.toml) does not apply.
#![allow(clippy::disallowed_methods)]

pub mod decompress;
pub mod extract;
pub mod layer;
pub mod root;
pub mod walk;
pub mod write;

pub use extract::{extract_tar, ExtractError, ExtractOptions, ExtractReport, Format, Ownership};
pub use root::{
    mkdir_all_in_root, open_beneath, open_dir_in_root, open_in_root, open_root, read_in_root,
    read_regular_file, remove_all_at, RootError,
};
