//! Reading the API server's audit log (JSON lines): which requests a given
//! user made, so a test can prove "a steady state writes nothing" and a
//! benchmark can count the reads a resync costs.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Verbs that change something.
pub const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// One completed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedRequest {
    pub verb: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub code: Option<i64>,
    /// The client's User-Agent (the operator puts its replica's identity
    /// there, so replicas sharing one ServiceAccount are told apart).
    pub user_agent: String,
}

impl std::fmt::Display for AuditedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(s) = &self.subresource {
            write!(f, "/{s}")?;
        }
        write!(
            f,
            " {}/{} -> {}",
            self.namespace.as_deref().unwrap_or("-"),
            self.name.as_deref().unwrap_or("-"),
            self.code.map_or_else(|| "?".into(), |c| c.to_string())
        )
    }
}

/// A position in the audit log: requests are counted from it on.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// The current end of the log.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Write requests by `username` logged after `mark` (complete lines only).
    pub fn writes_since(&self, mark: u64, username: &str) -> Vec<AuditedRequest> {
        self.requests_since(mark, username)
            .into_iter()
            .filter(|r| WRITE_VERBS.contains(&r.verb.as_str()))
            .collect()
    }

    /// Every request by `username` logged after `mark`: writes, and the
    /// reads of service accounts (see [`POLICY`]); a watch counts once,
    /// when it starts.
    pub fn requests_since(&self, mark: u64, username: &str) -> Vec<AuditedRequest> {
        let Ok(bytes) = std::fs::read(&self.path) else {
            return Vec::new();
        };
        let start = usize::try_from(mark).unwrap_or(usize::MAX).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..])
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            // A watch is logged when its response starts (it may never
            // complete while the log is read); anything else when it ends.
            .filter(|e| {
                let stage = if e["verb"] == "watch" {
                    "ResponseStarted"
                } else {
                    "ResponseComplete"
                };
                e["stage"] == stage && e["user"]["username"] == username
            })
            .map(|e| {
                let s = |v: &Value| v.as_str().map(str::to_string);
                AuditedRequest {
                    verb: s(&e["verb"]).unwrap_or_default(),
                    resource: s(&e["objectRef"]["resource"]).unwrap_or_default(),
                    subresource: s(&e["objectRef"]["subresource"]),
                    namespace: s(&e["objectRef"]["namespace"]),
                    name: s(&e["objectRef"]["name"]),
                    code: e["responseStatus"]["code"].as_i64(),
                    user_agent: s(&e["userAgent"]).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The policy the harness starts the API server with: metadata of every
/// write, and of the reads of service accounts (the operator's; the
/// control plane's own components read far more and are left out).
pub const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: Metadata
    userGroups: [\"system:serviceaccounts\"]
    verbs: [get, list, watch]
  - level: None
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_this_users_completed_writes_after_the_mark() {
        let dir = std::env::temp_dir().join(format!("voicechat-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let line = |user: &str, verb: &str, stage: &str| {
            format!(
                r#"{{"stage":"{stage}","verb":"{verb}","user":{{"username":"{user}"}},"objectRef":{{"resource":"deployments","namespace":"ns","name":"a"}},"responseStatus":{{"code":200}}}}"#
            )
        };
        std::fs::write(
            &path,
            format!("{}\n", line("op", "patch", "ResponseComplete")),
        )
        .unwrap();
        let log = AuditLog::new(&path);
        let mark = log.mark();
        let later = [
            line("op", "patch", "ResponseComplete"),
            line("op", "get", "ResponseComplete"),
            line("admin", "patch", "ResponseComplete"),
            line("op", "delete", "ResponseStarted"),
            "not json".to_string(),
        ];
        let mut all = std::fs::read_to_string(&path).unwrap();
        for l in later {
            all.push_str(&l);
            all.push('\n');
        }
        std::fs::write(&path, all).unwrap();
        let writes = log.writes_since(mark, "op");
        assert_eq!(writes.len(), 1, "{writes:?}");
        let all = log.requests_since(mark, "op");
        assert_eq!(all.len(), 2, "the get counts as a request: {all:?}");
        assert_eq!(writes[0].to_string(), "patch deployments ns/a -> 200");
        assert_eq!(log.writes_since(0, "op").len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
