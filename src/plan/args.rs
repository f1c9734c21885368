//! Build args every Dockerfile has without declaring them: the platform args BuildKit
//! predefines, and the proxy args that reach RUN but never history or cache keys.

pub use crate::image::Platform;

/// TARGET* and BUILD* args for building `target` on this host.
pub fn platform_args(target: &Platform) -> Vec<(String, String)> {
    let build = Platform::host();
    vec![
        ("TARGETPLATFORM".into(), target.text()),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETARCH".into(), target.architecture.clone()),
        ("TARGETVARIANT".into(), target.variant.clone()),
        ("BUILDPLATFORM".into(), build.text()),
        ("BUILDOS".into(), build.os.clone()),
        ("BUILDARCH".into(), build.architecture.clone()),
        ("BUILDVARIANT".into(), build.variant.clone()),
    ]
}

/// Proxy settings usable with `--build-arg` without an ARG declaration.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}
