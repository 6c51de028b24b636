//! What wakes the reconcile: the stacks themselves (only when their spec
//! changes: the operator's own status writes do not wake them again), the
//! children the operator manages (by its label, through the watches that
//! fill the [`ChildCache`]), and the Nodes, for `Auto` stacks only when
//! the set of GPU nodes changes.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::runtime::controller::Config;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};

use crate::cache::{ChildCache, Scope, StoreOnly};
use crate::crd::{SttProfile, VoiceChatStack};
use crate::profile::{GpuNodeTracker, NodeEvent};

/// How long a stack's trigger waits for more: the watch events of the
/// children one reconcile applied arrive together and start one reconcile,
/// which then sees them all in the cache (without it, each event started
/// one, most seeing a cache that had not caught up yet and re-applying).
const DEBOUNCE: Duration = Duration::from_millis(500);

/// The controller of `scope` with every watch that triggers a reconcile;
/// the cache those watches fill; and the store-only watches, which must be
/// polled while the controller runs.
pub fn controller(
    client: &Client,
    gpu_resource: &str,
    scope: Scope<'_>,
    concurrency: u16,
) -> (Controller<VoiceChatStack>, ChildCache, StoreOnly) {
    let (store, writer) = kube::runtime::reflector::store();
    let stacks = watcher(
        scope.api::<VoiceChatStack>(client),
        watcher::Config::default(),
    )
    .default_backoff()
    // Nothing reads a stack's managed fields or last-applied annotation.
    .modify(|stack| crate::cache::strip_meta(&mut stack.metadata))
    .reflect(writer)
    .touched_objects()
    // A status write changes neither generation nor labels: no reconcile.
    .predicate_filter(
        predicates::generation.combine(predicates::labels),
        Default::default(),
    );
    let (cache, watches) = ChildCache::watch(client, scope);
    let stacks_for_nodes = store.clone();
    let mut controller = Controller::for_stream(stacks, store)
        .with_config(
            Config::default()
                .concurrency(concurrency)
                .debounce(DEBOUNCE),
        )
        .trigger_backoff(NoSharedBackoff)
        .owns_stream(watches.deployments)
        .owns_stream(watches.autoscalers)
        .owns_stream(watches.services)
        .owns_stream(watches.config_maps)
        .owns_stream(watches.secrets)
        .owns_stream(watches.pdbs)
        .owns_stream(watches.network_policies)
        // The models loader: its end makes the voice pods.
        .owns_stream(watches.jobs);
    if let Some(node_events) = watches.nodes {
        let nodes = gpu_node_changes(node_events, gpu_resource.to_owned());
        controller = controller.watches_stream(nodes, move |_node| {
            stacks_for_nodes
                .state()
                .into_iter()
                .filter(|s| s.spec.voice.stt_profile == SttProfile::Auto)
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        });
    }
    (controller, cache, watches.store_only)
}

/// Node events that change which nodes offer GPUs (see
/// [`GpuNodeTracker`]), as a trigger stream.
fn gpu_node_changes(
    events: impl futures_util::Stream<Item = watcher::Result<watcher::Event<Node>>> + Send,
    gpu_resource: String,
) -> impl futures_util::Stream<Item = Result<Node, watcher::Error>> + Send {
    let mut tracker = GpuNodeTracker::default();
    events.filter_map(move |event| {
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
