//! `watchNamespaces` against a real API server: the chart gives the
//! operator a Role in each listed namespace and nothing cluster-wide; the
//! operator, run with that chart's ServiceAccount and `WATCH_NAMESPACES`,
//! reconciles the stacks there and never touches a stack elsewhere.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use support::{Cluster, OPERATOR_USER, STACKS_NAMESPACE, stack_yaml};
use voicechat_e2e::Options;
use voicechat_operator::crd::VoiceChatStack;

const OTHER_NAMESPACE: &str = "other";
const WAIT: Duration = Duration::from_secs(60);

/// `kubectl auth can-i` as the operator's ServiceAccount: `yes` or `no`
/// (kubectl exits 1 on `no`, which the harness reports as an error).
fn can_i(cluster: &Cluster, args: &[&str]) -> String {
    let as_operator = format!("--as={OPERATOR_USER}");
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.push(&as_operator);
    match cluster.plane.kubectl(&all) {
        Ok(out) => out.trim().to_owned(),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("exit status: 1"),
                "kubectl auth can-i {args:?}: {text}"
            );
            "no".to_owned()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_listed_namespaces_are_reconciled_and_readable() {
    if !support::available("only_the_listed_namespaces_are_reconciled_and_readable") {
        return;
    }
    let mut cluster = Cluster::start_with(
        Options {
            controller_manager: false,
        },
        &[&format!("--set=watchNamespaces={{{STACKS_NAMESPACE}}}")],
        &[OTHER_NAMESPACE],
    )
    .await;

    // The chart's RBAC: the listed namespace only, no Node, no Secret
    // elsewhere, no ClusterRole at all.
    assert_eq!(
        can_i(&cluster, &["get", "secrets", "-n", STACKS_NAMESPACE]),
        "yes"
    );
    assert_eq!(
        can_i(&cluster, &["patch", "deployments", "-n", STACKS_NAMESPACE]),
        "yes"
    );
    for (verb, resource, ns) in [
        ("get", "secrets", OTHER_NAMESPACE),
        ("list", "voicechatstacks.voicechat.dev", OTHER_NAMESPACE),
        ("patch", "deployments", OTHER_NAMESPACE),
        ("list", "secrets", "kube-system"),
    ] {
        assert_eq!(
            can_i(&cluster, &[verb, resource, "-n", ns]),
            "no",
            "{verb} {resource} in {ns}"
        );
    }
    assert_eq!(can_i(&cluster, &["list", "nodes"]), "no");
    assert!(
        cluster
            .plane
            .kubectl(&["get", "clusterrole", "voicechat-operator"])
            .is_err(),
        "no ClusterRole with watchNamespaces"
    );

    cluster.start_operator_with(&[("WATCH_NAMESPACES", STACKS_NAMESPACE)]);
    let mark = cluster.plane.audit().mark();
    cluster
        .apply_yaml(&stack_yaml("listed", "{}"))
        .expect("a stack in the listed namespace");
    cluster
        .apply_yaml(&stack_yaml("unlisted", "{}").replace(
            &format!("namespace: {STACKS_NAMESPACE}"),
            "namespace: other",
        ))
        .expect("a stack in another namespace");

    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let status = cluster
        .eventually("the listed stack's status", WAIT, || {
            let stacks = stacks.clone();
            async move {
                let s = stacks.get("listed").await.ok()?.status?;
                s.observed_generation.is_some().then_some(s)
            }
        })
        .await;
    // Nodes are not readable: Auto is CPU, and the status says why.
    assert_eq!(status.stt_profile.as_deref(), Some("CPU"));
    let reason = status.stt_profile_reason.unwrap_or_default();
    assert!(reason.contains("WATCH_NAMESPACES"), "{reason}");
    cluster
        .eventually("the listed stack's chat Deployment", WAIT, || {
            let d = deployments.clone();
            async move { d.get("listed-chat").await.ok() }
        })
        .await;

    // A few more seconds for anything the operator might do elsewhere.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.assert_operator_alive();
    let writes = cluster.operator_writes_since(mark);
    assert!(
        writes
            .iter()
            .any(|w| w.namespace.as_deref() == Some(STACKS_NAMESPACE)),
        "the operator wrote in the listed namespace"
    );
    let elsewhere: Vec<String> = writes
        .iter()
        .filter(|w| w.namespace.as_deref() == Some(OTHER_NAMESPACE))
        .map(ToString::to_string)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "no write in an unlisted namespace: {elsewhere:?}"
    );
    let unlisted = cluster.kubectl(&[
        "get",
        "vcs",
        "unlisted",
        "-n",
        OTHER_NAMESPACE,
        "-o",
        "jsonpath={.status}",
    ]);
    assert_eq!(unlisted, "", "the unlisted stack has no status");
    let children = cluster.kubectl(&[
        "get",
        "deployments,secrets",
        "-n",
        OTHER_NAMESPACE,
        "-o",
        "name",
    ]);
    assert!(
        !children.contains("unlisted"),
        "no child of the unlisted stack: {children}"
    );
    // Running with exactly the Role: nothing it does is refused.
    let log = cluster.operator().log_tail(400);
    assert!(
        !log.contains("forbidden") && !log.contains("Forbidden"),
        "no request refused: {log}"
    );
}
