//! A real control plane with the operator installed the way users install
//! it: the Helm chart (CRD, ServiceAccount, ClusterRole, binding), then the
//! operator binary as a process holding that ServiceAccount's token, so the
//! chart's RBAC is what the tests exercise.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use voicechat_e2e::{Assets, AuditedRequest, ControlPlane, OperatorProcess, Options};

pub const OPERATOR_NAMESPACE: &str = "voicechat-system";
pub const OPERATOR_SA: &str = "voicechat-operator";
pub const OPERATOR_USER: &str = "system:serviceaccount:voicechat-system:voicechat-operator";
pub const STACKS_NAMESPACE: &str = "apps";

pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Fields drop in order: the operator stops before the control plane.
pub struct Cluster {
    operator: Option<OperatorProcess>,
    /// The stand-in for the Job controller (see [`complete_loader_jobs`]).
    job_controller: JobControllerStandIn,
    pub client: kube::Client,
    pub plane: ControlPlane,
    operator_kubeconfig: PathBuf,
    operator_starts: u32,
}

struct JobControllerStandIn(tokio::task::JoinHandle<()>);

impl Drop for JobControllerStandIn {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// This control plane runs no controller-manager and no kubelet, so no
/// Job ever runs. Each loader Job is marked finished, as the Job controller
/// marks one whose pod succeeded: the voice pods wait for it. (The models
/// themselves are loaded for real in the cluster tier, e2e/cluster.)
async fn complete_loader_jobs(client: kube::Client) {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::{Patch, PatchParams};
    let jobs: kube::Api<Job> = kube::Api::namespaced(client, STACKS_NAMESPACE);
    loop {
        if let Ok(list) = jobs.list(&Default::default()).await {
            for job in list.items {
                let done = job
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Complete"));
                let Some(name) = job.metadata.name.as_deref().filter(|_| !done) else {
                    continue;
                };
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = serde_json::json!({"status": {
                "startTime": now, "completionTime": now, "succeeded": 1, "active": 0,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "lastTransitionTime": now},
                ]}});
                if let Err(e) = jobs
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                {
                    eprintln!("job controller stand-in: cannot finish Job {name}: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Applies the generated CRD (server-side, as the API server sees it in a
/// real install) and waits until it serves.
pub fn install_crd(plane: &ControlPlane) {
    let crd = repo_root().join("crds/voicechat.dev_voicechatstacks.yaml");
    plane
        .kubectl(&["apply", "--server-side", "-f", &crd.display().to_string()])
        .expect("the API server accepts the generated CRD");
    wait_for_crd(plane);
}

/// Waits until the CRD is `Established`: stacks can be created from then on.
pub fn wait_for_crd(plane: &ControlPlane) {
    plane
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/voicechatstacks.voicechat.dev",
            "--timeout=60s",
        ])
        .expect("the CRD is established");
}

/// Whether a control plane can run here; prints the skip reason if not.
pub fn available(test: &str) -> bool {
    let assets = Assets::available();
    let helm = std::env::var_os("HELM_BIN").is_some_and(|p| std::path::Path::new(&p).is_file());
    let reason = match (&assets, helm) {
        (Err(e), _) => e.clone(),
        (Ok(()), false) => "HELM_BIN is not set (run e2e/build-k8s.sh)".into(),
        (Ok(()), true) => String::new(),
    };
    voicechat_testkit::have_or_skip(
        assets.is_ok() && helm,
        test,
        "kubernetes",
        &format!("a Kubernetes control plane and helm ({reason})"),
    )
}

impl Cluster {
    /// Control plane, `helm install` of the chart, the stacks' namespace.
    pub async fn start(options: Options) -> Cluster {
        Self::start_with(options, &[], &[]).await
    }

    /// [`Cluster::start`] with helm `values` (`--set` arguments) and more
    /// namespaces made before the chart is installed (a Role may go there).
    pub async fn start_with(options: Options, values: &[&str], namespaces: &[&str]) -> Cluster {
        let plane = ControlPlane::start(options).expect("start the control plane");
        let chart = repo_root().join("charts/voicechat-operator");
        for ns in std::iter::once(STACKS_NAMESPACE).chain(namespaces.iter().copied()) {
            plane
                .kubectl(&["create", "namespace", ns])
                .expect("create a namespace");
        }
        let chart = chart.display().to_string();
        let mut args = vec![
            "install",
            "voicechat-operator",
            &chart,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
        ];
        args.extend_from_slice(values);
        plane.helm(&args).expect("helm install the chart");
        wait_for_crd(&plane);
        let operator_kubeconfig = plane
            .service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA)
            .expect("a token for the chart's ServiceAccount");
        let client = client_for(&plane.admin_kubeconfig().to_path_buf()).await;
        Cluster {
            job_controller: JobControllerStandIn(tokio::spawn(complete_loader_jobs(
                client.clone(),
            ))),
            plane,
            client,
            operator_kubeconfig,
            operator: None,
            operator_starts: 0,
        }
    }

    pub fn start_operator(&mut self) {
        self.start_operator_with(&[]);
    }

    /// [`Cluster::start_operator`] with more environment.
    pub fn start_operator_with(&mut self, env: &[(&str, &str)]) {
        assert!(self.operator.is_none(), "the operator already runs");
        self.operator_starts += 1;
        let log = self
            .plane
            .dir()
            .join(format!("operator-{}.log", self.operator_starts));
        let operator = OperatorProcess::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_voicechat-operator")),
            &self.operator_kubeconfig,
            &log,
            env,
        )
        .expect("start the operator");
        self.operator = Some(operator);
    }

    /// Another operator process (a replica) with its own `env`, beside the
    /// one [`Cluster::start_operator`] manages.
    pub fn start_replica(&mut self, name: &str, env: &[(&str, &str)]) -> OperatorProcess {
        let log = self.plane.dir().join(format!("operator-{name}.log"));
        OperatorProcess::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_voicechat-operator")),
            &self.operator_kubeconfig,
            &log,
            env,
        )
        .unwrap_or_else(|e| panic!("start replica {name}: {e}"))
    }

    pub fn operator(&self) -> &OperatorProcess {
        self.operator.as_ref().expect("the operator runs")
    }

    /// SIGTERM; the exit status text.
    pub fn stop_operator(&mut self) -> String {
        self.operator.take().expect("the operator runs").stop()
    }

    pub fn kill_operator(&mut self) {
        self.operator.take().expect("the operator runs").kill();
    }

    /// Requests the operator made since `mark`: writes and reads.
    pub fn operator_requests_since(&self, mark: u64) -> Vec<AuditedRequest> {
        self.plane.audit().requests_since(mark, OPERATOR_USER)
    }

    /// Write requests the operator made since `mark`.
    pub fn operator_writes_since(&self, mark: u64) -> Vec<AuditedRequest> {
        self.plane.audit().writes_since(mark, OPERATOR_USER)
    }

    /// Fails the test with the operator's log when it has died.
    pub fn assert_operator_alive(&mut self) {
        if let Some(op) = self.operator.as_mut()
            && let Err(e) = op.check_running()
        {
            panic!("the operator died: {e}");
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.plane
            .kubectl(args)
            .unwrap_or_else(|e| panic!("kubectl {}: {e}", args.join(" ")))
    }

    pub fn apply_yaml(&self, yaml: &str) -> Result<String, String> {
        self.plane
            .kubectl_with_stdin(&["apply", "-f", "-"], Some(yaml))
            .map_err(|e| e.to_string())
    }

    /// Polls `check` until it returns `Some`, or fails with `what` and the
    /// operator's log after `timeout`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if let Some(op) = &self.operator
                && !op.is_running()
            {
                panic!("{what}: the operator died; its log:\n{}", op.log_tail(40));
            }
            if started.elapsed() > timeout {
                let log = self
                    .operator
                    .as_ref()
                    .map(|o| o.log_tail(40))
                    .unwrap_or_default();
                panic!(
                    "{what}: not true after {} s; operator log:\n{log}",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub async fn client_for(kubeconfig: &PathBuf) -> kube::Client {
    voicechat_operator::install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config");
    kube::Client::try_from(config).expect("a client")
}

/// A stack manifest in the stacks' namespace.
pub fn stack_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: voicechat.dev/v1alpha1
kind: VoiceChatStack
metadata:
  name: {name}
  namespace: {STACKS_NAMESPACE}
spec: {spec}
"
    )
}
