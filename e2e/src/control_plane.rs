//! One real control plane per test: etcd, kube-apiserver (RBAC, static
//! admin token, service-account tokens, audit log) and optionally
//! kube-controller-manager (garbage collection, Deployment → ReplicaSet →
//! Pod), on free loopback ports in a temp folder. Everything stops on drop;
//! the folder (logs included) is kept when the test is panicking.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::audit::{self, AuditLog};
use crate::pki::Pki;
use crate::process::ManagedProcess;
use crate::{Assets, HarnessError};

/// The static token of the `admin` user (group `system:masters`). Only this
/// throwaway loopback server ever accepts it.
const ADMIN_TOKEN: &str = "voicechat-e2e-admin-token";

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Start kube-controller-manager (garbage collection, Deployments).
    pub controller_manager: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            controller_manager: true,
        }
    }
}

pub struct ControlPlane {
    assets: Assets,
    dir: PathBuf,
    pki: Pki,
    apiserver_port: u16,
    admin_kubeconfig: PathBuf,
    audit: AuditLog,
    // Stopped in this order by `Drop`.
    controller_manager: Option<ManagedProcess>,
    apiserver: Option<ManagedProcess>,
    etcd: Option<ManagedProcess>,
}

pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(HarnessError::io("bind a port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(HarnessError::io("read a bound port"))
}

fn unique_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("voicechat-e2e-{}-{nanos:x}", std::process::id()))
}

/// A plain-HTTP GET on loopback, for etcd's `/health`.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca: &Path,
    user: &str,
    token: &str,
) -> Result<(), HarnessError> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: {server}
      certificate-authority: {ca}
users:
  - name: {user}
    user:
      token: {token}
contexts:
  - name: e2e
    context:
      cluster: e2e
      user: {user}
      namespace: default
current-context: e2e
",
        ca = ca.display()
    );
    std::fs::write(path, text).map_err(HarnessError::io(format!("write {}", path.display())))
}

impl ControlPlane {
    pub fn start(options: Options) -> Result<Self, HarnessError> {
        let assets = Assets::from_env()?;
        let dir = unique_dir();
        std::fs::create_dir_all(&dir).map_err(HarnessError::io("create the temp folder"))?;
        let pki = Pki::create(&dir.join("pki"))?;
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        let apiserver_port = free_port()?;
        write_kubeconfig(
            &admin_kubeconfig,
            &format!("https://127.0.0.1:{apiserver_port}"),
            &pki.ca_cert,
            "admin",
            ADMIN_TOKEN,
        )?;
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin,\"system:masters\"\n"),
        )
        .map_err(HarnessError::io("write tokens.csv"))?;
        std::fs::write(dir.join("audit-policy.yaml"), audit::POLICY)
            .map_err(HarnessError::io("write the audit policy"))?;
        let audit = AuditLog::new(&dir.join("audit.log"));
        let mut plane = Self {
            assets,
            dir,
            pki,
            apiserver_port,
            admin_kubeconfig,
            audit,
            controller_manager: None,
            apiserver: None,
            etcd: None,
        };
        plane.start_etcd()?;
        plane.start_apiserver()?;
        if options.controller_manager {
            plane.start_controller_manager()?;
        }
        Ok(plane)
    }

    fn start_etcd(&mut self) -> Result<(), HarnessError> {
        let client = free_port()?;
        let peer = free_port()?;
        let mut cmd = Command::new(&self.assets.etcd);
        cmd.args([
            "--name=e2e",
            &format!("--data-dir={}", self.dir.join("etcd").display()),
            &format!("--listen-client-urls=http://127.0.0.1:{client}"),
            &format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            &format!("--initial-cluster=e2e=http://127.0.0.1:{peer}"),
            // A test cluster: durability across power loss is not needed,
            // and fsync dominates on slow disks.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]);
        let mut etcd = ManagedProcess::spawn("etcd", cmd, &self.dir.join("etcd.log"))?;
        wait_until(&mut etcd, Duration::from_secs(30), || {
            http_get(client, "/health").is_some_and(|b| b.contains("\"health\":\"true\""))
        })?;
        std::fs::write(self.dir.join("etcd.port"), client.to_string())
            .map_err(HarnessError::io("write etcd.port"))?;
        self.etcd = Some(etcd);
        Ok(())
    }

    fn etcd_port(&self) -> Result<u16, HarnessError> {
        let text = std::fs::read_to_string(self.dir.join("etcd.port"))
            .map_err(HarnessError::io("read etcd.port"))?;
        text.trim().parse().map_err(|_| HarnessError::Io {
            what: "parse etcd.port".into(),
            source: std::io::Error::other(text.clone()),
        })
    }

    fn start_apiserver(&mut self) -> Result<(), HarnessError> {
        let etcd_port = self.etcd_port()?;
        let d = |name: &str| self.dir.join(name).display().to_string();
        let mut cmd = Command::new(&self.assets.kube_apiserver);
        cmd.args([
            &format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={}", self.apiserver_port),
            &format!("--tls-cert-file={}", self.pki.server_cert.display()),
            &format!("--tls-private-key-file={}", self.pki.server_key.display()),
            &format!("--client-ca-file={}", self.pki.ca_cert.display()),
            &format!("--token-auth-file={}", d("tokens.csv")),
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            &format!("--service-account-key-file={}", self.pki.sa_pub.display()),
            &format!(
                "--service-account-signing-key-file={}",
                self.pki.sa_key.display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16",
            &format!("--audit-policy-file={}", d("audit-policy.yaml")),
            &format!("--audit-log-path={}", d("audit.log")),
            // Each request is written before its response returns, so a
            // count taken after a request includes it.
            "--audit-log-mode=blocking",
            "--profiling=false",
            // No kubelet and a loopback address: the "kubernetes" Service
            // endpoints cannot be written, and trying logs an error every 10 s.
            "--endpoint-reconciler-type=none",
        ]);
        let mut apiserver =
            ManagedProcess::spawn("kube-apiserver", cmd, &self.dir.join("apiserver.log"))?;
        let kubectl = self.assets.kubectl.clone();
        let kubeconfig = self.admin_kubeconfig.clone();
        wait_until(&mut apiserver, Duration::from_secs(90), || {
            Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["get", "--raw=/readyz", "--request-timeout=5s"])
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
        self.apiserver = Some(apiserver);
        Ok(())
    }

    fn start_controller_manager(&mut self) -> Result<(), HarnessError> {
        let kubeconfig = self.admin_kubeconfig.display().to_string();
        let mut cmd = Command::new(&self.assets.kube_controller_manager);
        cmd.args([
            &format!("--kubeconfig={kubeconfig}"),
            &format!("--authentication-kubeconfig={kubeconfig}"),
            &format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={}", free_port()?),
            "--leader-elect=false",
            // What the operator relies on: ownerReference garbage
            // collection and Deployment → ReplicaSet → Pod. No node
            // lifecycle controller, so Nodes made through the API keep the
            // status the tests give them.
            "--controllers=garbage-collector-controller,deployment-controller,replicaset-controller,namespace-controller",
            "--use-service-account-credentials=false",
        ]);
        let mut cm = ManagedProcess::spawn(
            "kube-controller-manager",
            cmd,
            &self.dir.join("controller-manager.log"),
        )?;
        // It has no readiness endpoint worth the setup; a crash on bad
        // flags shows within a second or two.
        std::thread::sleep(Duration::from_secs(2));
        cm.check_running()?;
        self.controller_manager = Some(cm);
        Ok(())
    }

    /// Stops the API server (SIGTERM) and starts it again on the same port
    /// and etcd; returns when it is ready.
    pub fn restart_apiserver(&mut self) -> Result<(), HarnessError> {
        if let Some(mut a) = self.apiserver.take() {
            a.terminate(Duration::from_secs(20));
        }
        self.start_apiserver()
    }

    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Runs kubectl as the admin; stdout on success.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, HarnessError> {
        self.kubectl_with_stdin(args, None)
    }

    pub fn kubectl_with_stdin(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, HarnessError> {
        let mut cmd = Command::new(&self.assets.kubectl);
        cmd.arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
            .args(args);
        run(cmd, "kubectl", args, stdin)
    }

    /// Runs helm as the admin; stdout on success. Fails when helm is absent.
    pub fn helm(&self, args: &[&str]) -> Result<String, HarnessError> {
        let helm = self
            .assets
            .helm
            .as_ref()
            .ok_or(HarnessError::MissingBinary {
                binary: "helm",
                dir: PathBuf::from("$HELM_BIN"),
            })?;
        let mut cmd = Command::new(helm);
        cmd.arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
            // Helm keeps caches and config under $HOME by default.
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .args(args);
        run(cmd, "helm", args, None)
    }

    /// A kubeconfig that authenticates as a ServiceAccount with a bound
    /// token from the TokenRequest API (what a pod would get).
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, HarnessError> {
        let token = self.kubectl(&["create", "token", name, "-n", namespace, "--duration=24h"])?;
        let path = self.dir.join(format!("{namespace}-{name}.kubeconfig"));
        write_kubeconfig(
            &path,
            &self.server_url(),
            &self.pki.ca_cert,
            &format!("system:serviceaccount:{namespace}:{name}"),
            token.trim(),
        )?;
        Ok(path)
    }
}

fn run(
    mut cmd: Command,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, HarnessError> {
    use std::process::Stdio;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(HarnessError::io(format!("run {program}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(HarnessError::io(format!("write to {program}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(HarnessError::io(format!("wait for {program}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HarnessError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn wait_until(
    process: &mut ManagedProcess,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let started = Instant::now();
    loop {
        process.check_running()?;
        if ready() {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(HarnessError::NotReady {
                what: process.name().to_string(),
                seconds: timeout.as_secs(),
                log_tail: process.log_tail(30),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for p in [
            self.controller_manager.take(),
            self.apiserver.take(),
            self.etcd.take(),
        ]
        .into_iter()
        .flatten()
        {
            let mut p = p;
            p.terminate(Duration::from_secs(10));
        }
        if std::thread::panicking() || std::env::var_os("VOICECHAT_E2E_KEEP").is_some() {
            eprintln!(
                "control plane files (logs, audit log) kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
