//! A real OCI registry (the CNCF distribution `registry`, built by
//! `e2e/build-oci-tools.sh`) on a free loopback port, plain HTTP, with
//! htpasswd auth and its storage in a temporary directory; and the
//! clients that push to it (`oras`, `crane`), run with a Docker config
//! that holds the registry's credentials.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "loader";
pub const PASSWORD: &str = "s3cret-pull";

pub struct OciRegistry {
    pub port: u16,
    dir: PathBuf,
    tools: PathBuf,
    child: Option<Child>,
}

impl OciRegistry {
    /// The tools' folder (`VOICECHAT_OCI_TOOLS`), when it has them.
    pub fn tools() -> Option<PathBuf> {
        let dir = PathBuf::from(std::env::var_os("VOICECHAT_OCI_TOOLS")?);
        ["registry", "oras", "crane"]
            .iter()
            .all(|b| dir.join(b).is_file())
            .then_some(dir)
    }

    pub fn start(tools: &Path) -> Self {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("vcs-registry-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("storage")).expect("registry dir");
        let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
        std::fs::write(dir.join("htpasswd"), format!("{USER}:{hash}\n")).expect("htpasswd");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n\
             http:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  htpasswd:\n    realm: voicechat-test\n    path: {htpasswd}\n",
            storage = dir.join("storage").display(),
            htpasswd = dir.join("htpasswd").display(),
        );
        std::fs::write(dir.join("config.yml"), config).expect("registry config");
        std::fs::create_dir_all(dir.join("docker")).expect("docker config dir");
        std::fs::write(
            dir.join("docker/config.json"),
            Self::docker_config_for(port, USER, PASSWORD),
        )
        .expect("docker config");
        let mut command = Command::new(tools.join("registry"));
        command
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = crate::child::spawn_tied_to_process(command).expect("spawn registry");
        let registry = Self {
            port,
            dir,
            tools: tools.to_owned(),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the registry did not start on port {port}");
    }

    /// `127.0.0.1:<port>`, the registry part of a reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A Docker config JSON (a pull secret's content) for this registry.
    pub fn docker_config(&self, user: &str, password: &str) -> String {
        Self::docker_config_for(self.port, user, password)
    }

    fn docker_config_for(port: u16, user: &str, password: &str) -> String {
        format!(
            r#"{{"auths":{{"127.0.0.1:{port}":{{"username":"{user}","password":"{password}"}}}}}}"#
        )
    }

    /// Runs `oras` or `crane` with the registry's credentials; panics with
    /// its output when it fails.
    pub fn client(&self, tool: &str, args: &[&str], cwd: &Path) -> Output {
        let mut command = Command::new(self.tools.join(tool));
        command.args(args);
        if tool == "oras" {
            command
                .arg("--registry-config")
                .arg(self.dir.join("docker/config.json"));
        }
        let output = command
            .current_dir(cwd)
            .env("DOCKER_CONFIG", self.dir.join("docker"))
            .output()
            .expect("run the OCI client");
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The digest `crane` reads for `reference` (a tag of this registry).
    pub fn digest(&self, reference: &str) -> String {
        let output = self.client("crane", &["digest", "--insecure", reference], &self.dir);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
