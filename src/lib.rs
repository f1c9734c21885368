//! rbuild: build Dockerfiles into OCI images without a daemon and without root.
//! See DESIGN.md for the map; arrows point down: cli -> pipeline -> {build, export} ->
//! {context, snapshot, image, store, archive, registry} -> rbuild-runtime.

pub mod archive;
pub mod build;
pub mod cache;
pub mod check;
pub mod context;
pub mod dockerfile;
pub mod export;
pub mod image;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod sbom;
pub mod snapshot;
pub mod ssh;
pub mod store;
pub mod worker;

/// `e` and its causes on one line, `outer: inner: root cause`, for errors that end up in a
/// message string.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = vec![e];
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause);
        source = cause.source();
    }
    describe_causes(&causes)
}

/// Joins an error and its causes with `: `, leaving out a cause whose text the message already
/// holds (errors that print their source too), so that each cause is said once.
pub fn describe_causes(causes: &[&dyn std::error::Error]) -> String {
    let mut message = String::new();
    for cause in causes {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}
