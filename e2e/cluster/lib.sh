# Sourced by e2e/cluster/*.sh: where the cluster lives, its addresses, and
# helpers to start, wait for and stop its processes.
#
# One cluster per machine: the kubelet's ports (10248-10259) and paths
# (/var/lib/kubelet, /var/log/pods, /run/netns) are global. Everything the
# scripts make lives under $CLUSTER_DIR, except those global paths, the
# bridge, the kube-proxy/kubelet iptables chains and one sysctl, which
# down.sh removes by name.

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
COREDNS_VERSION=v1.14.2 # the version kubeadm 1.36 deploys
CRICTL_VERSION=v1.36.0
CACHE="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
CLUSTER_DIR="${VOICECHAT_CLUSTER_DIR:-/var/lib/voicechat-cluster}"
RUN="$CLUSTER_DIR/run"
KUBE_BIN="$CACHE/k8s-$K8S_VERSION/bin"
TOOLS_BIN="$CACHE/cluster-tools-$K8S_VERSION/bin"
KUBECONFIG_FILE="$CLUSTER_DIR/admin.kubeconfig"
CONTAINERD_SOCK="$RUN/containerd.sock"

# The node: a bridge of our own; the API server, kubelet and kube-proxy
# listen on its address, so pods reach them and a host server bound there.
BRIDGE=vcs0
NODE_NAME=vcs-node
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
APISERVER_PORT=16443
ETCD_PORT=12379

# What the images are called: the names and tags a default `helm install`
# and `spec: {}` ask for (the chart's image, the operator's defaults for the
# parts it deploys), so nothing needs overriding.
PROJECT_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../Cargo.toml" | head -n1)"
OLLAMA_VERSION="$(sed -n 's/^OLLAMA_VERSION="${OLLAMA_VERSION:-\(.*\)}"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../scripts/fetch-llm.sh")"
CHAT_IMAGE="ghcr.io/voicechatstack/chat:$PROJECT_VERSION"
VOICE_IMAGE="ghcr.io/voicechatstack/voice:$PROJECT_VERSION"
OPERATOR_IMAGE="ghcr.io/voicechatstack/operator:$PROJECT_VERSION"
REDIS_IMAGE="docker.io/library/redis:7.0.15-bookworm"
OLLAMA_IMAGE="docker.io/ollama/ollama:${OLLAMA_VERSION#v}"
PAUSE_IMAGE="registry.k8s.io/pause:3.10"
COREDNS_IMAGE="registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
IMAGES_TAR="$CACHE/cluster-images/images.tar"
# Marks $CLUSTER_DIR as made by up.sh: down.sh removes only such a folder.
CLUSTER_MARKER="$CLUSTER_DIR/.made-by-voicechat-e2e"
# Host settings the node changes (ip_forward; the kubelet sets the others
# for its pods): up.sh saves them, down.sh puts them back.
CHANGED_SYSCTLS="net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
# The pods' cgroups live under this parent (the kubelet's cgroupRoot).
CGROUP_ROOT=voicechat-e2e
# Paths the kubelet, containerd and CNI use whatever their root folders:
# up.sh notes which of them did not exist before, down.sh removes those.
GLOBAL_PATHS="/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd /run/netns /opt/containerd /usr/libexec/kubernetes"

# Creates $CLUSTER_DIR with its marker, or refuses a folder that holds
# something else: down.sh deletes only a marked folder.
claim_cluster_dir() {
  if [ -d "$CLUSTER_DIR" ] && [ ! -f "$CLUSTER_MARKER" ] && [ -n "$(ls -A "$CLUSTER_DIR")" ]; then
    echo "$CLUSTER_DIR exists and was not made by e2e/cluster: set VOICECHAT_CLUSTER_DIR to another folder" >&2
    return 1
  fi
  mkdir -p "$CLUSTER_DIR"
  touch "$CLUSTER_MARKER"
}

export PATH="$TOOLS_BIN:$KUBE_BIN:$PATH"

export t_start="${t_start:-$(date +%s)}"
log() { echo "[$(($(date +%s) - t_start))s] $*" >&2; }

kc() { kubectl --kubeconfig="$KUBECONFIG_FILE" "$@"; }

# start NAME COMMAND...: in its own session (down.sh stops the group),
# output in $RUN/NAME.log, PID in $RUN/pids/NAME.
start() {
  local name="$1"
  shift
  mkdir -p "$RUN/pids"
  setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name"
}

# Alive, not a zombie: an exited process stays one until init reaps it.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)"
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

running() { [ -f "$RUN/pids/$1" ] && alive "$(cat "$RUN/pids/$1")"; }

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds; on time-out,
# print the last lines of the log named in $WAIT_LOG and fail.
wait_for() {
  local what="$1" secs="$2" deadline
  shift 2
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${secs}s waiting for $what"
      [ -n "${WAIT_LOG:-}" ] && [ -f "$RUN/$WAIT_LOG.log" ] && tail -n 30 "$RUN/$WAIT_LOG.log" >&2
      return 1
    fi
    sleep 0.3
  done
  log "ready: $what"
}

# stop NAME [SECONDS]: SIGTERM to the process group, SIGKILL after SECONDS.
stop() {
  local name="$1" secs="${2:-20}" pid i
  [ -f "$RUN/pids/$name" ] || return 0
  pid="$(cat "$RUN/pids/$name")"
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 $((secs * 10))); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      log "killed $name (no exit within ${secs}s)"
    fi
  fi
  rm -f "$RUN/pids/$name"
}
