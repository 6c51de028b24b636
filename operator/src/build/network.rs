//! PodDisruptionBudgets and NetworkPolicies: Redis and Ollama accept
//! connections only from the stack's own chat and voice pods; the voice
//! pods' Wyoming port (no authentication) only from the peers the stack
//! lists, while their HTTP port stays open to all.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{Part, child_meta, selector};
use super::workloads::{OLLAMA_PORT, REDIS_PORT, VOICE_PORT, WYOMING_PORT};
use crate::crd::{RedisMode, VoiceChatStack};

pub fn pdb(stack: &VoiceChatStack, part: Part) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(stack, part.as_str(), Some(part)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(stack, Some(part))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ingress to `port` from `from` (`None`: from anywhere).
fn rule(port: i32, from: Option<Vec<NetworkPolicyPeer>>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from,
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

/// The ingress a part's pods accept; everything else is dropped.
fn ingress(
    stack: &VoiceChatStack,
    target: Part,
    rules: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: child_meta(stack, target.as_str(), Some(target)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(stack, Some(target))),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            ..Default::default()
        }),
    }
}

fn only_from(stack: &VoiceChatStack, target: Part, port: i32, clients: &[Part]) -> NetworkPolicy {
    let from = clients
        .iter()
        .map(|c| NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector(stack, Some(*c))),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    ingress(stack, target, vec![rule(port, Some(from))])
}

/// Voice pods with Wyoming on: HTTP from anywhere (it checks tokens),
/// Wyoming from the listed peers, by default the stack's namespace.
fn voice_with_wyoming(stack: &VoiceChatStack) -> NetworkPolicy {
    let listed = &stack.spec.voice.wyoming.allow_from;
    let peers = if listed.is_empty() {
        vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..Default::default()
        }]
    } else {
        listed.clone()
    };
    ingress(
        stack,
        Part::Voice,
        vec![rule(VOICE_PORT, None), rule(WYOMING_PORT, Some(peers))],
    )
}

pub fn policies(stack: &VoiceChatStack) -> Vec<NetworkPolicy> {
    let mut out = Vec::new();
    if stack.spec.redis.mode == RedisMode::Managed {
        out.push(only_from(
            stack,
            Part::Redis,
            REDIS_PORT,
            &[Part::Chat, Part::Voice],
        ));
    }
    if stack.spec.ollama.enabled {
        out.push(only_from(stack, Part::Ollama, OLLAMA_PORT, &[Part::Chat]));
    }
    if stack.spec.voice.wyoming.enabled {
        out.push(voice_with_wyoming(stack));
    }
    out
}
