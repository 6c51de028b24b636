//! The operator's view of the cluster: one reflector store per kind of
//! child it manages (and the pods of its parts, and the Nodes), fed by the
//! watches that also trigger reconciles. A reconcile decides from here
//! what to apply, what to prune and what the status says, so a steady
//! state costs no request at all; the API server is asked only where the
//! cache cannot be trusted to be current (a JWT Secret it has not seen yet,
//! whose value must never be replaced) or holds nothing (a loader's log).
//!
//! Objects are stored without what no reconcile reads: managed fields
//! (a Deployment keeps only which managers own its replicas), the
//! last-applied annotation, Pod specs and most of a Node; and as JSON,
//! decoded when read ([`compact`]).

mod compact;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, NodeStatus, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use compact::CompactStore;

use crate::build::meta::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, managed_selector};

/// How long a reconcile waits for the caches' first listing before it
/// fails (and is retried): a watch that cannot list (RBAC, an API server
/// down) is then named in the error instead of hanging every reconcile.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Objects per list page. A page is decoded whole before its objects are
/// stored, and a restart lists every kind at once: client-go's 500 per
/// page made a resync's peak memory half again the steady state's.
const LIST_PAGE_SIZE: u32 = 100;

/// Where the operator looks: every namespace, or one (`WATCH_NAMESPACES`
/// runs one controller, with its own caches, per listed namespace).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Cluster,
    Namespace(&'a str),
}

impl Scope<'_> {
    pub fn api<K>(self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Self::Cluster => Api::all(client.clone()),
            Self::Namespace(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

/// A kind the cache holds.
pub trait Cached:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    fn store(cache: &ChildCache) -> &CompactStore<Self>;

    /// Drops what no reconcile reads, before the object is stored.
    fn strip(&mut self) {
        strip_meta(self.meta_mut());
    }
}

pub(crate) fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

macro_rules! cached {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl Cached for $kind {
            fn store(cache: &ChildCache) -> &CompactStore<Self> {
                &cache.$field
            }
        })*
    };
}

cached!(
    Service => services,
    ConfigMap => config_maps,
    Secret => secrets,
    PodDisruptionBudget => pdbs,
    NetworkPolicy => network_policies,
    Job => jobs,
    HorizontalPodAutoscaler => autoscalers,
    ServiceAccount => service_accounts,
    PersistentVolumeClaim => pvcs,
);

impl Cached for Deployment {
    fn store(cache: &ChildCache) -> &CompactStore<Self> {
        &cache.deployments
    }

    /// The replicas' owners stay (the hand-over to an autoscaler reads
    /// them); the rest of the managed fields goes.
    fn strip(&mut self) {
        let meta = self.meta_mut();
        if let Some(a) = meta.annotations.as_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        if let Some(fields) = meta.managed_fields.as_mut() {
            for entry in fields.iter_mut() {
                let owns_replicas = entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer(REPLICAS_FIELD).is_some());
                entry.fields_v1 = owns_replicas
                    .then(|| FieldsV1(serde_json::json!({"f:spec": {"f:replicas": {}}})));
            }
            fields.retain(|e| e.fields_v1.is_some());
        }
    }
}

/// A Deployment's replicas in a managed-fields entry.
pub const REPLICAS_FIELD: &str = "/f:spec/f:replicas";

impl Cached for Pod {
    fn store(cache: &ChildCache) -> &CompactStore<Self> {
        &cache.pods
    }

    /// The status says why a pod is not ready; the spec is never read.
    fn strip(&mut self) {
        strip_meta(self.meta_mut());
        self.spec = None;
    }
}

/// What the profile reads of a Node: schedulable, Ready, allocatable.
fn strip_node(node: &mut Node) {
    strip_meta(&mut node.metadata);
    node.metadata.annotations = None;
    node.metadata.labels = None;
    if let Some(spec) = node.spec.as_mut() {
        spec.taints = None;
        spec.pod_cidrs = None;
        spec.pod_cidr = None;
        spec.provider_id = None;
    }
    node.status = node.status.take().map(|s| NodeStatus {
        allocatable: s.allocatable,
        conditions: s
            .conditions
            .map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect()),
        ..Default::default()
    });
}

/// The stores of one scope.
#[derive(Clone)]
pub struct ChildCache {
    pub deployments: CompactStore<Deployment>,
    pub services: CompactStore<Service>,
    pub config_maps: CompactStore<ConfigMap>,
    pub secrets: CompactStore<Secret>,
    pub pdbs: CompactStore<PodDisruptionBudget>,
    pub network_policies: CompactStore<NetworkPolicy>,
    pub jobs: CompactStore<Job>,
    pub autoscalers: CompactStore<HorizontalPodAutoscaler>,
    pub service_accounts: CompactStore<ServiceAccount>,
    pub pvcs: CompactStore<PersistentVolumeClaim>,
    pub pods: CompactStore<Pod>,
    /// Cluster scope only: an operator limited to some namespaces cannot
    /// read Nodes.
    pub nodes: Option<Store<Node>>,
}

/// A watch of one kind: reflected into its store, each change an item.
pub type Changes<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// The Node watch's events, reflected into the Node store.
pub type NodeEvents =
    std::pin::Pin<Box<dyn Stream<Item = watcher::Result<watcher::Event<Node>>> + Send>>;

/// Store-only watches, run as one future beside the controller.
pub type StoreOnly = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The watches that fill a [`ChildCache`]. The trigger kinds go to the
/// controller (a change reconciles the owning stack); the others only keep
/// their store current and must be polled alongside.
pub struct Watches {
    pub deployments: Changes<Deployment>,
    pub services: Changes<Service>,
    pub config_maps: Changes<ConfigMap>,
    pub secrets: Changes<Secret>,
    pub pdbs: Changes<PodDisruptionBudget>,
    pub network_policies: Changes<NetworkPolicy>,
    pub jobs: Changes<Job>,
    pub autoscalers: Changes<HorizontalPodAutoscaler>,
    /// ServiceAccounts, claims and pods: stores only.
    pub store_only: StoreOnly,
    /// Every Node event, for the GPU node tracker (cluster scope).
    pub nodes: Option<NodeEvents>,
}

/// A reflector of the managed objects of kind `K` in `scope`, with its own
/// backoff (see the controller's `NoSharedBackoff`).
fn reflect<K: Cached>(client: &Client, scope: Scope<'_>) -> (CompactStore<K>, Changes<K>) {
    let (store, mut writer) = compact::store();
    let config = watcher::Config::default()
        .labels(&managed_selector())
        .page_size(LIST_PAGE_SIZE);
    let changes = watcher(scope.api::<K>(client), config)
        .default_backoff()
        .modify(K::strip)
        .inspect_ok(move |event| writer.apply(event))
        .touched_objects();
    (store, Box::pin(changes))
}

/// Drains a store-only watch; it ends only with its stream.
async fn keep<K: Send>(changes: Changes<K>) {
    changes.for_each(|_| std::future::ready(())).await;
}

impl ChildCache {
    /// The stores of `scope` and the watches that fill them.
    pub fn watch(client: &Client, scope: Scope<'_>) -> (Self, Watches) {
        let (deployments, deployment_changes) = reflect(client, scope);
        let (services, service_changes) = reflect(client, scope);
        let (config_maps, config_map_changes) = reflect(client, scope);
        let (secrets, secret_changes) = reflect(client, scope);
        let (pdbs, pdb_changes) = reflect(client, scope);
        let (network_policies, network_policy_changes) = reflect(client, scope);
        let (jobs, job_changes) = reflect(client, scope);
        let (autoscalers, autoscaler_changes) = reflect(client, scope);
        let (service_accounts, service_account_changes) = reflect::<ServiceAccount>(client, scope);
        let (pvcs, pvc_changes) = reflect::<PersistentVolumeClaim>(client, scope);
        let (pods, pod_changes) = reflect::<Pod>(client, scope);
        let store_only: StoreOnly = Box::pin(async move {
            futures_util::join!(
                keep(service_account_changes),
                keep(pvc_changes),
                keep(pod_changes)
            );
        });
        let (nodes, node_events) = match scope {
            Scope::Cluster => {
                let (store, writer) = reflector::store();
                let events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
                    .default_backoff()
                    .modify(strip_node)
                    .reflect(writer);
                (Some(store), Some(Box::pin(events) as NodeEvents))
            }
            Scope::Namespace(_) => (None, None),
        };
        let cache = Self {
            deployments,
            services,
            config_maps,
            secrets,
            pdbs,
            network_policies,
            jobs,
            autoscalers,
            service_accounts,
            pvcs,
            pods,
            nodes,
        };
        let watches = Watches {
            deployments: deployment_changes,
            services: service_changes,
            config_maps: config_map_changes,
            secrets: secret_changes,
            pdbs: pdb_changes,
            network_policies: network_policy_changes,
            jobs: job_changes,
            autoscalers: autoscaler_changes,
            store_only,
            nodes: node_events,
        };
        (cache, watches)
    }

    /// Waits until every store has listed once.
    pub async fn ready(&self) -> Result<(), NotListed> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        macro_rules! wait {
            ($($store:expr => $kind:literal),* $(,)?) => {
                $(
                    match tokio::time::timeout_at(deadline, $store.wait_until_ready()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Err(NotListed($kind)),
                        Err(_) => return Err(NotListed($kind)),
                    }
                )*
            };
        }
        wait!(
            self.deployments => "Deployments",
            self.services => "Services",
            self.config_maps => "ConfigMaps",
            self.secrets => "Secrets",
            self.pdbs => "PodDisruptionBudgets",
            self.network_policies => "NetworkPolicies",
            self.jobs => "Jobs",
            self.autoscalers => "HorizontalPodAutoscalers",
            self.service_accounts => "ServiceAccounts",
            self.pvcs => "PersistentVolumeClaims",
            self.pods => "Pods",
        );
        if let Some(nodes) = &self.nodes {
            wait!(nodes => "Nodes");
        }
        Ok(())
    }

    /// The managed object `namespace/name` of kind `K`, as last seen.
    pub fn get<K: Cached>(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        K::store(self).get(namespace, name)
    }

    /// The managed objects of kind `K` in `namespace` carrying every label
    /// of `labels`.
    pub fn matching<K: Cached>(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<Arc<K>> {
        K::store(self).filter(|ns, have| {
            ns == namespace
                && labels
                    .iter()
                    .all(|(k, v)| have.get(k).is_some_and(|h| h == v))
        })
    }

    /// The children of kind `K` of the stack `stack` in `namespace`.
    pub fn children_of<K: Cached>(&self, namespace: &str, stack: &str) -> Vec<Arc<K>> {
        self.matching(namespace, &children_labels(stack))
    }

    /// Every Node, as last seen; empty outside the cluster scope.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes
            .as_ref()
            .map(|s| s.state().iter().map(|n| (**n).clone()).collect())
            .unwrap_or_default()
    }
}

/// The labels every child of `stack` carries (what `children_selector` selects).
fn children_labels(stack: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (INSTANCE_LABEL.to_owned(), stack.to_owned()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
    ])
}

/// A store that has not listed within [`READY_TIMEOUT`].
#[derive(Debug, thiserror::Error)]
#[error("the watch of {0} has not listed yet (is the operator allowed to list and watch them?)")]
pub struct NotListed(pub &'static str);

/// A cache filled from objects at hand rather than watches (unit tests
/// against a fake API server): each object goes to its kind's store.
#[cfg(test)]
pub fn from_objects(objects: &[serde_json::Value]) -> ChildCache {
    fn fill<K: Cached>(
        writer: &mut compact::CompactWriter<K>,
        objects: &[serde_json::Value],
        kind: &str,
    ) {
        writer.apply(&watcher::Event::Init);
        for o in objects.iter().filter(|o| o["kind"] == kind) {
            let mut object: K = serde_json::from_value(o.clone()).expect("a stored object");
            object.strip();
            writer.apply(&watcher::Event::InitApply(object));
        }
        writer.apply(&watcher::Event::InitDone);
    }
    macro_rules! filled {
        ($kind:literal) => {{
            let (store, mut writer) = compact::store();
            fill(&mut writer, objects, $kind);
            store
        }};
    }
    let (nodes, mut node_writer) = reflector::store::<Node>();
    node_writer.apply_watcher_event(&watcher::Event::Init);
    node_writer.apply_watcher_event(&watcher::Event::InitDone);
    ChildCache {
        deployments: filled!("Deployment"),
        services: filled!("Service"),
        config_maps: filled!("ConfigMap"),
        secrets: filled!("Secret"),
        pdbs: filled!("PodDisruptionBudget"),
        network_policies: filled!("NetworkPolicy"),
        jobs: filled!("Job"),
        autoscalers: filled!("HorizontalPodAutoscaler"),
        service_accounts: filled!("ServiceAccount"),
        pvcs: filled!("PersistentVolumeClaim"),
        pods: filled!("Pod"),
        nodes: Some(nodes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::ResourceExt;

    #[test]
    fn a_deployment_keeps_only_who_owns_its_replicas() {
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let mut d = Deployment::default();
        d.metadata.managed_fields = Some(vec![
            entry(
                "voicechat-operator",
                serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}),
            ),
            entry(
                "kubectl",
                serde_json::json!({"f:metadata": {"f:labels": {}}}),
            ),
        ]);
        d.strip();
        let kept = d.metadata.managed_fields.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].manager.as_deref(), Some("voicechat-operator"));
        assert!(
            kept[0]
                .fields_v1
                .as_ref()
                .unwrap()
                .0
                .pointer(REPLICAS_FIELD)
                .is_some()
        );
        assert!(
            kept[0]
                .fields_v1
                .as_ref()
                .unwrap()
                .0
                .pointer("/f:spec/f:template")
                .is_none()
        );
    }

    #[test]
    fn children_are_found_by_stack_namespace_and_labels() {
        let object = |name: &str, ns: &str, stack: &str, managed: bool| {
            let mut labels = serde_json::json!({INSTANCE_LABEL: stack});
            if managed {
                labels[MANAGED_BY_LABEL] = MANAGED_BY.into();
            }
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "labels": labels}})
        };
        let cache = from_objects(&[
            object("a-chat", "apps", "a", true),
            object("a-voice", "apps", "a", true),
            object("ab-chat", "apps", "ab", true),
            object("a-chat", "other", "a", true),
            object("a-mine", "apps", "a", false),
        ]);
        let mut names: Vec<String> = cache
            .children_of::<ConfigMap>("apps", "a")
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["a-chat", "a-voice"]);
        assert!(cache.get::<ConfigMap>("other", "a-chat").is_some());
        assert!(cache.get::<ConfigMap>("other", "a-voice").is_none());
    }
}
