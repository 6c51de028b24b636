//! The operator binary against a real API server (etcd, kube-apiserver,
//! kube-controller-manager built by e2e/build-k8s.sh), installed with the
//! Helm chart and running under the chart's RBAC. Skipped with a printed
//! reason when the control plane is not built (the test script builds it).

#[path = "../support/mod.rs"]
mod support;

mod children;
mod drift;
mod quiet;
mod readiness;

use std::time::Duration;

use support::Cluster;
use voicechat_e2e::Options;

const WAIT: Duration = Duration::from_secs(60);

/// Labels the stack `demo` with `label=value`, which wakes a reconcile
/// (the stacks' watch passes on changes of the spec and labels, not of
/// annotations or the status, which the operator writes itself).
fn touch_stack(cluster: &Cluster, label: &str, value: &str) {
    cluster.kubectl(&[
        "label",
        "vcs",
        "demo",
        "-n",
        support::STACKS_NAMESPACE,
        &format!("{label}={value}"),
        "--overwrite",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_lives_its_whole_life_against_a_real_api_server() {
    if !support::available("a_stack_lives_its_whole_life_against_a_real_api_server") {
        return;
    }
    let mut cluster = Cluster::start(Options::default()).await;
    cluster.start_operator();
    let first_secret = children::every_child_is_created(&cluster).await;
    readiness::the_stack_becomes_ready(&cluster).await;
    quiet::a_steady_state_writes_nothing(&cluster).await;
    quiet::a_restart_writes_nothing(&mut cluster, &first_secret).await;
    drift::drift_is_corrected(&cluster).await;
    drift::a_spec_change_reaches_the_children(&cluster).await;
    drift::autoscaling_takes_the_replicas_over(&cluster).await;
    children::every_child_is_collected(&cluster).await;
    let status = cluster.stop_operator();
    assert!(status.contains("exit status: 0"), "{status}");
}
