"""Fixtures of the cluster tests: the operator installed with Helm, a stack
in a Pod Security "restricted" namespace, its endpoints and tokens.

The tests drive a cluster that runs pods, whichever way it was made
(e2e/cluster/up.sh here, kind elsewhere): kubectl and helm from PATH, the
cluster from KUBECONFIG. Inputs, from the environment:
  VOICECHAT_MODEL_MIRROR the models mirror pods reach (e2e/cluster/up.sh
                        prints it): the chart's models.mirror, so the
                        operator's loader fetches the catalog's defaults
                        (a Piper voice, the LLM) from it.
  VCS_MODELS_NODE_PATH  the voice models folder (piper/, whisper/, vosk/) as
                        a path on the node: a hostPath PersistentVolume is
                        made of it, as a cluster admin would fill a PVC (the
                        stack whose models are missing uses it).
  VCS_WHISPER_FILES     where those Whisper files are on this machine, when
                        the node is another (kind); else the folder above.
  VCS_WHISPER_MODEL     the Whisper file in that folder (ggml-tiny.en-q8_0.bin),
                        also on the mirror under voicechat/whisper/: the
                        stack lists it by URL and sha256 (it is this
                        project's conversion, not whisper.cpp's bytes).
  VOICECHAT_MODEL_REGISTRY  an OCI registry pods reach (host:port, plain
                        HTTP), and VCS_REGISTRY_DOCKER_CONFIG a Docker config
                        folder with its credentials: the models-from-images
                        tests push to it with crane (skipped without them).
  VCS_DUMP_DIR          where a failing test's cluster state is written.
  VCS_AUDIT_LOG         the API server's audit log of writes, where readable
                        (e2e/cluster/up.sh prints it): the operator-restart
                        test then counts the operator's writes there too.
"""

from __future__ import annotations

import base64
import json
import hashlib
import os
import pathlib
import subprocess

import pytest

from kube import (
    OPERATOR_NAMESPACE,
    OPERATOR_RELEASE,
    STACK,
    STACK_NAMESPACE,
    dump_cluster_state,
    kubectl,
    kubectl_json,
)

REPO = pathlib.Path(__file__).resolve().parents[3]

def mirror() -> str:
    return os.environ["VOICECHAT_MODEL_MIRROR"].rstrip("/")


def whisper_source(name: str | None = None) -> dict:
    """A Whisper model of this machine as a `models` entry: URL on the
    mirror, sha256; the stack's own (VCS_WHISPER_MODEL) by default."""
    name = name or os.environ.get("VCS_WHISPER_MODEL", "ggml-tiny.en-q8_0.bin")
    folder = os.environ.get("VCS_WHISPER_FILES") or os.path.join(os.environ["VCS_MODELS_NODE_PATH"], "whisper")
    data = (pathlib.Path(folder) / name).read_bytes()
    return {"url": f"{mirror()}/voicechat/whisper/{name}", "sha256": hashlib.sha256(data).hexdigest(),
            "path": f"whisper/{name}"}


def pytest_runtest_makereport(item, call):
    """On any failure, print events, pods, logs and stacks (and keep them)."""
    if (call.excinfo is not None and call.when in ("setup", "call")
            and not call.excinfo.errisinstance(pytest.skip.Exception)):
        dump_dir = pathlib.Path(os.environ.get("VCS_DUMP_DIR", "target/cluster-e2e"))
        path = dump_cluster_state(dump_dir / item.name)
        print(f"\ncluster state after the failure of {item.name}: {path}")


@pytest.fixture(scope="session")
def node_ip() -> str:
    nodes = kubectl_json("get", "nodes")["items"]
    assert nodes, "the cluster has no node"
    addresses = nodes[0]["status"]["addresses"]
    return next(a["address"] for a in addresses if a["type"] == "InternalIP")


@pytest.fixture(scope="session")
def operator() -> dict:
    """`helm install` of the chart with its default values (two replicas,
    leader election); the leading operator pod."""
    kubectl("delete", "namespace", STACK_NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    helm = os.environ.get("HELM_BIN", "helm")
    subprocess.run(
        [helm, "upgrade", "--install", OPERATOR_RELEASE, str(REPO / "charts/voicechat-operator"),
         "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "5m",
         "--set", f"models.mirror={mirror()}"],
        check=True, timeout=330, stdin=subprocess.DEVNULL,
    )
    pods = kubectl_json("-n", OPERATOR_NAMESPACE, "get", "pods",
                        "-l", "app.kubernetes.io/name=voicechat-operator")["items"]
    assert len(pods) == 2, f"expected two operator pods, found {len(pods)}"
    from kube import lease_holder, wait_until

    leader = wait_until("an operator replica to take the Lease", 60, lease_holder)
    return next(p for p in pods if p["metadata"]["name"] == leader)


@pytest.fixture(scope="session")
def stack(operator) -> dict:
    """`spec: {}` plus the in-cluster Ollama, the Whisper model by URL,
    Wyoming and NodePorts, in a restricted namespace: the operator's loader fetched the
    models from the mirror (the Piper voice and the LLM are the catalog's
    defaults), Ollama made its model from the cache; Ready because the
    kubelet's probes passed."""
    models = os.environ["VCS_MODELS_NODE_PATH"]
    # A volume left by a kept run (VCS_KEEP=1) still names the old claim.
    kubectl("delete", "pv", f"{STACK_NAMESPACE}-models", "--ignore-not-found", "--wait=true", timeout=120)
    kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {STACK_NAMESPACE}
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {STACK_NAMESPACE}-models}}
spec:
  capacity: {{storage: 2Gi}}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {{namespace: {STACK_NAMESPACE}, name: voice-models}}
  hostPath: {{path: {models}, type: Directory}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: voice-models, namespace: {STACK_NAMESPACE}}}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: {STACK_NAMESPACE}-models
  resources: {{requests: {{storage: 2Gi}}}}
---
apiVersion: voicechat.dev/v1alpha1
kind: VoiceChatStack
metadata: {{name: {STACK}, namespace: {STACK_NAMESPACE}}}
spec:
  serviceType: NodePort
  models: [{json.dumps(whisper_source())}]
  ollama: {{enabled: true}}
  redis: {{persistenceSize: 1Gi}}
  voice: {{wyoming: {{enabled: true}}}}
""")
    kubectl("-n", STACK_NAMESPACE, "wait", "--for=condition=Ready", f"vcs/{STACK}", "--timeout=600s",
            timeout=620)
    kubectl("-n", STACK_NAMESPACE, "wait", "--for=condition=Ready", "pod", "-l",
            f"app.kubernetes.io/instance={STACK},app.kubernetes.io/component=ollama", "--timeout=300s",
            timeout=320)
    return kubectl_json("-n", STACK_NAMESPACE, "get", "vcs", STACK)


@pytest.fixture(scope="session")
def endpoints(stack, node_ip) -> dict:
    """Base URLs of chat and voice through their NodePorts (kube-proxy)."""
    urls = {}
    for part in ("chat", "voice"):
        svc = kubectl_json("-n", STACK_NAMESPACE, "get", "service", f"{STACK}-{part}")
        port = svc["spec"]["ports"][0]["nodePort"]
        urls[part] = f"http://{node_ip}:{port}"
    return urls


@pytest.fixture(scope="session")
def jwt_secret(stack) -> bytes:
    secret = kubectl_json("-n", STACK_NAMESPACE, "get", "secret", f"{STACK}-jwt")
    return base64.b64decode(secret["data"]["secret"])


@pytest.fixture(scope="session")
def token(jwt_secret):
    from clients import mint_token

    return lambda user="cluster-e2e": mint_token(jwt_secret, user)


def pytest_sessionfinish(session, exitstatus):
    # Keep the cluster clean for the next run (the stack's namespace goes
    # with its PVCs; the pool volumes are recycled by up.sh).
    if os.environ.get("VCS_KEEP", "") != "1":
        kubectl("delete", "namespace", STACK_NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "pv", f"{STACK_NAMESPACE}-models", "--ignore-not-found", "--wait=false", check=False)
