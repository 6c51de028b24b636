//! The Helm chart: `helm lint`, the values schema, `helm template` with
//! default and non-default values validated by a real API server
//! (server-side dry run: every field of every object), least-privilege RBAC,
//! and a real `helm install` / `helm uninstall`.

mod support;

use serde_json::Value;
use support::repo_root;
use voicechat_e2e::{ControlPlane, Options};

const NAMESPACE: &str = "voicechat-system";

fn chart() -> String {
    repo_root()
        .join("charts/voicechat-operator")
        .display()
        .to_string()
}

/// Values that change every optional part (ServiceMonitor aside: its kind
/// needs the Prometheus Operator's CRDs; it is checked offline below).
const CUSTOM_VALUES: &[&str] = &[
    "--set=image.repository=registry.example/voicechat/operator",
    "--set=image.tag=1.2.3",
    "--set=serviceAccount.name=vcs-operator",
    "--set=operator.images.chat=registry.example/chat:1",
    "--set=operator.images.voice=registry.example/voice:1",
    "--set=operator.images.voiceCuda=registry.example/voice-cuda:1",
    "--set=operator.profiles.gpu.nodeSelector.gpu-type=a100",
    "--set=operator.profiles.gpu.runtimeClassName=nvidia",
    "--set=operator.profiles.gpu.tolerations[0].key=amd.com/gpu",
    "--set=operator.profiles.gpu.tolerations[0].operator=Exists",
    "--set=operator.profiles.cpu.nodeSelector.pool=voice",
    "--set=operator.gpuResource=amd.com/gpu",
    "--set=podAnnotations.team=voice",
    "--set=nodeSelector.kubernetes\\.io/os=linux",
    "--set=sampleStack.enabled=true",
    "--set=sampleStack.name=demo",
];

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .filter_map(|doc| serde_yaml_ng::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

#[test]
fn the_chart_lints_renders_validates_and_installs() {
    if !support::available("the_chart_lints_renders_validates_and_installs") {
        return;
    }
    let plane = ControlPlane::start(Options {
        controller_manager: false,
    })
    .expect("start the control plane");
    let chart = chart();

    let lint = plane
        .helm(&["lint", "--strict", &chart])
        .expect("helm lint --strict");
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    // The values schema and the templates refuse what the chart cannot
    // honour: two replicas without a Lease, durations that cannot work.
    for (bad, why) in [
        ("--set=replicas=11", "replicas"),
        (
            "--set=leaderElection.enabled=false",
            "needs leaderElection.enabled",
        ),
        (
            "--set=leaderElection.renewDeadline=15",
            "renewDeadline must be shorter than leaseDuration",
        ),
        (
            "--set=leaderElection.retryPeriod=10",
            "retryPeriod must be shorter than renewDeadline",
        ),
        ("--set=imag.tag=x", "imag"),
        ("--set=metrics.service.port=0", "port"),
        ("--set=watchNamespaces={Apps}", "watchNamespaces"),
        (
            "--set=operator.reconcileConcurrency=0",
            "reconcileConcurrency",
        ),
        (
            "--set=operator.profiles.gpu.tolerations[0].operator=Maybe",
            "tolerations",
        ),
    ] {
        let err = plane
            .helm(&["template", "r", &chart, bad])
            .expect_err(&format!("the schema refuses {bad}"));
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }

    // Server-side validation needs the CRD (for the sample stack) and the
    // namespace to exist.
    support::install_crd(&plane);
    plane
        .kubectl(&["create", "namespace", NAMESPACE])
        .expect("namespace");

    for (name, extra) in [
        ("default values", &[][..]),
        ("custom values", CUSTOM_VALUES),
        (
            "one replica without leader election",
            &["--set=replicas=1", "--set=leaderElection.enabled=false"][..],
        ),
    ] {
        let mut args = vec![
            "template",
            "voicechat-operator",
            &chart,
            "--namespace",
            NAMESPACE,
        ];
        args.extend(extra.iter().copied());
        let rendered = plane
            .helm(&args)
            .unwrap_or_else(|e| panic!("{name}: helm template: {e}"));
        let out = plane
            .kubectl_with_stdin(
                &[
                    "apply",
                    "--dry-run=server",
                    "--validate=strict",
                    "-n",
                    NAMESPACE,
                    "-f",
                    "-",
                ],
                Some(&rendered),
            )
            .unwrap_or_else(|e| panic!("{name}: the API server refuses the rendered chart: {e}"));
        assert!(
            out.contains("deployment.apps/voicechat-operator"),
            "{name}: {out}"
        );

        let docs = documents(&rendered);
        for role in docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        {
            for rule in role["rules"].as_array().expect("rules") {
                for field in ["apiGroups", "resources", "verbs"] {
                    let values = rule[field].as_array().expect("rule lists");
                    assert!(
                        !values.iter().any(|v| v == "*"),
                        "{name}: no wildcard in RBAC: {rule}"
                    );
                }
            }
        }
        let deployment = docs
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("an operator Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        // Two replicas elect a leader, roll one at a time, and a drain
        // takes one at a time; one replica without a Lease is recreated.
        let has = |kind: &str| docs.iter().any(|d| d["kind"] == kind);
        let env_of = |var: &str| {
            pod["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == var)
                .map(|e| e["value"].clone())
        };
        if name == "one replica without leader election" {
            assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
            assert!(!has("PodDisruptionBudget") && !has("Role"), "{name}");
            assert_eq!(env_of("LEADER_ELECT"), None);
        } else {
            assert_eq!(deployment["spec"]["replicas"], 2, "{name}");
            assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
            assert_eq!(
                deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
                0
            );
            let pdb = docs
                .iter()
                .find(|d| d["kind"] == "PodDisruptionBudget")
                .expect("a PodDisruptionBudget");
            assert_eq!(pdb["spec"]["maxUnavailable"], 1);
            assert_eq!(env_of("LEADER_ELECT"), Some(Value::from("true")));
            assert_eq!(
                env_of("LEASE_NAME"),
                Some(Value::from("voicechat-operator"))
            );
            let lease_role = docs
                .iter()
                .find(|d| d["kind"] == "Role")
                .expect("the Lease's Role");
            assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
            assert_eq!(
                lease_role["rules"][1]["resourceNames"][0],
                "voicechat-operator"
            );
        }
        let container = &pod["containers"][0];
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"], false,
            "{name}"
        );
        if name == "custom values" {
            let env: Vec<String> = container["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    format!(
                        "{}={}",
                        e["name"].as_str().unwrap_or(""),
                        e["value"].as_str().unwrap_or("")
                    )
                })
                .collect();
            for want in [
                "GPU_NODE_SELECTOR=gpu-type=a100",
                "GPU_RUNTIME_CLASS=nvidia",
                "GPU_RESOURCE=amd.com/gpu",
                "VOICE_CUDA_IMAGE=registry.example/voice-cuda:1",
                "CPU_NODE_SELECTOR=pool=voice",
                "CPU_TOLERATIONS=[]",
                "RECONCILE_CONCURRENCY=8",
            ] {
                assert!(env.iter().any(|e| e == want), "{want} in {env:?}");
            }
            // The operator reads the tolerations as Kubernetes JSON.
            let gpu_tolerations = env
                .iter()
                .find_map(|e| e.strip_prefix("GPU_TOLERATIONS="))
                .expect("GPU_TOLERATIONS");
            let parsed: Vec<k8s_openapi::api::core::v1::Toleration> =
                serde_json::from_str(gpu_tolerations).expect("tolerations JSON");
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].key.as_deref(), Some("amd.com/gpu"));
            assert_eq!(parsed[0].operator.as_deref(), Some("Exists"));
            assert_eq!(
                container["image"],
                "registry.example/voicechat/operator:1.2.3"
            );
            assert_eq!(pod["serviceAccountName"], "vcs-operator");
            assert!(
                docs.iter().any(|d| d["kind"] == "VoiceChatStack"),
                "the sample stack"
            );
        }
    }

    // The ServiceMonitor, rendered offline.
    let rendered = plane
        .helm(&[
            "template",
            "r",
            &chart,
            "--set=metrics.serviceMonitor.enabled=true",
        ])
        .expect("render with a ServiceMonitor");
    let monitor = documents(&rendered)
        .into_iter()
        .find(|d| d["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // watchNamespaces: a Role and RoleBinding in each listed namespace,
    // nothing cluster-wide, and the operator told which.
    let rendered = plane
        .helm(&[
            "template",
            "r",
            &chart,
            "--namespace",
            NAMESPACE,
            "--set=watchNamespaces={apps,team-b}",
        ])
        .expect("render with watchNamespaces");
    let docs = documents(&rendered);
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding"),
        "nothing cluster-wide with watchNamespaces"
    );
    for ns in ["apps", "team-b"] {
        let role = docs
            .iter()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("a Role in {ns}"));
        let rules = role["rules"].as_array().expect("rules");
        assert!(
            rules.iter().any(|r| r["resources"][0] == "voicechatstacks"),
            "{ns}: the stacks"
        );
        assert!(
            !rules.iter().any(|r| r["resources"][0] == "nodes"),
            "{ns}: no Nodes in a Role"
        );
        assert!(
            docs.iter()
                .any(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns),
            "a RoleBinding in {ns}"
        );
    }
    let env = &docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "WATCH_NAMESPACES" && e["value"] == "apps,team-b"),
        "{env}"
    );

    // A real install and uninstall, with the sample stack.
    plane
        .helm(&[
            "install",
            "voicechat-operator",
            &chart,
            "--namespace",
            NAMESPACE,
            "--set=sampleStack.enabled=true",
            "--wait=false",
        ])
        .expect("helm install");
    let stack = plane
        .kubectl(&[
            "get",
            "vcs",
            "voicechat",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.chat.replicas}",
        ])
        .expect("the sample stack exists");
    assert_eq!(stack, "1");
    let status = plane
        .helm(&["status", "voicechat-operator", "-n", NAMESPACE])
        .expect("helm status");
    assert!(status.contains("STATUS: deployed"), "{status}");
    plane
        .helm(&["uninstall", "voicechat-operator", "-n", NAMESPACE])
        .expect("helm uninstall");
    assert!(
        plane
            .kubectl(&["get", "clusterrole", "voicechat-operator"])
            .is_err(),
        "uninstall removes the ClusterRole"
    );
}
