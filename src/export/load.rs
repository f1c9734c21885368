//! `--load`: the image streamed as a docker-archive into `podman load` or `docker load`.
//!
//! The loader is started before rbuild enters its user namespace: podman or docker must run
//! as the user who called rbuild, not as root of rbuild's namespace (where rootless podman
//! would find neither its storage nor its id mappings). Nothing is written to disk.

use std::io::Read;
use std::process::{Child, Command, Stdio};

use super::{ExportContext, ExportError, ExportReport, Exporter};
use crate::archive::{save_with, ArchiveDest, ArchiveFormat, Compression};
use crate::build::BuildResult;

/// Which program `--load` hands the image to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadWith {
    /// podman when installed, else docker.
    Auto,
    Podman,
    Docker,
}

impl std::str::FromStr for LoadWith {
    type Err = LoadError;

    fn from_str(text: &str) -> Result<LoadWith, LoadError> {
        match text {
            "auto" => Ok(LoadWith::Auto),
            "podman" => Ok(LoadWith::Podman),
            "docker" => Ok(LoadWith::Docker),
            other => Err(LoadError::UnknownLoader(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("--load: neither podman nor docker is installed")]
    NoLoader,
    #[error("--load={0}: expected podman or docker")]
    UnknownLoader(String),
    #[error("--load: cannot start `{program} load`")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("wait for `{program} load`")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program} load` failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot write the image to `{program} load`")]
    Write {
        program: String,
        #[source]
        source: crate::archive::ArchiveError,
    },
}

/// A started `podman load` or `docker load`, waiting for the image on its stdin.
#[derive(Debug)]
pub struct Loader {
    program: String,
    child: Child,
}

impl Loader {
    /// Starts `podman load`, `docker load`, or the first of them that is installed.
    pub fn start(with: LoadWith) -> Result<Loader, LoadError> {
        let program = match with {
            LoadWith::Auto => ["podman", "docker"]
                .into_iter()
                .find(|p| find_in_path(p))
                .ok_or(LoadError::NoLoader)?,
            LoadWith::Podman => "podman",
            LoadWith::Docker => "docker",
        };
        let child = Command::new(program)
            .arg("load")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LoadError::Start {
                program: program.to_string(),
                source,
            })?;
        Ok(Loader {
            program: program.to_string(),
            child,
        })
    }

    /// Streams `image_id` as a docker-archive into the loader and waits for it; returns what
    /// it printed ("Loaded image: ...").
    fn load(
        &mut self,
        cx: &ExportContext,
        image_id: &str,
        options: &crate::archive::ExportOptions,
    ) -> Result<String, LoadError> {
        let program = self.program.clone();
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            self.child.stdin.take(),
            self.child.stdout.take(),
            self.child.stderr.take(),
        ) else {
            return Err(LoadError::Wait {
                program,
                source: std::io::Error::other("the loader's pipes are gone"),
            });
        };
        // Drained while the archive is written, so that a chatty loader cannot block on a
        // full pipe.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let out_thread = drain(Box::new(stdout));
        let err_thread = drain(Box::new(stderr));
        let written = save_with(
            cx.store,
            image_id,
            options,
            ArchiveFormat::Docker,
            ArchiveDest::Stream(Box::new(stdin)),
        );
        let status = self.child.wait();
        let out = out_thread.join().unwrap_or_default();
        let err = err_thread.join().unwrap_or_default();
        let status = status.map_err(|source| LoadError::Wait {
            program: program.clone(),
            source,
        })?;
        if !status.success() {
            return Err(LoadError::Failed {
                program,
                status,
                stderr: err.trim().to_string(),
            });
        }
        written.map_err(|source| LoadError::Write { program, source })?;
        Ok(out)
    }
}

impl Exporter for Loader {
    fn describe(&self) -> String {
        format!("{} load", self.program)
    }

    fn single_platform_only(&self) -> Option<&'static str> {
        Some("--load")
    }

    fn export(
        &mut self,
        cx: &ExportContext,
        result: &BuildResult,
    ) -> Result<ExportReport, ExportError> {
        let image = result.default_image();
        let mut options = cx.image_options(None, image.base.clone());
        options.compression = Some(Compression::Uncompressed);
        let printed = self.load(cx, &image.image_id, &options)?;
        cx.progress
            .notice(&format!("loaded into {}: {}", self.program, printed.trim()));
        Ok(ExportReport::default())
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // A loader that got no image (the build failed): stop it.
        if let Ok(None) = self.child.try_wait() {
            drop(self.child.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find_in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
