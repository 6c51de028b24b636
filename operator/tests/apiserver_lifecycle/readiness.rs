//! Status: not Ready until the Deployments are Available, then Ready.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use voicechat_operator::crd::VoiceChatStack;

use super::WAIT;
use crate::support::{Cluster, STACKS_NAMESPACE};

fn ready_condition(stack: &VoiceChatStack) -> Option<(String, String)> {
    stack
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// What a kubelet would report: every pod of the stack Running and Ready,
/// so the real ReplicaSet and Deployment controllers make the Deployments
/// Available.
async fn mark_pods_ready(pods: &Api<Pod>, stack: &str) -> usize {
    let list = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={stack}")))
        .await
        .expect("list pods");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut marked = 0;
    for pod in list.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            continue;
        }
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
        }});
        pods.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("patch a pod's status");
        marked += 1;
    }
    marked
}

/// The status says NotReady with the observed generation; once the pods
/// are (marked) ready, `kubectl wait` sees the stack Ready.
pub async fn the_stack_becomes_ready(cluster: &Cluster) {
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let stacks2 = stacks.clone();
    cluster
        .eventually("status says NotReady with observedGeneration", WAIT, || {
            let stacks = stacks2.clone();
            async move {
                let s = stacks.get("demo").await.ok()?;
                let observed = s.status.as_ref()?.observed_generation;
                (observed == s.metadata.generation && ready_condition(&s)?.0 == "False")
                    .then_some(())
            }
        })
        .await;
    // The real ReplicaSet controller made the pods; a kubelet would run them.
    let pods2 = pods.clone();
    cluster
        .eventually(
            "the ReplicaSets create pods for chat, voice and redis",
            WAIT,
            || {
                let pods = pods2.clone();
                async move {
                    let n = pods
                        .list(&ListParams::default().labels("app.kubernetes.io/instance=demo"))
                        .await
                        .ok()?
                        .items
                        .len();
                    (n >= 3).then_some(())
                }
            },
        )
        .await;
    assert!(mark_pods_ready(&pods, "demo").await >= 3);
    let wait = cluster.kubectl(&[
        "wait",
        "-n",
        STACKS_NAMESPACE,
        "--for=condition=Ready",
        "vcs/demo",
        "--timeout=60s",
    ]);
    assert!(wait.contains("condition met"), "{wait}");
    let printed = cluster.kubectl(&["get", "vcs", "demo", "-n", STACKS_NAMESPACE]);
    assert!(
        printed.contains("True"),
        "the READY column reads the Ready condition: {printed}"
    );
}
