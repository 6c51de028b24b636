//! A reconcile that changes nothing sends no request (it reads its
//! cache), also the full resync of an operator restart writes nothing, and
//! the JWT secret survives it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::WAIT;
use super::children::jwt;
use crate::support::{Cluster, STACKS_NAMESPACE};

/// Steady state: a reconcile that changes nothing writes nothing and reads
/// nothing from the API server either (only its watches run).
pub async fn a_steady_state_writes_nothing(cluster: &Cluster) {
    let before = cluster.operator().reconciles();
    let mark = cluster.plane.audit().mark();
    crate::touch_stack(cluster, "e2e/touch", "1");
    cluster
        .eventually("the label triggers a reconcile", WAIT, || {
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
    let reads: Vec<String> = cluster
        .operator_requests_since(mark)
        .iter()
        .filter(|r| r.verb == "get")
        .map(ToString::to_string)
        .collect();
    assert!(
        reads.is_empty(),
        "a steady state reads its cache, but: {reads:#?}"
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
