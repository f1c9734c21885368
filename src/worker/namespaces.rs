//! The namespaced sandbox: each RUN in new user, mount, pid, ipc and uts namespaces (and a
//! network namespace for `--network=none`), under the seccomp filter, over an overlay the
//! step process mounts itself (see rbuild-runtime).

use rbuild_runtime::{OutputStream, RuntimeError, StepOutcome, StepSpec};

use super::Executor;

pub struct NamespaceExecutor;

impl Executor for NamespaceExecutor {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn run(
        &self,
        spec: &StepSpec,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<StepOutcome, RuntimeError> {
        rbuild_runtime::run_step(spec, on_output)
    }
}
