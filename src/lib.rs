//! rbuild: build Dockerfiles into OCI images without a daemon and without root.
//! See DESIGN.md for the map; arrows point down: cli -> build -> {context, snapshot, image,
//! store, archive} -> rbuild-runtime.

pub mod archive;
pub mod build;
pub mod cache;
pub mod context;
pub mod dockerfile;
pub mod image;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod snapshot;
pub mod store;
