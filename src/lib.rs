//! rbuild: build Dockerfiles into OCI images without a daemon and without root.
//! See DESIGN.md for the map; arrows point down: cli -> build -> {context, snapshot, image,
//! store, archive} -> rbuild-runtime.

pub mod archive;
pub mod build;
pub mod cache;
pub mod check;
pub mod context;
pub mod dockerfile;
pub mod image;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod snapshot;
pub mod store;

/// `e` and its causes on one line, `outer: inner: root cause`, for errors that end up in a
/// message string.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
