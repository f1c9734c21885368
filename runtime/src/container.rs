//! Whether rbuild runs inside a container, told by the signals engines leave: Docker's
//! `/.dockerenv`, Podman's `/run/.containerenv`, the `container` environment variable (Podman,
//! systemd-nspawn, LXC), the cgroup path (`/docker/`, `/kubepods`, `/containerd/`, `libpod`,
//! `/lxc/`), and a root filesystem that is an overlay (`/proc/self/mountinfo`). Used to name
//! the way out when a container's security profile forbids what rbuild needs.

/// One signal that this process is in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    DockerEnv,
    ContainerEnv,
    ContainerVariable(String),
    Cgroup(String),
    OverlayRoot,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signal::DockerEnv => write!(f, "/.dockerenv"),
            Signal::ContainerEnv => write!(f, "/run/.containerenv"),
            Signal::ContainerVariable(value) => write!(f, "container={value}"),
            Signal::Cgroup(path) => write!(f, "cgroup {path}"),
            Signal::OverlayRoot => write!(f, "an overlay root filesystem"),
        }
    }
}

/// What the signals are read from (captured from files and the environment, so that they
/// can be tested).
#[derive(Debug, Default, Clone)]
pub struct Evidence<'a> {
    pub dockerenv: bool,
    pub containerenv: bool,
    pub container_variable: Option<&'a str>,
    /// `/proc/self/cgroup`.
    pub cgroup: &'a str,
    /// `/proc/self/mountinfo`.
    pub mountinfo: &'a str,
}

const CGROUP_MARKERS: [&str; 6] = [
    "/docker/",
    "/docker-",
    "/kubepods",
    "/containerd/",
    "libpod",
    "/lxc/",
];

/// The first signal `evidence` holds, if any.
pub fn detect(evidence: &Evidence) -> Option<Signal> {
    if evidence.dockerenv {
        return Some(Signal::DockerEnv);
    }
    if evidence.containerenv {
        return Some(Signal::ContainerEnv);
    }
    if let Some(value) = evidence.container_variable.filter(|v| !v.is_empty()) {
        return Some(Signal::ContainerVariable(value.to_string()));
    }
    for line in evidence.cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        if CGROUP_MARKERS.iter().any(|m| path.contains(m)) {
            return Some(Signal::Cgroup(path.to_string()));
        }
    }
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...
    for line in evidence.mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let fstype = fields
            .iter()
            .position(|f| *f == "-")
            .and_then(|dash| fields.get(dash + 1));
        if fields.get(4) == Some(&"/") && fstype == Some(&"overlay") {
            return Some(Signal::OverlayRoot);
        }
    }
    None
}

/// The signal this process shows, if any.
// Boundary: the files read are the kernel's (/proc/self) and the engines' fixed names.
#[allow(clippy::disallowed_methods)]
pub fn this_process() -> Option<Signal> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let variable = std::env::var("container").ok();
    detect(&Evidence {
        dockerenv: std::path::Path::new("/.dockerenv").exists(),
        containerenv: std::path::Path::new("/run/.containerenv").exists(),
        container_variable: variable.as_deref(),
        cgroup: &cgroup,
        mountinfo: &mountinfo,
    })
}

/// What to tell a user whose container forbids namespaces (`what`, e.g. "user namespaces"):
/// empty outside a container.
pub fn way_out(what: &str) -> String {
    match this_process() {
        None => String::new(),
        Some(signal) => format!(
            "; rbuild runs in a container ({signal}) whose security profile forbids {what}, as \
             Docker's and Kubernetes' defaults do: run it with `--security-opt \
             seccomp=unconfined --security-opt apparmor=unconfined` (Docker, Podman), or give \
             the pod `Unconfined` seccomp and AppArmor profiles in its securityContext \
             (Kubernetes); or, as root in a container made for the build, use `--isolation \
             none` (steps run on the container's own root, put back after), as the rbuild \
             image (scripts/image) does"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_MOUNTINFO: &str = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
        23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";
    const DOCKER_MOUNTINFO: &str = "612 530 0:58 / / rw,relatime master:280 - overlay overlay \
        rw,lowerdir=/var/lib/docker/overlay2/l/ABC,upperdir=/var/lib/docker/overlay2/x/diff\n\
        613 612 0:61 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n";

    /// Inputs captured on a host, in Docker (cgroup v1 and v2), Podman and a Kubernetes pod.
    #[test]
    fn signals_from_captured_inputs() {
        let host = Evidence {
            cgroup: "0::/user.slice/user-1000.slice/session-2.scope\n",
            mountinfo: HOST_MOUNTINFO,
            ..Evidence::default()
        };
        assert_eq!(detect(&host), None, "a host shows no signal");
        let docker_v1 = Evidence {
            cgroup: "12:devices:/docker/3f1c2a9e\n11:memory:/docker/3f1c2a9e\n",
            mountinfo: HOST_MOUNTINFO,
            ..Evidence::default()
        };
        assert_eq!(
            detect(&docker_v1),
            Some(Signal::Cgroup("/docker/3f1c2a9e".into()))
        );
        let docker_v2 = Evidence {
            cgroup: "0::/\n",
            mountinfo: DOCKER_MOUNTINFO,
            ..Evidence::default()
        };
        assert_eq!(detect(&docker_v2), Some(Signal::OverlayRoot));
        let docker = Evidence {
            dockerenv: true,
            ..docker_v2.clone()
        };
        assert_eq!(detect(&docker), Some(Signal::DockerEnv));
        let podman = Evidence {
            containerenv: true,
            container_variable: Some("podman"),
            ..Evidence::default()
        };
        assert_eq!(detect(&podman), Some(Signal::ContainerEnv));
        let nspawn = Evidence {
            container_variable: Some("systemd-nspawn"),
            ..Evidence::default()
        };
        assert_eq!(
            detect(&nspawn),
            Some(Signal::ContainerVariable("systemd-nspawn".into()))
        );
        let kubernetes = Evidence {
            cgroup: "0::/kubepods/besteffort/pod1234/abcd\n",
            ..Evidence::default()
        };
        assert!(matches!(detect(&kubernetes), Some(Signal::Cgroup(p)) if p.contains("kubepods")));
        let empty_variable = Evidence {
            container_variable: Some(""),
            ..Evidence::default()
        };
        assert_eq!(detect(&empty_variable), None);
    }
}
