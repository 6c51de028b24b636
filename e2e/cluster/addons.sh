#!/usr/bin/env bash
# The cluster's add-ons, applied by up.sh once the node is Ready:
#   - CoreDNS (kube-system/coredns, Service kube-dns at $DNS_IP), serving
#     cluster.local only: names outside the cluster fail fast instead of
#     leaving the machine;
#   - the default StorageClass `voicechat-hostpath`: a pool of PersistentVolumes,
#     each a folder under $CLUSTER_DIR/volumes, bound when a pod first uses
#     its claim (released ones are wiped and offered again on the next run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
VOLUME_POOL="${VOLUME_POOL:-12}"

kc apply --server-side --field-manager=voicechat-e2e -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            ttl 5
        }
        cache 5
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: coredns
          image: $COREDNS_IMAGE
          imagePullPolicy: Never
          args: ["-conf", "/etc/coredns/Corefile"]
          ports: [{name: dns, containerPort: 1053, protocol: UDP}, {name: dns-tcp, containerPort: 1053, protocol: TCP}]
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
          livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
          readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
          resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: voicechat-hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF

pvs=""
for i in $(seq -w 1 "$VOLUME_POOL"); do
  dir="$CLUSTER_DIR/volumes/pv-$i"
  mkdir -p "$dir"
  # Any pod user may write (a hostPath volume gets no fsGroup ownership).
  chmod 1777 "$dir"
  pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: voicechat-pool-$i, labels: {voicechat.dev/volume-pool: \"true\"}}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: voicechat-hostpath
  hostPath: {path: $dir, type: Directory}
"
done
kc apply --server-side --field-manager=voicechat-e2e -f - >/dev/null <<<"$pvs"
log "add-ons applied: CoreDNS, StorageClass voicechat-hostpath ($VOLUME_POOL volumes)"

# Volumes whose claim was deleted: wipe and offer again (the pool's
# reclaim policy is Retain, since no deleter plugin exists for hostPath).
for pv in $(kc get pv -l voicechat.dev/volume-pool=true -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
  dir="$(kc get pv "$pv" -o jsonpath='{.spec.hostPath.path}')"
  case "$dir" in "$CLUSTER_DIR"/volumes/pv-*) find "$dir" -mindepth 1 -delete ;; *) continue ;; esac
  kc patch pv "$pv" --type=json -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null
  log "volume $pv recycled"
done
