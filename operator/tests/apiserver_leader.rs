//! Leader election against a real API server, with the chart's RBAC: two
//! operator replicas share one Lease and only the leader writes (the audit
//! log tells them apart by user agent); the leader killed (SIGKILL) → the
//! standby takes over within the lease duration and converges a stack
//! changed meanwhile; the leader stalled (SIGSTOP) past the lease → the
//! standby takes over, and the old leader, resumed, writes nothing.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use support::{Cluster, OPERATOR_NAMESPACE, STACKS_NAMESPACE, stack_yaml};
use voicechat_e2e::{AuditedRequest, OperatorProcess, Options};

/// Short, so that the test is quick: lease 4 s, renew deadline 3 s, retry 1 s.
const LEASE: Duration = Duration::from_secs(4);
const WAIT: Duration = Duration::from_secs(90);

fn replica(cluster: &mut Cluster, name: &str) -> OperatorProcess {
    cluster.start_replica(
        name,
        &[
            ("LEADER_ELECT", "true"),
            ("POD_NAME", name),
            ("LEASE_NAMESPACE", OPERATOR_NAMESPACE),
            ("LEASE_NAME", "voicechat-operator"),
            ("LEASE_DURATION_SECONDS", "4"),
            ("RENEW_DEADLINE_SECONDS", "3"),
            ("RETRY_PERIOD_SECONDS", "1"),
        ],
    )
}

/// Writes by replica `name` other than its Lease's.
fn writes_by(cluster: &Cluster, mark: u64, name: &str) -> Vec<AuditedRequest> {
    cluster
        .operator_writes_since(mark)
        .into_iter()
        .filter(|w| w.user_agent.contains(&format!("({name})")) && w.resource != "leases")
        .collect()
}

fn is_leader(op: &OperatorProcess) -> bool {
    op.metrics()
        .is_some_and(|m| m.lines().any(|l| l == "voicechat_operator_leader 1"))
}

async fn chat_replicas(deployments: &Api<Deployment>, stack: &str) -> Option<i32> {
    deployments
        .get(&format!("{stack}-chat"))
        .await
        .ok()?
        .spec?
        .replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over_when_it_dies_or_stalls() {
    if !support::available("one_replica_leads_and_the_other_takes_over_when_it_dies_or_stalls") {
        return;
    }
    let mut cluster = Cluster::start(Options {
        controller_manager: false,
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    cluster
        .apply_yaml(&stack_yaml("demo", "{voice: {sttProfile: CPU}}"))
        .expect("create a stack");

    // --- two replicas: one leads and writes, the other stands by ---
    let mark = cluster.plane.audit().mark();
    let a = replica(&mut cluster, "replica-a");
    let b = replica(&mut cluster, "replica-b");
    let d = deployments.clone();
    cluster
        .eventually("the stack is built", WAIT, || {
            let d = d.clone();
            async move { chat_replicas(&d, "demo").await.map(|_| ()) }
        })
        .await;
    let (leader, standby, leader_name, standby_name) = if is_leader(&a) {
        (a, b, "replica-a", "replica-b")
    } else {
        (b, a, "replica-b", "replica-a")
    };
    assert!(is_leader(&leader) && !is_leader(&standby));
    assert_eq!(leader.readiness().as_deref(), Some("ok: leader"));
    assert_eq!(
        standby.readiness().as_deref(),
        Some("ok: standby (not the leader)")
    );
    assert!(!writes_by(&cluster, mark, leader_name).is_empty());
    let standby_writes = writes_by(&cluster, mark, standby_name);
    assert!(
        standby_writes.is_empty(),
        "the standby wrote: {standby_writes:?}"
    );

    // --- the leader killed: the standby takes over and converges a change
    // made while nobody led ---
    let killed_at = Instant::now();
    leader.kill();
    set_chat_replicas(&cluster, 2);
    let d = deployments.clone();
    cluster
        .eventually(
            "the standby takes over and applies the change",
            WAIT,
            || {
                let d = d.clone();
                async move { (chat_replicas(&d, "demo").await == Some(2)).then_some(()) }
            },
        )
        .await;
    let took = killed_at.elapsed();
    eprintln!("took over {took:?} after the leader was killed");
    assert!(is_leader(&standby));
    // Lease duration, one retry period for each of the last renewal and the
    // standby's poll, and the reconcile itself.
    assert!(took < LEASE * 3, "took over after {took:?}");

    // --- the new leader stalled past the lease: a third replica takes
    // over; resumed, the stalled one writes nothing ---
    let leader = standby;
    let stalled_name = standby_name;
    let c = replica(&mut cluster, "replica-c");
    leader.pause();
    let paused_at = Instant::now();
    let d = deployments.clone();
    cluster
        .eventually("replica-c leads", WAIT, || {
            let ok = is_leader(&c);
            async move { ok.then_some(()) }
        })
        .await;
    eprintln!(
        "replica-c took over {:?} after the stall",
        paused_at.elapsed()
    );
    let mark = cluster.plane.audit().mark();
    leader.resume();
    // A change the resumed replica would apply if it still thought it led.
    set_chat_replicas(&cluster, 3);
    cluster
        .eventually("replica-c applies the change", WAIT, || {
            let d = d.clone();
            async move { (chat_replicas(&d, "demo").await == Some(3)).then_some(()) }
        })
        .await;
    tokio::time::sleep(LEASE).await;
    let stale = writes_by(&cluster, mark, stalled_name);
    assert!(stale.is_empty(), "the resumed replica wrote: {stale:?}");
    assert!(!is_leader(&leader), "the resumed replica stands by");
    assert!(
        writes_by(&cluster, mark, "replica-c")
            .iter()
            .any(|w| w.resource == "deployments")
    );
}

/// Changes the demo stack's spec (its chat replicas), as a user would.
fn set_chat_replicas(cluster: &Cluster, replicas: u32) {
    let patch = format!(r#"{{"spec": {{"chat": {{"replicas": {replicas}}}}}}}"#);
    cluster.kubectl(&[
        "patch",
        "vcs",
        "demo",
        "-n",
        STACKS_NAMESPACE,
        "--type=merge",
        "-p",
        &patch,
    ]);
}
