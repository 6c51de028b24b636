//! The operator binary against a real API server (etcd, kube-apiserver,
//! kube-controller-manager built by e2e/build-k8s.sh), installed with the
//! Helm chart and running under the chart's RBAC. Skipped with a printed
//! reason when the control plane is not built (the test script builds it).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use support::{Cluster, STACKS_NAMESPACE, stack_yaml};
use voicechat_e2e::Options;
use voicechat_operator::crd::VoiceChatStack;

const WAIT: Duration = Duration::from_secs(60);

fn children_selector(stack: &str) -> String {
    format!("app.kubernetes.io/instance={stack},app.kubernetes.io/managed-by=voicechat-operator")
}

/// kind/name of every labelled child of `stack`.
fn children(cluster: &Cluster, stack: &str) -> BTreeSet<String> {
    let out = cluster.kubectl(&[
        "get",
        "deployments,services,configmaps,secrets,serviceaccounts,persistentvolumeclaims,networkpolicies,poddisruptionbudgets",
        "-n",
        STACKS_NAMESPACE,
        "-l",
        &children_selector(stack),
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).expect("kubectl json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["kind"].as_str().unwrap_or("?"),
                i["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_lives_its_whole_life_against_a_real_api_server() {
    if !support::available("a_stack_lives_its_whole_life_against_a_real_api_server") {
        return;
    }
    let mut cluster = Cluster::start(Options::default()).await;
    cluster.start_operator();
    let client = cluster.client.clone();
    let stacks: Api<VoiceChatStack> = Api::namespaced(client.clone(), STACKS_NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), STACKS_NAMESPACE);
    let services: Api<Service> = Api::namespaced(client.clone(), STACKS_NAMESPACE);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), STACKS_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), STACKS_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), STACKS_NAMESPACE);

    // --- spec: {} gives every child, owned and labelled ---
    cluster
        .apply_yaml(&stack_yaml("demo", "{}"))
        .expect("create the stack");
    let expected: BTreeSet<String> = [
        "Deployment/demo-chat",
        "Deployment/demo-voice",
        "Deployment/demo-redis",
        "Service/demo-chat",
        "Service/demo-voice",
        "Service/demo-redis",
        "ConfigMap/demo-chat-config",
        "ConfigMap/demo-voice-config",
        "Secret/demo-jwt",
        "ServiceAccount/demo-pods",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let found = cluster
        .eventually("every child of spec: {} exists", WAIT, || {
            let found = children(&cluster, "demo");
            let done = expected.is_subset(&found);
            async move { done.then_some(found) }
        })
        .await;
    assert!(
        found.iter().any(|c| c.starts_with("NetworkPolicy/")),
        "NetworkPolicies guard Redis: {found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|c| c.contains("ollama") || c.starts_with("PodDisruptionBudget/")),
        "no Ollama and no PDB for one replica: {found:?}"
    );
    let stack = stacks.get("demo").await.expect("read the stack");
    let uid = stack.uid().expect("uid");
    let chat = deployments.get("demo-chat").await.expect("chat Deployment");
    let owner = &chat.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("VoiceChatStack", uid.as_str(), Some(true))
    );
    let pod_spec = chat.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod_spec.containers[0];
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&container.liveness_probe).as_deref(), Some("/livez"));
    assert_eq!(path(&container.readiness_probe).as_deref(), Some("/readyz"));
    let security = container
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        pod_spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let voice = deployments
        .get("demo-voice")
        .await
        .expect("voice Deployment");
    let voice_container = &voice
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert!(
        voice_container.startup_probe.is_some(),
        "voice loads models behind a startup probe"
    );
    let jwt = |s: &Secret| {
        s.data
            .as_ref()
            .and_then(|d| d.get(voicechat_operator::build::JWT_KEY))
            .map(|v| v.0.clone())
    };
    let first_secret =
        jwt(&secrets.get("demo-jwt").await.expect("JWT Secret")).expect("a JWT secret value");
    assert!(first_secret.len() >= 32, "at least 32 bytes");

    // --- status: not Ready until the Deployments are Available ---
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

    // --- steady state: a reconcile that changes nothing writes nothing ---
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

    // --- operator restart: a full resync, still zero writes, same secret ---
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

    // --- drift: an edited child is put back, a deleted one recreated ---
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

    // --- a spec change: children follow, the config checksum rolls pods ---
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
    let found = children(&cluster, "demo");
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

    // --- delete the stack: the garbage collector removes every child ---
    stacks
        .delete("demo", &DeleteParams::foreground())
        .await
        .expect("delete the stack");
    cluster
        .eventually(
            "every child is garbage-collected",
            Duration::from_secs(90),
            || {
                let left: BTreeSet<String> = children(&cluster, "demo")
                    .into_iter()
                    .filter(|c| !c.starts_with("PersistentVolumeClaim/"))
                    .collect();
                async move { left.is_empty().then_some(()) }
            },
        )
        .await;
    let status = cluster.stop_operator();
    assert!(status.contains("exit status: 0"), "{status}");
}
