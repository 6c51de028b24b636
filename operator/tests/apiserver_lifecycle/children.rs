//! The children of `spec: {}`: each one there, owned and labelled, and
//! all of them gone with the stack.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use serde_json::Value;
use voicechat_operator::crd::VoiceChatStack;

use super::WAIT;
use crate::support::{Cluster, STACKS_NAMESPACE, stack_yaml};

/// kind/name of every labelled child of `stack`.
pub fn children(cluster: &Cluster, stack: &str) -> BTreeSet<String> {
    let out = cluster.kubectl(&[
        "get",
        "deployments,services,configmaps,secrets,serviceaccounts,persistentvolumeclaims,networkpolicies,poddisruptionbudgets",
        "-n",
        STACKS_NAMESPACE,
        "-l",
        &voicechat_operator::build::meta::children_selector(stack),
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).expect("kubectl json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["kind"].as_str().unwrap_or("?"),
                i["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The generated JWT secret in `s`.
pub fn jwt(s: &Secret) -> Option<Vec<u8>> {
    s.data
        .as_ref()
        .and_then(|d| d.get(voicechat_operator::build::JWT_KEY))
        .map(|v| v.0.clone())
}

/// `spec: {}` gives every child, owned and labelled; the generated JWT
/// secret's value.
pub async fn every_child_is_created(cluster: &Cluster) -> Vec<u8> {
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    cluster
        .apply_yaml(&stack_yaml("demo", "{}"))
        .expect("create the stack");
    let expected: BTreeSet<String> = [
        "Deployment/demo-chat",
        "Deployment/demo-voice",
        "Deployment/demo-redis",
        "Service/demo-chat",
        "Service/demo-voice",
        "Service/demo-redis",
        "ConfigMap/demo-chat-config",
        "ConfigMap/demo-voice-config",
        "Secret/demo-jwt",
        "ServiceAccount/demo-pods",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let found = cluster
        .eventually("every child of spec: {} exists", WAIT, || {
            let found = children(cluster, "demo");
            let done = expected.is_subset(&found);
            async move { done.then_some(found) }
        })
        .await;
    assert!(
        found.iter().any(|c| c.starts_with("NetworkPolicy/")),
        "NetworkPolicies guard Redis: {found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|c| c.contains("ollama") || c.starts_with("PodDisruptionBudget/")),
        "no Ollama and no PDB for one replica: {found:?}"
    );
    let stack = stacks.get("demo").await.expect("read the stack");
    let uid = stack.uid().expect("uid");
    let chat = deployments.get("demo-chat").await.expect("chat Deployment");
    let owner = &chat.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("VoiceChatStack", uid.as_str(), Some(true))
    );
    let pod_spec = chat.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod_spec.containers[0];
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&container.liveness_probe).as_deref(), Some("/livez"));
    assert_eq!(path(&container.readiness_probe).as_deref(), Some("/readyz"));
    let security = container
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        pod_spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let voice = deployments
        .get("demo-voice")
        .await
        .expect("voice Deployment");
    let voice_container = &voice
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert!(
        voice_container.startup_probe.is_some(),
        "voice loads models behind a startup probe"
    );
    let first_secret =
        jwt(&secrets.get("demo-jwt").await.expect("JWT Secret")).expect("a JWT secret value");
    assert!(first_secret.len() >= 32, "at least 32 bytes");
    first_secret
}

/// Deleting the stack: the garbage collector removes every child.
pub async fn every_child_is_collected(cluster: &Cluster) {
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    stacks
        .delete("demo", &DeleteParams::foreground())
        .await
        .expect("delete the stack");
    cluster
        .eventually(
            "every child is garbage-collected",
            Duration::from_secs(90),
            || {
                let left: BTreeSet<String> = children(cluster, "demo")
                    .into_iter()
                    .filter(|c| !c.starts_with("PersistentVolumeClaim/"))
                    .collect();
                async move { left.is_empty().then_some(()) }
            },
        )
        .await;
}
