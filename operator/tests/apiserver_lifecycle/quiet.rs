//! A reconcile that changes nothing writes nothing, also the full resync
//! of an operator restart, and the JWT secret survives it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::WAIT;
use super::children::jwt;
use crate::support::{Cluster, STACKS_NAMESPACE};

/// Steady state: a reconcile that changes nothing writes nothing.
pub async fn a_steady_state_writes_nothing(cluster: &Cluster) {
    let before = cluster.operator().reconciles();
    let mark = cluster.plane.audit().mark();
    cluster.kubectl(&[
        "annotate",
        "vcs",
        "demo",
        "-n",
        STACKS_NAMESPACE,
        "e2e/touch=1",
    ]);
    cluster
        .eventually("the annotation triggers a reconcile", WAIT, || {
            let done = cluster.operator().reconciles() > before;
            async move { done.then_some(()) }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = cluster.operator_writes_since(mark);
    assert!(
        writes.is_empty(),
        "a steady state writes nothing, but: {:#?}",
        writes.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

/// Operator restart: a full resync, still zero writes, the same secret.
pub async fn a_restart_writes_nothing(cluster: &mut Cluster, first_secret: &[u8]) {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let status = cluster.stop_operator();
    assert!(
        status.contains("exit status: 0"),
        "SIGTERM is a clean stop: {status}"
    );
    let mark = cluster.plane.audit().mark();
    cluster.start_operator();
    cluster
        .eventually("the restarted operator reconciles the stack", WAIT, || {
            let n = cluster.operator().reconciles();
            async move { (n >= 1).then_some(()) }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = cluster.operator_writes_since(mark);
    assert!(
        writes.is_empty(),
        "a restart into a steady state writes nothing, but: {:#?}",
        writes.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    let secret_after = jwt(&secrets.get("demo-jwt").await.unwrap()).unwrap();
    assert_eq!(
        secret_after, first_secret,
        "the JWT secret survives operator restarts"
    );
}
