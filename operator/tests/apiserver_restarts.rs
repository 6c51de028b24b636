//! Convergence after crashes against a real API server: the operator
//! killed (SIGKILL) in the middle of reconciling a batch of stacks, and the
//! API server restarted under a running operator.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use support::{Cluster, STACKS_NAMESPACE, stack_yaml};
use voicechat_e2e::Options;
use voicechat_operator::crd::VoiceChatStack;

const STACKS: usize = 12;
const WAIT: Duration = Duration::from_secs(90);

/// Stacks whose status matches their generation and whose three
/// Deployments exist.
async fn converged(stacks: &Api<VoiceChatStack>, deployments: &Api<Deployment>) -> usize {
    let Ok(list) = stacks.list(&ListParams::default()).await else {
        return 0;
    };
    let Ok(deps) = deployments.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|s| {
            let name = s.metadata.name.clone().unwrap_or_default();
            let observed = s.status.as_ref().and_then(|st| st.observed_generation);
            let children = ["chat", "voice", "redis"].iter().all(|p| {
                deps.items
                    .iter()
                    .any(|d| d.metadata.name.as_deref() == Some(&format!("{name}-{p}")))
            });
            observed.is_some() && observed == s.metadata.generation && children
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_converges_after_its_crash_and_an_api_server_restart() {
    if !support::available("the_operator_converges_after_its_crash_and_an_api_server_restart") {
        return;
    }
    let mut cluster = Cluster::start(Options {
        controller_manager: false,
    })
    .await;
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let manifests: String = (0..STACKS)
        .map(|i| {
            format!(
                "---\n{}",
                stack_yaml(&format!("s{i}"), "{voice: {sttProfile: CPU}}")
            )
        })
        .collect();
    cluster.apply_yaml(&manifests).expect("create the stacks");

    // --- crash mid-reconcile: SIGKILL once some writes have landed ---
    let mark = cluster.plane.audit().mark();
    cluster.start_operator();
    let started = Instant::now();
    while cluster.operator_writes_since(mark).len() < 5 {
        assert!(started.elapsed() < WAIT, "the operator writes nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill_operator();
    let done_at_crash = converged(&stacks, &deployments).await;
    eprintln!("killed the operator with {done_at_crash} of {STACKS} stacks converged");
    assert!(done_at_crash < STACKS, "the crash came mid-reconcile");

    cluster.start_operator();
    let (s, d) = (stacks.clone(), deployments.clone());
    cluster
        .eventually("every stack converges after the crash", WAIT, || {
            let (s, d) = (s.clone(), d.clone());
            async move { (converged(&s, &d).await == STACKS).then_some(()) }
        })
        .await;

    // --- the API server restarts under the running operator ---
    cluster
        .plane
        .restart_apiserver()
        .expect("restart the API server");
    // Work that only watches re-established after the restart can see.
    cluster
        .apply_yaml(&stack_yaml("after-restart", "{voice: {sttProfile: CPU}}"))
        .expect("create a stack after the restart");
    cluster.kubectl(&[
        "scale",
        "deployment",
        "s0-chat",
        "-n",
        STACKS_NAMESPACE,
        "--replicas=4",
    ]);
    let (s, d) = (stacks.clone(), deployments.clone());
    cluster
        .eventually("the new stack is built and the drift undone", WAIT, || {
            let (s, d) = (s.clone(), d.clone());
            async move {
                let all = converged(&s, &d).await == STACKS + 1;
                let restored = d.get("s0-chat").await.ok()?.spec?.replicas == Some(1);
                (all && restored).then_some(())
            }
        })
        .await;
    cluster.assert_operator_alive();
    let status = cluster.stop_operator();
    assert!(status.contains("exit status: 0"), "{status}");
}
