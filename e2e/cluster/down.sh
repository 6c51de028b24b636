#!/usr/bin/env bash
# Removes everything e2e/cluster/up.sh made, also after a killed run: the
# pods (and their network namespaces, veths, mounts, cgroups), the shims,
# every process of the cluster, the bridge, the iptables chains kube-proxy
# and the kubelet added (KUBE-*; other rules are left alone), the sysctls
# it and the kubelet changed, the global paths they made, and $CLUSTER_DIR.
# The build caches under ~/.cache stay. Safe to run when nothing is up.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
[ "$(id -u)" = 0 ] || { echo "down.sh needs root" >&2; exit 1; }
started=$(date +%s)

# The kubelet first, so that it restarts nothing; then every pod sandbox
# through the CRI (containerd runs CNI DEL: veths and addresses released).
stop mirror
stop registry
stop kubelet
if [ -S "$CONTAINERD_SOCK" ] && running containerd; then
  crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 20s rmp --all --force >/dev/null 2>&1 &&
    log "pod sandboxes removed"
fi
stop containerd
# What a killed containerd leaves: shims of our socket, and the containers'
# processes (found by their cgroups).
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null); do
  kill -KILL "$pid" 2>/dev/null && log "killed shim $pid"
done
for procs in $(find /sys/fs/cgroup -path "*/$CGROUP_ROOT/*" -name cgroup.procs 2>/dev/null); do
  for pid in $(cat "$procs"); do kill -KILL "$pid" 2>/dev/null; done
done

for name in kube-proxy scheduler controller-manager; do stop "$name"; done
# kube-apiserver takes 15-20 s to stop with watches open; its data goes
# with the state folder, so it need not stop cleanly.
stop apiserver 3
stop etcd
stop dockerd 30
# Anything else still running from the state folder (a run killed before
# it wrote a PID file).
for pid in $(pgrep -f "$RUN/" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done

# iptables: kube-proxy's and the kubelet's chains, and the rules that jump
# to them; nothing else.
for save in iptables-save ip6tables-save iptables-legacy-save ip6tables-legacy-save; do
  command -v "$save" >/dev/null || continue
  restore="${save%-save}-restore"
  rules="$("$save" 2>/dev/null)"
  if grep -q 'KUBE-' <<<"$rules"; then
    grep -v -e 'KUBE-' <<<"$rules" | "$restore" && log "removed KUBE-* chains ($save)"
  fi
done

# Mounts: pods' volumes and containerd's snapshots under the state folder,
# and the network namespaces CNI made for our pods.
findmnt -rn -o TARGET 2>/dev/null | grep -E "^$CLUSTER_DIR/|^/run/netns/cni-|^/var/run/netns/cni-" | sort -r |
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
rm -f /run/netns/cni-* 2>/dev/null
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$veth" 2>/dev/null
  done
  ip link del "$BRIDGE" && log "bridge $BRIDGE deleted"
fi
# The sysctls as they were before up.sh (ip_forward; the kubelet's own).
if [ -f "$CLUSTER_DIR/sysctls.before" ]; then
  while IFS= read -r setting; do sysctl -qw "$setting"; done <"$CLUSTER_DIR/sysctls.before"
fi

# The pods' cgroups (the kubelet's cgroupRoot), deepest first.
for root in /sys/fs/cgroup/*/"$CGROUP_ROOT" /sys/fs/cgroup/"$CGROUP_ROOT"; do
  [ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null
done

# The global paths that did not exist before up.sh.
if [ -f "$CLUSTER_DIR/global-paths.made" ]; then
  while IFS= read -r path; do
    # /run/containerd also holds the sockets of any other containerd.
    [ "$path" = /run/containerd ] && pgrep -x containerd >/dev/null && continue
    case " $GLOBAL_PATHS " in *" $path "*) rm -rf "$path" ;; esac
  done <"$CLUSTER_DIR/global-paths.made"
fi
# Only a folder up.sh or images.sh made (it holds their marker).
if [ -f "$CLUSTER_MARKER" ]; then
  rm -rf "$CLUSTER_DIR"
elif [ -e "$CLUSTER_DIR" ]; then
  log "$CLUSTER_DIR has no $(basename "$CLUSTER_MARKER"): left as it is"
fi
log "cluster down in $(($(date +%s) - started)) s"
