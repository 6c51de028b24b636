//! The stack's children follow its spec: an edited child is put back, a
//! deleted one recreated, and a spec change reaches the children and rolls
//! the pods whose configuration changed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use std::time::Duration;

use serde_json::json;
use voicechat_operator::crd::VoiceChatStack;

use super::WAIT;
use super::children::children;
use crate::support::{Cluster, STACKS_NAMESPACE};

/// Drift: an edited child is put back, a deleted one recreated.
pub async fn drift_is_corrected(cluster: &Cluster) {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    cluster.kubectl(&[
        "scale",
        "deployment",
        "demo-chat",
        "-n",
        STACKS_NAMESPACE,
        "--replicas=3",
    ]);
    let d2 = deployments.clone();
    cluster
        .eventually("the hand-scaled Deployment is restored to 1 replica", WAIT, || {
            let d = d2.clone();
            async move { (d.get("demo-chat").await.ok()?.spec?.replicas == Some(1)).then_some(()) }
        })
        .await;
    let old_uid = services.get("demo-chat").await.unwrap().uid();
    services
        .delete("demo-chat", &DeleteParams::default())
        .await
        .expect("delete a Service");
    let s2 = services.clone();
    cluster
        .eventually("the deleted Service is recreated", WAIT, || {
            let s = s2.clone();
            let old = old_uid.clone();
            async move {
                s.get_opt("demo-chat")
                    .await
                    .ok()?
                    .filter(|s| s.uid() != old)
                    .map(|_| ())
            }
        })
        .await;
    config_maps
        .delete("demo-voice-config", &DeleteParams::default())
        .await
        .expect("delete a ConfigMap");
    let c2 = config_maps.clone();
    cluster
        .eventually("the deleted ConfigMap is recreated", WAIT, || {
            let c = c2.clone();
            async move { c.get_opt("demo-voice-config").await.ok()?.map(|_| ()) }
        })
        .await;
    secrets
        .delete("demo-jwt", &DeleteParams::default())
        .await
        .expect("delete the JWT Secret");
    let sec2 = secrets.clone();
    cluster
        .eventually("the deleted JWT Secret is recreated", WAIT, || {
            let s = sec2.clone();
            async move { s.get_opt("demo-jwt").await.ok()?.map(|_| ()) }
        })
        .await;
}

/// A spec change: children follow, the config checksum rolls the pods.
pub async fn a_spec_change_reaches_the_children(cluster: &Cluster) {
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let checksum = |d: &Deployment| {
        d.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get("voicechat.dev/config-checksum")
            .cloned()
    };
    let old_checksum =
        checksum(&deployments.get("demo-chat").await.unwrap()).expect("a checksum annotation");
    stacks
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"chat": {"replicas": 2, "llm": {"model": "gemma3:270m"}}}}),
            ),
        )
        .await
        .expect("change the spec");
    let d3 = deployments.clone();
    let new_checksum = cluster
        .eventually(
            "chat gets 2 replicas and a new config checksum",
            WAIT,
            || {
                let d = d3.clone();
                let old = old_checksum.clone();
                async move {
                    let chat = d.get("demo-chat").await.ok()?;
                    let sum = checksum(&chat)?;
                    (chat.spec.as_ref()?.replicas == Some(2) && sum != old).then_some(sum)
                }
            },
        )
        .await;
    assert_ne!(new_checksum, old_checksum);
    let found = children(cluster, "demo");
    assert!(
        found.contains("PodDisruptionBudget/demo-chat"),
        "two replicas get a PDB: {found:?}"
    );
    let s3 = stacks.clone();
    cluster
        .eventually(
            "observedGeneration follows the new generation",
            WAIT,
            || {
                let s = s3.clone();
                async move {
                    let s = s.get("demo").await.ok()?;
                    (s.status.as_ref()?.observed_generation == s.metadata.generation).then_some(())
                }
            },
        )
        .await;
}

/// Autoscaling on: an autoscaler is made, the replicas are handed over
/// (the Deployment keeps its count instead of falling to one), and what
/// the autoscaler sets is left alone (no write by the operator); off again:
/// the operator sets them and the autoscaler goes.
pub async fn autoscaling_takes_the_replicas_over(cluster: &Cluster) {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let autoscalers: Api<HorizontalPodAutoscaler> =
        Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let replicas =
        |d: Api<Deployment>| async move { d.get("demo-chat").await.ok()?.spec?.replicas };
    stacks
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"chat": {"replicas": 3}}})),
        )
        .await
        .expect("three chat replicas");
    let d = deployments.clone();
    cluster
        .eventually("three chat replicas", WAIT, || {
            let d = d.clone();
            async move { (replicas(d).await == Some(3)).then_some(()) }
        })
        .await;
    stacks
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"chat": {"autoscaling": {"minReplicas": 2, "maxReplicas": 5}}}}),
            ),
        )
        .await
        .expect("autoscaling on");
    let a = autoscalers.clone();
    let hpa = cluster
        .eventually("an autoscaler for the chat pods", WAIT, || {
            let a = a.clone();
            async move { a.get_opt("demo-chat").await.ok().flatten() }
        })
        .await;
    let spec = hpa.spec.expect("spec");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 5));
    assert_eq!(spec.scale_target_ref.name, "demo-chat");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        replicas(deployments.clone()).await,
        Some(3),
        "handed over, not reset"
    );

    // The autoscaler (here kubectl, as its stand-in) scales: the operator
    // lets it be and writes nothing.
    let mark = cluster.plane.audit().mark();
    cluster.kubectl(&[
        "scale",
        "deployment",
        "demo-chat",
        "-n",
        STACKS_NAMESPACE,
        "--replicas=4",
    ]);
    crate::touch_stack(cluster, "touch", "autoscaled");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replicas(deployments.clone()).await, Some(4));
    let writes: Vec<_> = cluster
        .operator_writes_since(mark)
        .into_iter()
        .filter(|w| w.resource == "deployments")
        .collect();
    assert!(
        writes.is_empty(),
        "the operator fought the autoscaler: {writes:?}"
    );

    // Off again: the spec's replicas, and no autoscaler.
    stacks
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"chat": {"autoscaling": null, "replicas": 1}}})),
        )
        .await
        .expect("autoscaling off");
    let (d, a) = (deployments.clone(), autoscalers.clone());
    cluster
        .eventually("one chat replica and no autoscaler", WAIT, || {
            let (d, a) = (d.clone(), a.clone());
            async move {
                let gone = a.get_opt("demo-chat").await.ok()?.is_none();
                (gone && replicas(d).await == Some(1)).then_some(())
            }
        })
        .await;
}
