#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster that runs pods, on this
# machine, offline, and loads the project's images into it:
#
#   eval "$(e2e/cluster/up.sh)"    # sets KUBECONFIG, a PATH with kubectl and helm, VCS_AUDIT_LOG
#   e2e/cluster/down.sh            # removes everything it made
#
# Control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler. Node: containerd, runc and the CNI plugins from Debian,
# kubelet and kube-proxy (iptables mode), CoreDNS as a Deployment, a default
# StorageClass backed by host folders. Kubernetes binaries and helm come
# from e2e/build-k8s.sh, CoreDNS, crictl and pause from build-tools.sh, the
# images from images.sh: all cached under ~/.cache keyed by version.
#
# Idempotent: a cluster that is up and healthy is left as it is; a broken
# or half-made one (a killed run) is torn down first. State lives under
# $CLUSTER_DIR (default /var/lib/voicechat-cluster). Needs root.
#
# The node's address is $NODE_IP on the bridge $BRIDGE: the API server,
# kubelet and kube-proxy's NodePorts listen there, so pods reach the API
# server (the operator runs as a pod) and a server on the host bound there.
# Three things this machine needs that a usual node does not (see
# ../shared/ENVIRONMENT.md): the kubelet accepts cgroup v1; containerd does
# not ask for negative OOM scores (no CAP_SYS_RESOURCE); the API server
# dials the kubelet by IP.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
cd "$here/../.."
[ "$(id -u)" = 0 ] || { echo "up.sh needs root (containerd, kubelet, iptables)" >&2; exit 1; }

# The kubelet evicts pods and taints the node (DiskPressure) when the disk
# runs low, which the tests would only show as pods that never start: say
# it here instead, in one line, before anything is built or started.
MIN_FREE_GIB="${VOICECHAT_CLUSTER_MIN_FREE_GIB:-8}"
disk="$CLUSTER_DIR"
while [ ! -e "$disk" ]; do disk="$(dirname "$disk")"; done
free_gib=$(($(df -Pk "$disk" | awk 'NR==2 {print $4}') / 1024 / 1024))
if [ "$free_gib" -lt "$MIN_FREE_GIB" ]; then
  echo "up.sh: only $free_gib GiB free on the disk of $CLUSTER_DIR; the cluster needs $MIN_FREE_GIB (VOICECHAT_CLUSTER_MIN_FREE_GIB). Free some (cargo build folders: target/) and run it again." >&2
  exit 1
fi

print_env() {
  echo "export VOICECHAT_MODEL_MIRROR='http://$NODE_IP:$MIRROR_PORT'"
  echo "export VOICECHAT_MODEL_REGISTRY='$NODE_IP:$REGISTRY_PORT'"
  echo "export VCS_REGISTRY_DOCKER_CONFIG='$REGISTRY_DIR/docker'"
  echo "export KUBECONFIG='$KUBECONFIG_FILE'"
  echo "export VCS_AUDIT_LOG='$RUN/audit.log'"
  echo "export PATH='$KUBE_BIN:$(dirname "$HELM_BIN"):$TOOLS_BIN:$VOICECHAT_OCI_TOOLS:'\"\$PATH\""
}

# The models mirror (e2e/cluster/mirror.py) on the node IP, which pods
# reach: every catalog file this machine holds byte for byte, at its
# upstream path, and this project's own Whisper conversions (not
# whisper.cpp's bytes, so not catalog files) under voicechat/whisper/.
MIRROR_PORT="${VCS_MIRROR_PORT:-8090}"
start_mirror() {
  local cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}" root="$CLUSTER_DIR/mirror" f
  rm -rf "$root"
  mkdir -p "$root/voicechat/whisper"
  python3 "$here/mirror.py" populate "$root" common/models-catalog.json \
    "$cache"/models-v1/piper/* "$cache"/llm-*/*.gguf 2>&1 | while read -r line; do log "$line"; done
  for f in "$cache"/models-v1/whisper/ggml-*.bin; do
    [ -e "$f" ] && ln -sf "$f" "$root/voicechat/whisper/$(basename "$f")"
  done
  if ! running mirror; then
    start mirror python3 "$here/mirror.py" serve "$root" "$NODE_IP" "$MIRROR_PORT"
  fi
  WAIT_LOG=mirror wait_for "the models mirror" 20 curl -sf "http://$NODE_IP:$MIRROR_PORT/_mirror/requests"
  log "models mirror on http://$NODE_IP:$MIRROR_PORT"
}

# An OCI registry (CNCF distribution, plain HTTP, htpasswd) on the node IP,
# empty: the tests push model images to it with oras and crane, whose
# Docker config ($REGISTRY_DIR/docker) holds its credentials; pods pull
# from it with a pull secret of the same credentials.
REGISTRY_PORT="${VCS_REGISTRY_PORT:-5000}"
REGISTRY_DIR="$CLUSTER_DIR/registry"
start_registry() {
  local user=voicechat password
  if [ ! -f "$REGISTRY_DIR/docker/config.json" ]; then
    mkdir -p "$REGISTRY_DIR/storage" "$REGISTRY_DIR/docker"
    password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    # bcrypt, the one scheme the registry's htpasswd accepts (libxcrypt's).
    python3 -W ignore -c 'import crypt, sys; print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' \
      "$user" "$password" >"$REGISTRY_DIR/htpasswd"
    cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $REGISTRY_DIR/storage}}
http: {addr: "$NODE_IP:$REGISTRY_PORT"}
auth: {htpasswd: {realm: voicechat-e2e, path: $REGISTRY_DIR/htpasswd}}
EOF
    printf '{"auths":{"%s":{"username":"%s","password":"%s"}}}\n' "$NODE_IP:$REGISTRY_PORT" "$user" "$password" \
      >"$REGISTRY_DIR/docker/config.json"
    chmod 600 "$REGISTRY_DIR/docker/config.json" "$REGISTRY_DIR/htpasswd"
  fi
  if ! running registry; then
    start registry "$VOICECHAT_OCI_TOOLS/registry" serve "$REGISTRY_DIR/config.yml"
  fi
  WAIT_LOG=registry wait_for "the OCI registry" 20 curl -s -o /dev/null "http://$NODE_IP:$REGISTRY_PORT/v2/"
  log "OCI registry on $NODE_IP:$REGISTRY_PORT"
}

healthy() {
  local part
  for part in etcd apiserver controller-manager scheduler containerd kubelet kube-proxy; do
    running "$part" || return 1
  done
  # The images running are the ones just built.
  [ "$(cat "$RUN/images.key" 2>/dev/null)" = "$(cat "$IMAGES_TAR.key" 2>/dev/null)" ] &&
    kc get --raw=/readyz --request-timeout=5s >/dev/null 2>&1 &&
    [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# ---- what the node needs from Debian ----------------------------------------
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ebtables >/dev/null || need+=(ebtables)
command -v ethtool >/dev/null || need+=(ethtool)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Which global paths exist before anything here runs (the image build's
# dockerd makes some of them too): down.sh removes the others.
absent_paths="$(for path in $GLOBAL_PATHS; do [ -e "$path" ] || echo "$path"; done)"

# ---- binaries and images (cached) -------------------------------------------
log "Kubernetes binaries and helm (e2e/build-k8s.sh)"
k8s_env="$(./e2e/build-k8s.sh)"
eval "$k8s_env"
"$here/build-tools.sh"
eval "$(./e2e/build-oci-tools.sh)"
log "images (e2e/cluster/images.sh)"
"$here/images.sh"

if healthy; then
  "$here/addons.sh"
  start_mirror
  start_registry
  log "cluster already up"
  print_env
  exit 0
fi
if [ -n "$(ls "$RUN/pids" 2>/dev/null)" ] || [ -f "$CLUSTER_DIR/sysctls.before" ] ||
  ip link show "$BRIDGE" >/dev/null 2>&1; then
  log "a cluster is up but not healthy, or runs older images: tearing it down first"
  "$here/down.sh"
fi

# ---- certificates and kubeconfig ----------------------------------------------
claim_cluster_dir
mkdir -p "$RUN/pki" "$RUN/pids"
pki="$RUN/pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
openssl req -x509 -nodes -days 7 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj /CN=voicechat-e2e-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -nodes "${ec[@]}" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=serverAuth \
  "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:${SERVICE_CIDR%.0.0/16}.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
  >"$pki/apiserver.ext"
openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 7 \
  -out "$pki/apiserver.crt" -extfile "$pki/apiserver.ext" 2>/dev/null
# The API server's client certificate for the kubelet (logs, exec,
# port-forward): the kubelet trusts only this CA and asks the API server
# whether the caller may (webhook), so pods cannot use its port.
openssl req -new -nodes "${ec[@]}" -keyout "$pki/kubelet-client.key" -out "$pki/kubelet-client.csr" \
  -subj /O=system:masters/CN=kube-apiserver-kubelet-client 2>/dev/null
printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment extendedKeyUsage=clientAuth \
  >"$pki/client.ext"
openssl x509 -req -in "$pki/kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 7 \
  -out "$pki/kubelet-client.crt" -extfile "$pki/client.ext" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$pki/sa.key" 2>/dev/null
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
admin_token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$admin_token,admin,admin,\"system:masters\"" >"$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: voicechat-e2e, cluster: {server: "https://$NODE_IP:$APISERVER_PORT", certificate-authority: $pki/ca.crt}}]
users: [{name: admin, user: {token: $admin_token}}]
contexts: [{name: voicechat-e2e, context: {cluster: voicechat-e2e, user: admin, namespace: default}}]
current-context: voicechat-e2e
EOF
chmod 600 "$KUBECONFIG_FILE"

# ---- the bridge -----------------------------------------------------------------
for key in $CHANGED_SYSCTLS; do
  value="$(sysctl -n "$key" 2>/dev/null)" && echo "$key=$value"
done >"$CLUSTER_DIR/sysctls.before"
echo "$absent_paths" >"$CLUSTER_DIR/global-paths.made"
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
sysctl -qw net.ipv4.ip_forward=1

# ---- control plane --------------------------------------------------------------
printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n    verbs: [create, update, patch, delete, deletecollection]\n  - level: None\n' \
  >"$RUN/audit-policy.yaml"
start etcd etcd --name=voicechat-e2e --data-dir="$RUN/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster="voicechat-e2e=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync --log-level=warn
WAIT_LOG=etcd wait_for etcd 30 sh -c "curl -sf http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'"
start apiserver kube-apiserver --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
  --audit-policy-file="$RUN/audit-policy.yaml" --audit-log-path="$RUN/audit.log" --audit-log-mode=blocking \
  --profiling=false --kubelet-preferred-address-types=InternalIP \
  --kubelet-client-certificate="$pki/kubelet-client.crt" --kubelet-client-key="$pki/kubelet-client.key"
WAIT_LOG=apiserver wait_for kube-apiserver 90 kc get --raw=/readyz --request-timeout=5s
start controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG_FILE" \
  --authentication-kubeconfig="$KUBECONFIG_FILE" --authorization-kubeconfig="$KUBECONFIG_FILE" \
  --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false --use-service-account-credentials=false \
  --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
  --cluster-cidr="$POD_CIDR" --service-cluster-ip-range="$SERVICE_CIDR" \
  --flex-volume-plugin-dir="$RUN/kcm-volume-plugins"
start scheduler kube-scheduler --kubeconfig="$KUBECONFIG_FILE" --authentication-kubeconfig="$KUBECONFIG_FILE" \
  --authorization-kubeconfig="$KUBECONFIG_FILE" --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false

# ---- the node: containerd, images, kubelet, kube-proxy --------------------------
mkdir -p "$RUN/cni/net.d" "$RUN/kubelet"
cat >"$RUN/cni/net.d/10-voicechat.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "voicechat",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$RUN/cni/ipam",
             "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  tolerate_missing_hugepages_controller = true
  # No CAP_SYS_RESOURCE on these machines: a negative oom_score_adj is EPERM
  # and runc fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
start containerd containerd --config "$RUN/containerd.toml"
WAIT_LOG=containerd wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
t0=$(date +%s)
ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$IMAGES_TAR" >/dev/null
cp "$IMAGES_TAR.key" "$RUN/images.key"
log "images imported in $(($(date +%s) - t0)) s"

cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false          # this VM is cgroup v1; 1.35+ refuses it by default
cgroupDriver: cgroupfs       # no systemd here; containerd has SystemdCgroup = false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $pki/ca.crt}}
authorization: {mode: Webhook}
# Everything the pods leave on the host under the state folder.
cgroupRoot: /$CGROUP_ROOT
podLogsDir: $RUN/pod-logs
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: ""               # keep the host's resolver out of pods
failSwapOn: false
maxPods: 40
serializeImagePulls: false
# The disk is shared with the build: evict only when it is really full.
evictionHard: {memory.available: "200Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
# The kubelet wants its cgroupRoot to exist, in every hierarchy (cgroup v1)
# or the unified one (v2); a new cpuset starts with no CPUs or memory nodes.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p "/sys/fs/cgroup/$CGROUP_ROOT"
else
  for hierarchy in /sys/fs/cgroup/*/; do
    [ -f "$hierarchy/cgroup.procs" ] && mkdir -p "$hierarchy$CGROUP_ROOT"
  done
  if [ -d "/sys/fs/cgroup/cpuset/$CGROUP_ROOT" ]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems"
  fi
fi
start kubelet kubelet --config="$RUN/kubelet.yaml" --kubeconfig="$KUBECONFIG_FILE" --root-dir="$RUN/kubelet" \
  --cert-dir="$RUN/kubelet/pki" --volume-plugin-dir="$RUN/kubelet/volume-plugins" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_FILE}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
# Pod to ClusterIP to a pod on the same bridge: without br_netfilter the
# reply would skip the host's conntrack; masquerading sends it back through.
iptables: {localhostNodePorts: false, masqueradeAll: true}   # no route_localnet=1
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}  # leave host sysctls alone
EOF
start kube-proxy kube-proxy --config="$RUN/kube-proxy.yaml"
WAIT_LOG=kubelet wait_for "node $NODE_NAME Ready" 120 sh -c \
  "kubectl --kubeconfig='$KUBECONFIG_FILE' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
WAIT_LOG=kube-proxy wait_for kube-proxy 60 curl -sf http://127.0.0.1:10256/healthz

# ---- cluster add-ons: DNS, storage ------------------------------------------------
mkdir -p "$CLUSTER_DIR/volumes"
"$here/addons.sh"
WAIT_LOG=kubelet wait_for "CoreDNS Ready" 120 kc -n kube-system wait --for=condition=Available deploy/coredns --timeout=2s
start_mirror
start_registry
log "cluster up"
print_env
