//! Scale benchmark against a real API server: SCALE_STACKS (default 1000)
//! VoiceChatStacks, then the operator (release build, the chart's RBAC)
//! started on them. Prints the time until every stack is reconciled, the
//! operator's peak RSS, the write requests of a quiet period, and the time,
//! requests (reads and writes, from the audit log) and peak RSS of a full
//! resync (an operator restart) over a steady state.
//!
//!   eval "$(e2e/build-k8s.sh)"
//!   cargo bench -p voicechat-operator --bench scale
//!
//! No kube-controller-manager runs (3,000 pending pods would measure it,
//! not the operator).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::ListParams;
use support::{Cluster, STACKS_NAMESPACE, stack_yaml};
use voicechat_e2e::Options;
use voicechat_operator::crd::VoiceChatStack;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stacks whose status has caught up with their generation.
async fn reconciled(stacks: &Api<VoiceChatStack>) -> usize {
    let Ok(list) = stacks.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|s| {
            s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation
                && s.metadata.generation.is_some()
        })
        .count()
}

async fn wait_all(
    cluster: &Cluster,
    stacks: &Api<VoiceChatStack>,
    n: usize,
    what: &str,
) -> Duration {
    let started = Instant::now();
    let s = stacks.clone();
    cluster
        .eventually(what, Duration::from_secs(1800), || {
            let s = s.clone();
            async move { (reconciled(&s).await >= n).then_some(()) }
        })
        .await;
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Err(reason) = voicechat_e2e::Assets::available() {
        println!("scale benchmark skipped: {reason} (run e2e/build-k8s.sh and eval its output)");
        return;
    }
    let n = usize::try_from(env_number("SCALE_STACKS", 1000)).unwrap_or(1000);
    let quiet = Duration::from_secs(env_number("SCALE_QUIET_SECONDS", 60));
    let mut cluster = Cluster::start(Options {
        controller_manager: false,
    })
    .await;
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);

    let created = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
        let yaml: String = chunk
            .iter()
            .map(|i| {
                format!(
                    "---\n{}",
                    stack_yaml(&format!("s{i:04}"), "{voice: {sttProfile: CPU}}")
                )
            })
            .collect();
        cluster
            .plane
            .kubectl_with_stdin(&["create", "-f", "-"], Some(&yaml))
            .expect("create stacks");
    }
    println!(
        "created {n} VoiceChatStacks in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    let mark = cluster.plane.audit().mark();
    cluster.start_operator();
    let first = wait_all(&cluster, &stacks, n, "every stack reconciled").await;
    let writes = cluster.operator_writes_since(mark);
    let children = cluster
        .kubectl(&[
            "get",
            "deployments,services,configmaps,secrets,networkpolicies",
            "-n",
            STACKS_NAMESPACE,
            "--no-headers",
        ])
        .lines()
        .count();
    println!(
        "all {n} stacks reconciled in {:.1} s ({:.1} stacks/s), {children} children",
        first.as_secs_f64(),
        n as f64 / first.as_secs_f64()
    );
    println!(
        "operator reconciles so far: {}, {} write requests ({:.1} per stack), peak RSS {:.1} MiB",
        cluster.operator().reconciles(),
        writes.len(),
        writes.len() as f64 / n as f64,
        cluster.operator().peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );

    let mark = cluster.plane.audit().mark();
    tokio::time::sleep(quiet).await;
    let writes = cluster.operator_writes_since(mark);
    println!(
        "write requests in a {} s quiet period: {}, RSS at its end {:.1} MiB",
        quiet.as_secs(),
        writes.len(),
        cluster.operator().rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    for w in writes.iter().take(10) {
        println!("  {w}");
    }

    // A full resync over a steady state: the restarted operator
    // reconciles every stack again.
    cluster.stop_operator();
    let mark = cluster.plane.audit().mark();
    cluster.start_operator();
    let started = Instant::now();
    let s = n as u64;
    cluster
        .eventually(
            "the restarted operator reconciles every stack",
            Duration::from_secs(1800),
            || {
                let done = cluster.operator().reconciles() >= s;
                async move { done.then_some(()) }
            },
        )
        .await;
    let resync = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let requests = cluster.operator_requests_since(mark);
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| voicechat_e2e::audit::WRITE_VERBS.contains(&r.verb.as_str()))
        .collect();
    let count = |verb: &str| requests.iter().filter(|r| r.verb == verb).count();
    println!(
        "full resync of {n} stacks after a restart: {:.1} s, {} requests ({:.2} per stack: {} get, {} list, {} watch, {} writes), peak RSS {:.1} MiB",
        resync.as_secs_f64(),
        requests.len(),
        requests.len() as f64 / n as f64,
        count("get"),
        count("list"),
        count("watch"),
        writes.len(),
        cluster.operator().peak_rss_kib().unwrap_or(0) as f64 / 1024.0
    );
    for w in writes.iter().take(10) {
        println!("  {w}");
    }
    cluster.stop_operator();
}
