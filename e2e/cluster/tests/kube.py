"""kubectl from the tests: commands, JSON, waiting, port-forwards, the
cluster state dumped on failure."""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import subprocess
import threading
import time
from typing import Callable, Iterator, TypeVar

OPERATOR_NAMESPACE = "voicechat-system"
OPERATOR_RELEASE = "voicechat-operator"
STACK_NAMESPACE = "vcs-e2e"
STACK = "e2e"

T = TypeVar("T")


def kubectl(*args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
    # No input: /dev/null, never the caller's stdin (CI has none).
    stdin = None if input is not None else subprocess.DEVNULL
    result = subprocess.run(["kubectl", *args], input=input, stdin=stdin, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json"))


def wait_until(what: str, seconds: float, probe: Callable[[], T | None], every: float = 1.0) -> T:
    """Calls probe until it returns something truthy; fails naming `what`."""
    deadline = time.monotonic() + seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - kept and reported on time-out
            last_error = e
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def pods(namespace: str, selector: str) -> list[dict]:
    return kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"]


def part_selector(part: str, stack: str = STACK) -> str:
    return f"app.kubernetes.io/instance={stack},app.kubernetes.io/component={part}"


def is_ready(pod: dict) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


@contextlib.contextmanager
def port_forward(namespace: str, target: str, port: int) -> Iterator[int]:
    """kubectl port-forward to a free local port; yields that port."""
    proc = subprocess.Popen(["kubectl", "-n", namespace, "port-forward", target, f"0:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            raise RuntimeError(f"port-forward {target}: {line.strip()} {proc.stderr.read() if proc.stderr else ''}")
        # kubectl writes a line per connection: keep its pipes from filling.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield int(match.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def operator_writes_since(rv_snapshot: dict[str, str]) -> list[str]:
    """The children (and the stack) whose resourceVersion moved."""
    moved = []
    for key, rv in rv_snapshot.items():
        kind, name = key.split("/", 1)
        now = kubectl_json("-n", STACK_NAMESPACE, "get", kind, name)["metadata"]["resourceVersion"]
        if now != rv:
            moved.append(f"{key} ({rv} -> {now})")
    return moved


def audit_writes(path: str, after_line: int, user: str) -> list[str]:
    """Write requests by `user` in the audit log after line `after_line`,
    Events and Leases left out (the operator reports through Events, and its
    leader renews its Lease every few seconds)."""
    writes = []
    with open(path, encoding="utf-8") as log:
        for number, line in enumerate(log):
            if number < after_line or not line.endswith("\n"):
                continue  # before the mark, or still being written
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if event.get("user", {}).get("username") == user and ref.get("resource") not in ("events", "leases"):
                writes.append(f"{event['verb']} {event['requestURI']}")
    return writes


def audit_lines(path: str) -> int:
    with open(path, encoding="utf-8") as log:
        return sum(1 for _ in log)


def owned_resource_versions() -> dict[str, str]:
    """resourceVersion of the stack and of every child it owns."""
    kinds = "deployments,services,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets," \
            "persistentvolumeclaims"
    items = kubectl_json("-n", STACK_NAMESPACE, "get", kinds, "-l", f"app.kubernetes.io/instance={STACK}")["items"]
    snapshot = {f"{i['kind'].lower()}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}
    stack = kubectl_json("-n", STACK_NAMESPACE, "get", "vcs", STACK)
    snapshot[f"voicechatstack/{STACK}"] = stack["metadata"]["resourceVersion"]
    return snapshot


def dump_cluster_state(folder: pathlib.Path) -> pathlib.Path:
    """Stacks, events, pods and every pod's log, into `folder`; the events
    and the not-ready pods are printed too."""
    folder.mkdir(parents=True, exist_ok=True)
    namespaces = (STACK_NAMESPACE, OPERATOR_NAMESPACE, "kube-system")
    (folder / "stacks.yaml").write_text(kubectl("get", "vcs", "-A", "-o", "yaml", check=False))
    events = kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False)
    (folder / "events.txt").write_text(events)
    print("---- events (last 40)\n" + "\n".join(events.splitlines()[-40:]))
    pod_list = kubectl("get", "pods", "-A", "-o", "wide", check=False)
    (folder / "pods.txt").write_text(pod_list)
    print("---- pods\n" + pod_list)
    for ns in namespaces:
        names = kubectl("-n", ns, "get", "pods", "-o", "name", check=False).split()
        for name in names:
            log = kubectl("-n", ns, "logs", name, "--all-containers", "--tail=200", check=False)
            previous = kubectl("-n", ns, "logs", name, "--all-containers", "--previous", "--tail=100", check=False)
            (folder / f"{ns}-{name.split('/')[-1]}.log").write_text(log + ("\n--- previous\n" + previous if previous else ""))
        (folder / f"{ns}-describe.txt").write_text(kubectl("-n", ns, "describe", "pods", check=False))
    return folder


def lease_holder() -> str | None:
    """The operator replica that leads (its Lease's holder)."""
    out = kubectl("-n", OPERATOR_NAMESPACE, "get", "lease", OPERATOR_RELEASE, "-o", "json", check=False)
    try:
        return (json.loads(out).get("spec") or {}).get("holderIdentity")
    except ValueError:
        return None


def operator_metrics(pod: str) -> str:
    """An operator pod's /metrics, through the API server's pod proxy."""
    return kubectl("get", "--raw", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{pod}:8080/proxy/metrics")
