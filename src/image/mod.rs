//! The OCI image model: config, history, manifests and references.

pub mod config;
pub mod manifest;
mod platform;
pub mod reference;

pub use config::{
    canonical_json, host_architecture, ContainerConfig, History, ImageConfig, RootFs, DEFAULT_PATH,
};
pub use platform::{Platform, PlatformError};
pub use reference::{parse_reference, parse_tag, Reference, ReferenceError, TagRef};
