//! The status step's reads and writes: the stack's Deployments and, for
//! unavailable ones, why their pods are not ready; the Event when `Ready`
//! flips; and the status patch, sent only when the status changed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::is_available;
use crate::apply::FIELD_MANAGER;
use crate::build::meta::{self, Part};
use crate::build::workloads::{CHAT_PORT, VOICE_PORT};
use crate::cache::ChildCache;
use crate::controller::ReconcileError;
use crate::crd::{VoiceChatStack, VoiceChatStackStatus};
use crate::pod_reasons::PodReasons;

/// What the status is computed from, read from the cluster after apply.
pub struct ClusterState {
    /// The stack's Deployments, by name.
    pub deployments: BTreeMap<String, Deployment>,
    /// Why the pods of each unavailable Deployment are not ready, by
    /// Deployment name.
    pub pod_reasons: BTreeMap<String, String>,
}

/// The stack's Deployments and their pods, from the cache.
pub async fn observe(
    cache: &ChildCache,
    pod_reasons: &PodReasons,
    namespace: &str,
    stack: &VoiceChatStack,
) -> ClusterState {
    let deployments: BTreeMap<String, Deployment> = cache
        .children_of::<Deployment>(namespace, &stack.name_any())
        .into_iter()
        .map(|d| (d.name_any(), (*d).clone()))
        .collect();
    let pod_reasons = not_ready_reasons(cache, pod_reasons, namespace, stack, &deployments).await;
    ClusterState {
        deployments,
        pod_reasons,
    }
}

/// Why the pods of each unavailable Deployment are not ready, by
/// Deployment name; nothing is read for available ones.
async fn not_ready_reasons(
    cache: &ChildCache,
    pod_reasons: &PodReasons,
    namespace: &str,
    stack: &VoiceChatStack,
    deployments: &BTreeMap<String, Deployment>,
) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    for part in [Part::Chat, Part::Voice, Part::Redis] {
        let name = meta::name(stack, part.as_str());
        let Some(deployment) = deployments.get(&name) else {
            continue;
        };
        if is_available(deployment) {
            continue;
        }
        let readiness = match part {
            Part::Chat => Some(("/readyz", CHAT_PORT)),
            Part::Voice => Some(("/readyz", VOICE_PORT)),
            _ => None,
        };
        let pods = cache.matching::<Pod>(namespace, &meta::selector(stack, Some(part)));
        if let Some(why) = pod_reasons.not_ready(&pods, readiness).await {
            reasons.insert(name, why);
        }
    }
    reasons
}

/// The status of the `Ready` condition, if there is one.
pub fn ready(status: Option<&VoiceChatStackStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// An Event to publish on the stack.
#[derive(Debug, PartialEq)]
pub struct ReadyEvent {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// The Event when `Ready` flips from `before` to `after`; none for the
/// first status of a new stack.
pub fn ready_event(
    before: Option<&VoiceChatStackStatus>,
    after: &VoiceChatStackStatus,
) -> Option<ReadyEvent> {
    match (ready(before), ready(Some(after))) {
        (Some("False"), Some("True")) => Some(ReadyEvent {
            type_: EventType::Normal,
            reason: "Ready",
            note: "all parts are available".into(),
        }),
        (Some("True"), Some("False")) => Some(ReadyEvent {
            type_: EventType::Warning,
            reason: "NotReady",
            note: after
                .conditions
                .first()
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        }),
        _ => None,
    }
}

/// Writes the status only when it differs, so a steady state writes nothing.
pub async fn write(
    stacks: &Api<VoiceChatStack>,
    stack: &VoiceChatStack,
    status: VoiceChatStackStatus,
) -> Result<(), ReconcileError> {
    if stack.status.as_ref() == Some(&status) {
        return Ok(());
    }
    stacks
        .patch_status(
            &stack.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "voicechat.dev/v1alpha1",
                "kind": "VoiceChatStack",
                "status": status,
            })),
        )
        .await
        .map(|_| ())
        .map_err(ReconcileError::Status)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn with_ready(status: &str, message: &str) -> VoiceChatStackStatus {
        VoiceChatStackStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                reason: String::new(),
                message: message.into(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn an_event_only_when_ready_flips() {
        let up = with_ready("True", "chat and voice are available");
        let down = with_ready("False", "not ready: VoiceReady");
        assert_eq!(ready_event(None, &down), None, "a new stack");
        assert_eq!(ready_event(Some(&down), &down), None);
        assert_eq!(ready_event(Some(&up), &up), None);
        let event = ready_event(Some(&down), &up).expect("became ready");
        assert_eq!((event.type_, event.reason), (EventType::Normal, "Ready"));
        let event = ready_event(Some(&up), &down).expect("stopped being ready");
        assert_eq!(
            (event.type_, event.reason, event.note.as_str()),
            (EventType::Warning, "NotReady", "not ready: VoiceReady")
        );
    }
}
