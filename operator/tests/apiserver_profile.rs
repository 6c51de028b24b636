//! sttProfile Auto against a real API server: a Node with allocatable GPUs
//! (created through the API; no kubelet runs) turns Auto stacks to the GPU
//! profile through the operator's Node watch, and removing it turns them
//! back; explicit profiles do not move.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use support::{Cluster, STACKS_NAMESPACE, stack_yaml};
use voicechat_e2e::Options;
use voicechat_operator::crd::VoiceChatStack;

/// Well under the operator's 5-minute resync: only the Node watch can
/// make these deadlines.
const WAIT: Duration = Duration::from_secs(45);

async fn profile_of(stacks: &Api<VoiceChatStack>, name: &str) -> Option<String> {
    stacks.get(name).await.ok()?.status?.stt_profile
}

/// (GPU limit, has the GPU toleration, image) of a stack's voice pods.
async fn voice_placement(
    deployments: &Api<Deployment>,
    stack: &str,
) -> Option<(Option<String>, bool, String)> {
    let d = deployments.get(&format!("{stack}-voice")).await.ok()?;
    let pod = d.spec?.template.spec?;
    let container = pod.containers.first()?.clone();
    let gpu = container
        .resources
        .and_then(|r| r.limits)
        .and_then(|l| l.get("nvidia.com/gpu").map(|q| q.0.clone()));
    let tolerated = pod
        .tolerations
        .unwrap_or_default()
        .iter()
        .any(|t| t.key.as_deref() == Some("nvidia.com/gpu"));
    Some((gpu, tolerated, container.image.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_node_coming_and_going_moves_auto_stacks() {
    if !support::available("a_gpu_node_coming_and_going_moves_auto_stacks") {
        return;
    }
    let mut cluster = Cluster::start(Options {
        controller_manager: false,
    })
    .await;
    cluster.start_operator();
    let stacks: Api<VoiceChatStack> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), STACKS_NAMESPACE);
    cluster
        .apply_yaml(&stack_yaml("auto", "{}"))
        .expect("an Auto stack");
    cluster
        .apply_yaml(&stack_yaml("pinned", "{voice: {sttProfile: CPU}}"))
        .expect("a CPU stack");

    let profiles = |want: &'static str| {
        let stacks = stacks.clone();
        move || {
            let stacks = stacks.clone();
            async move {
                let auto = profile_of(&stacks, "auto").await?;
                let pinned = profile_of(&stacks, "pinned").await?;
                (auto == want && pinned == "CPU").then_some(())
            }
        }
    };
    cluster
        .eventually("no GPU node: Auto is CPU", WAIT, profiles("CPU"))
        .await;
    // The voice Deployment comes once the stack's models are loaded (the
    // loader Job is finished by the support's stand-in): after the status.
    let d = deployments.clone();
    let (gpu, tolerated, cpu_image) = cluster
        .eventually("the voice Deployment", WAIT, || {
            let d = d.clone();
            async move { voice_placement(&d, "auto").await }
        })
        .await;
    assert_eq!(
        (gpu, tolerated),
        (None, false),
        "CPU voice pods ask for no GPU"
    );

    // A node as a GPU device plugin would leave it.
    cluster
        .plane
        .kubectl_with_stdin(
            &["create", "-f", "-"],
            Some("apiVersion: v1\nkind: Node\nmetadata:\n  name: gpu-1\n"),
        )
        .expect("create a Node");
    cluster.kubectl(&[
        "patch",
        "node",
        "gpu-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"capacity":{"cpu":"8","memory":"32Gi","pods":"110","nvidia.com/gpu":"1"},"allocatable":{"cpu":"8","memory":"32Gi","pods":"110","nvidia.com/gpu":"1"}}}"#,
    ]);
    cluster
        .eventually("a GPU node: Auto becomes GPU", WAIT, profiles("GPU"))
        .await;
    let d = deployments.clone();
    let (gpu, tolerated, gpu_image) = cluster
        .eventually(
            "the voice Deployment moves to the GPU profile",
            WAIT,
            || {
                let d = d.clone();
                async move { voice_placement(&d, "auto").await.filter(|p| p.0.is_some()) }
            },
        )
        .await;
    assert_eq!(gpu.as_deref(), Some("1"));
    assert!(tolerated, "GPU voice pods tolerate the GPU taint");
    assert_ne!(gpu_image, cpu_image, "the GPU profile runs the CUDA image");
    let (pinned_gpu, _, _) = voice_placement(&deployments, "pinned").await.unwrap();
    assert_eq!(pinned_gpu, None, "an explicit CPU stack does not move");

    cluster.kubectl(&["delete", "node", "gpu-1"]);
    cluster
        .eventually(
            "the GPU node gone: Auto is CPU again",
            WAIT,
            profiles("CPU"),
        )
        .await;
    let d = deployments.clone();
    cluster
        .eventually("the voice Deployment drops the GPU limit", WAIT, || {
            let d = d.clone();
            async move {
                voice_placement(&d, "auto")
                    .await
                    .filter(|p| p.0.is_none() && !p.1)
                    .map(|_| ())
            }
        })
        .await;
}
