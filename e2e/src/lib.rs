//! A real Kubernetes control plane for tests (built by `e2e/build-k8s.sh`
//! from Go modules): start one with [`ControlPlane::start`], talk to it
//! with the admin kubeconfig or a ServiceAccount's, read its audit log, run
//! the operator binary against it. Everything is stopped on drop, also when
//! a test panics. [`smoke`] drives one conversation through a running
//! local stack (the `voicechat-smoke` binary).

pub mod audit;
pub mod control_plane;
mod error;
pub mod operator;
pub mod pki;
pub mod process;
pub mod smoke;

use std::path::PathBuf;

pub use audit::{AuditLog, AuditedRequest};
pub use control_plane::{ControlPlane, Options};
pub use error::HarnessError;
pub use operator::OperatorProcess;

/// The binaries: `KUBE_ASSETS` names the folder with `etcd`,
/// `kube-apiserver`, `kube-controller-manager` and `kubectl` (the layout
/// of controller-runtime's envtest assets); `HELM_BIN` names helm.
#[derive(Debug, Clone)]
pub struct Assets {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kubectl: PathBuf,
    pub helm: Option<PathBuf>,
}

impl Assets {
    pub fn from_env() -> Result<Self, HarnessError> {
        let dir = std::env::var_os("KUBE_ASSETS")
            .or_else(|| std::env::var_os("KUBEBUILDER_ASSETS"))
            .map(PathBuf::from)
            .ok_or(HarnessError::NoAssets)?;
        let find = |binary: &'static str| {
            let path = dir.join(binary);
            if path.is_file() {
                Ok(path)
            } else {
                Err(HarnessError::MissingBinary {
                    binary,
                    dir: dir.clone(),
                })
            }
        };
        Ok(Self {
            etcd: find("etcd")?,
            kube_apiserver: find("kube-apiserver")?,
            kube_controller_manager: find("kube-controller-manager")?,
            kubectl: find("kubectl")?,
            helm: std::env::var_os("HELM_BIN")
                .map(PathBuf::from)
                .filter(|p| p.is_file()),
        })
    }

    /// Whether the control plane can be started here (for skip messages).
    pub fn available() -> Result<(), String> {
        Self::from_env().map(|_| ()).map_err(|e| e.to_string())
    }
}
