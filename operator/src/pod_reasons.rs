//! Why a part's pods are not ready, for the stack's status. Read only for
//! parts whose Deployment is unavailable (never in a steady state): what
//! the kubelet reports (not scheduled, a container waiting or crashing),
//! and for a running pod that fails its readiness probe, what the probe's
//! endpoint answers. The kubelet keeps probe bodies out of events, and the
//! voice service's `/readyz` names the model files it could not load.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// The longest reason quoted from one pod.
const MAX_REASON_CHARS: usize = 300;

/// What the pod's status says, when that is enough: `None` for a running
/// pod whose containers are up but not ready (the probe endpoint knows why).
pub fn reason_from_status(pod: &Pod) -> Option<String> {
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        return Some(format!(
            "pod {name} is not scheduled: {}",
            c.message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("no reason given")
        ));
    }
    for container in status.container_statuses.as_deref().unwrap_or_default() {
        let Some(state) = &container.state else {
            continue;
        };
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.as_deref().unwrap_or("waiting");
            return Some(match waiting.message.as_deref() {
                Some(m) if !m.is_empty() => {
                    format!("pod {name}: container {} is {reason}: {m}", container.name)
                }
                _ => format!("pod {name}: container {} is {reason}", container.name),
            });
        }
        if let Some(t) = &state.terminated {
            return Some(format!(
                "pod {name}: container {} exited with code {} ({})",
                container.name,
                t.exit_code,
                t.reason.as_deref().unwrap_or("no reason given")
            ));
        }
    }
    None
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads why pods are not ready.
pub struct PodReasons {
    http: reqwest::Client,
}

impl Default for PodReasons {
    fn default() -> Self {
        Self::new()
    }
}

impl PodReasons {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// The reasons of the not-ready among `pods`, one per pod, joined;
    /// `readiness` is the probe's path and port, asked directly when the
    /// status says nothing. Best effort: a probe that does not answer
    /// gives no reason rather than failing the reconcile.
    pub async fn not_ready(
        &self,
        pods: &[Arc<Pod>],
        readiness: Option<(&str, i32)>,
    ) -> Option<String> {
        let mut reasons = Vec::new();
        for pod in pods.iter().filter(|p| !is_ready(p)) {
            if let Some(reason) = reason_from_status(pod) {
                reasons.push(shorten(&reason));
                continue;
            }
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let (Some(ip), Some((path, port))) = (ip, readiness)
                && let Some(answer) = self.probe_answer(ip, port, path).await
            {
                reasons.push(shorten(&format!("pod {}: {answer}", pod.name_any())));
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    async fn probe_answer(&self, ip: &str, port: i32, path: &str) -> Option<String> {
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        };
        let response = self
            .http
            .get(format!("http://{host}:{port}{path}"))
            .send()
            .await
            .ok()?;
        if response.status().is_success() {
            return None;
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Some(format!("{path} answers {status}: {}", body.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use kube::api::ObjectMeta;

    fn pod(status: PodStatus) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("demo-voice-1".into()),
                ..Default::default()
            },
            status: Some(status),
            ..Default::default()
        }
    }

    #[test]
    fn an_unscheduled_pod_says_what_the_scheduler_said() {
        let p = pod(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("0/1 nodes are available: 1 Insufficient cpu.".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(
            reason_from_status(&p).unwrap(),
            "pod demo-voice-1 is not scheduled: 0/1 nodes are available: 1 Insufficient cpu."
        );
    }

    #[test]
    fn a_waiting_container_gives_its_reason_and_message() {
        let p = pod(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "voice".into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ErrImageNeverPull".into()),
                        message: Some("image \"x\" is not present".into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(
            reason_from_status(&p).unwrap(),
            "pod demo-voice-1: container voice is ErrImageNeverPull: image \"x\" is not present"
        );
    }

    #[test]
    fn a_running_unready_pod_leaves_the_reason_to_its_probe() {
        let p = pod(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "voice".into(),
                state: Some(ContainerState {
                    running: Some(Default::default()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(reason_from_status(&p), None);
    }

    #[test]
    fn long_reasons_are_cut() {
        let long = "x".repeat(1000);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), MAX_REASON_CHARS + 1);
    }
}
