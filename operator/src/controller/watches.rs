//! What wakes the reconcile: the stacks themselves, the children the
//! operator manages (metadata-only watches, by its label), and the Nodes,
//! for `Auto` stacks only when the set of GPU nodes changes.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::build::meta;
use crate::crd::{SttProfile, VoiceChatStack};
use crate::profile::{GpuNodeTracker, NodeEvent};

/// Where the operator looks: every namespace, or one (`WATCH_NAMESPACES`
/// runs one controller per listed namespace).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Cluster,
    Namespace(&'a str),
}

impl Scope<'_> {
    fn api<K>(self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Self::Cluster => Api::all(client.clone()),
            Self::Namespace(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

/// The controller with every watch that triggers a reconcile.
pub fn controller(
    client: &Client,
    gpu_resource: &str,
    scope: Scope<'_>,
) -> Controller<VoiceChatStack> {
    let owned = watcher::Config::default().labels(&meta::managed_selector());
    let (store, writer) = kube::runtime::reflector::store();
    let stacks = watcher(
        scope.api::<VoiceChatStack>(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let stacks_for_nodes = store.clone();
    let controller = Controller::for_stream(stacks, store)
        .trigger_backoff(NoSharedBackoff)
        .owns_stream(child_changes::<Deployment>(client, &owned, scope))
        .owns_stream(child_changes::<HorizontalPodAutoscaler>(
            client, &owned, scope,
        ))
        .owns_stream(child_changes::<Service>(client, &owned, scope))
        .owns_stream(child_changes::<ConfigMap>(client, &owned, scope))
        .owns_stream(child_changes::<Secret>(client, &owned, scope))
        .owns_stream(child_changes::<PodDisruptionBudget>(client, &owned, scope))
        .owns_stream(child_changes::<NetworkPolicy>(client, &owned, scope))
        // The models loader: its end makes the voice pods.
        .owns_stream(child_changes::<Job>(client, &owned, scope));
    // Nodes are cluster-wide: only an operator that watches every
    // namespace may read them.
    let Scope::Cluster = scope else {
        return controller;
    };
    let nodes = gpu_node_changes(client.clone(), gpu_resource.to_owned()).default_backoff();
    controller.watches_stream(nodes, move |_node| {
        stacks_for_nodes
            .state()
            .into_iter()
            .filter(|s| s.spec.voice.stt_profile == SttProfile::Auto)
            .map(|s| ObjectRef::from_obj(&*s))
            .collect::<Vec<_>>()
    })
}

/// Node events that change which nodes offer GPUs (see
/// [`GpuNodeTracker`]), as a trigger stream.
fn gpu_node_changes(
    client: Client,
    gpu_resource: String,
) -> impl futures_util::Stream<Item = Result<Node, watcher::Error>> + Send {
    let mut tracker = GpuNodeTracker::default();
    watcher(Api::<Node>::all(client), watcher::Config::default()).filter_map(move |event| {
        let changed = match &event {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                tracker.observe(NodeEvent::Applied(n), &gpu_resource)
            }
            Ok(watcher::Event::Delete(n)) => tracker.observe(NodeEvent::Deleted(n), &gpu_resource),
            Ok(watcher::Event::Init) => tracker.observe(NodeEvent::RelistStarted, &gpu_resource),
            Ok(watcher::Event::InitDone) => tracker.observe(NodeEvent::RelistDone, &gpu_resource),
            Err(_) => false,
        };
        let item = match event {
            Err(e) => Some(Err(e)),
            Ok(
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) | watcher::Event::Delete(n),
            ) if changed => Some(Ok(n)),
            // The end of a re-list has no node of its own; the trigger
            // needs a named object, and the mapper ignores which it is.
            Ok(watcher::Event::InitDone) if changed => Some(Ok(Node {
                metadata: kube::api::ObjectMeta {
                    name: Some("nodes-relisted".into()),
                    ..Default::default()
                },
                ..Default::default()
            })),
            Ok(_) => None,
        };
        std::future::ready(item)
    })
}

/// No delay: the Controller's own backoff on its merged trigger stream.
/// Each watch has its own backoff (below) instead, because one shared
/// backoff makes every watch wait for the errors of all the others: after
/// an API server restart, where each watch must see its `410 Gone` and
/// re-list, the shared delay grew past a minute (the restart e2e test
/// measured it) while per-watch backoff recovers in seconds.
struct NoSharedBackoff;

impl Iterator for NoSharedBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoSharedBackoff {
    fn reset(&mut self) {}
}

/// A metadata watch of one kind of child, with its own backoff.
fn child_changes<K>(
    client: &Client,
    config: &watcher::Config,
    scope: Scope<'_>,
) -> impl futures_util::Stream<Item = Result<kube::api::PartialObjectMeta<K>, watcher::Error>>
+ Send
+ 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    // An `Api` of `PartialObjectMeta` makes metadata-only requests.
    let api: Api<kube::api::PartialObjectMeta<K>> = match scope {
        Scope::Cluster => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    };
    watcher(api, config.clone())
        .default_backoff()
        .touched_objects()
}
