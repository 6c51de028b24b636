//! The reconcile pipeline: dereference (read what the build needs) →
//! validate and build (pure) → apply → prune → status. Invalid stacks wait
//! for a change instead of retrying in a loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::apply::{self, FIELD_MANAGER};
use crate::build::meta::Part;
use crate::build::workloads::{CHAT_PORT, VOICE_PORT};
use crate::build::{self, BuildError, Facts, JWT_KEY};
use crate::crd::{SttProfile, VoiceChatStack, VoiceChatStackStatus};
use crate::metrics::OperatorMetrics;
use crate::pod_reasons::PodReasons;
use crate::profile;
use crate::settings::OperatorSettings;
use crate::status::{self, Observed};

/// Errors of one reconcile, each with a stable category (metric label).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading {what}: {source}")]
    Read {
        what: &'static str,
        source: kube::Error,
    },
    #[error("applying children: {0}")]
    Apply(kube::Error),
    #[error("deleting children no longer wanted: {0}")]
    Prune(kube::Error),
    #[error("updating status: {0}")]
    Status(kube::Error),
    #[error("cannot generate a secret: {0}")]
    Random(String),
    #[error("the stack has no namespace")]
    NoNamespace,
}

impl ReconcileError {
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "ReadFailed",
            Self::Apply(_) => "ApplyFailed",
            Self::Prune(_) => "PruneFailed",
            Self::Status(_) => "StatusFailed",
            Self::Random(_) => "RandomFailed",
            Self::NoNamespace => "InvalidMetadata",
        }
    }
}

pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub metrics: OperatorMetrics,
    pub recorder: Recorder,
    pub pod_reasons: PodReasons,
}

impl Context {
    pub fn new(client: Client, settings: OperatorSettings, metrics: OperatorMetrics) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            pod_reasons: PodReasons::new(),
        }
    }

    /// Publishes an Event on the stack; best effort (an Event that cannot
    /// be written is logged, the reconcile goes on).
    async fn event(&self, stack: &VoiceChatStack, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &stack.object_ref(&())).await {
            tracing::debug!(error = %e, reason, "cannot publish an event");
        }
    }
}

fn ready_status(status: Option<&VoiceChatStackStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// A fresh HS256 secret: 48 random bytes, hex (96 characters).
pub fn generate_secret() -> Result<String, ReconcileError> {
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| ReconcileError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The generated JWT secret's current value, so that applying it again
/// changes nothing; a new one only when the Secret does not exist.
async fn jwt_secret_value(
    secrets: &Api<Secret>,
    name: &str,
) -> Result<(String, bool), ReconcileError> {
    let existing = secrets
        .get_opt(name)
        .await
        .map_err(|source| ReconcileError::Read {
            what: "the JWT Secret",
            source,
        })?;
    let value = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(JWT_KEY))
        .and_then(|v| String::from_utf8(v.0.clone()).ok());
    match value {
        Some(v) => Ok((v, true)),
        None => Ok((generate_secret()?, false)),
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Writes the status only when it differs, so a steady state writes nothing.
async fn write_status(
    stacks: &Api<VoiceChatStack>,
    stack: &VoiceChatStack,
    status: VoiceChatStackStatus,
) -> Result<(), ReconcileError> {
    if stack.status.as_ref() == Some(&status) {
        return Ok(());
    }
    stacks
        .patch_status(
            &stack.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "voicechat.dev/v1alpha1",
                "kind": "VoiceChatStack",
                "status": status,
            })),
        )
        .await
        .map(|_| ())
        .map_err(ReconcileError::Status)
}

/// Status of a stack the build refused: not Ready, with the reason.
fn invalid_status(stack: &VoiceChatStack, error: &BuildError) -> VoiceChatStackStatus {
    let mut status = stack.status.clone().unwrap_or_default();
    let since = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason == error.category())
        .map_or_else(now, |c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.insert(
        0,
        Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: error.category().into(),
            message: error.to_string(),
            last_transition_time: since,
            observed_generation: stack.metadata.generation,
        },
    );
    status.observed_generation = stack.metadata.generation;
    status
}

pub async fn reconcile(
    stack: Arc<VoiceChatStack>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_inner(&stack, &ctx).await;
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::category),
    );
    result
}

async fn reconcile_inner(stack: &VoiceChatStack, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = stack.namespace().ok_or(ReconcileError::NoNamespace)?;
    let client = &ctx.client;
    let stacks: Api<VoiceChatStack> = Api::namespaced(client.clone(), &namespace);
    if stack.spec.paused {
        return Ok(Action::await_change());
    }

    // Dereference.
    let nodes = if stack.spec.voice.stt_profile == SttProfile::Auto {
        Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|source| ReconcileError::Read {
                what: "Nodes",
                source,
            })?
            .items
    } else {
        Vec::new()
    };
    let (profile, profile_reason) = profile::resolve(
        stack.spec.voice.stt_profile,
        &nodes,
        &ctx.settings.gpu_resource,
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let (jwt_secret, jwt_secret_present) = match &stack.spec.auth.jwt_secret {
        None => jwt_secret_value(&secrets, &build::meta::name(stack, "jwt")).await?,
        Some(r) => {
            let present = secrets
                .get_opt(&r.name)
                .await
                .map_err(|source| ReconcileError::Read {
                    what: "the stack's JWT Secret",
                    source,
                })?
                .is_some();
            (String::new(), present)
        }
    };

    // Validate and build (pure).
    let children = match build::build(
        stack,
        &ctx.settings,
        &Facts {
            profile,
            jwt_secret,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(stack = %stack.name_any(), error = %e, "invalid stack; waiting for a change");
            ctx.event(stack, EventType::Warning, e.category(), e.to_string())
                .await;
            write_status(&stacks, stack, invalid_status(stack, &e)).await?;
            return Ok(Action::await_change());
        }
    };

    // Apply, then prune.
    apply::apply_children(client, &namespace, &children)
        .await
        .map_err(ReconcileError::Apply)?;
    apply::prune_children(client, &namespace, &stack.name_any(), &children)
        .await
        .map_err(ReconcileError::Prune)?;

    // Status from what the cluster now reports.
    let deployments: BTreeMap<String, Deployment> =
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default().labels(&apply::children_selector(&stack.name_any())))
            .await
            .map_err(|source| ReconcileError::Read {
                what: "Deployments",
                source,
            })?
            .items
            .into_iter()
            .map(|d| (d.name_any(), d))
            .collect();
    let pod_reasons = not_ready_reasons(ctx, &namespace, stack, &deployments).await;
    let observed = Observed {
        deployments: &deployments,
        jwt_secret_present: jwt_secret_present || children.jwt_secret.is_some(),
        profile,
        profile_reason,
        pod_reasons: &pod_reasons,
    };
    let status = status::compute(stack, &observed, &now());
    // An event when Ready flips (not for the first status of a new stack).
    match (
        ready_status(stack.status.as_ref()),
        ready_status(Some(&status)),
    ) {
        (Some("False"), Some("True")) => {
            ctx.event(
                stack,
                EventType::Normal,
                "Ready",
                "all parts are available".into(),
            )
            .await
        }
        (Some("True"), Some("False")) => {
            let message = status
                .conditions
                .first()
                .map(|c| c.message.clone())
                .unwrap_or_default();
            ctx.event(stack, EventType::Warning, "NotReady", message)
                .await;
        }
        _ => {}
    }
    let ready = ready_status(Some(&status)) == Some("True");
    write_status(&stacks, stack, status).await?;
    // Children and GPU nodes are watched; the periodic pass is a safety net.
    // Pods are not watched: while a part is unavailable, look again soon,
    // so that the reasons in the status follow its pods.
    Ok(Action::requeue(Duration::from_secs(if ready {
        300
    } else {
        15
    })))
}

/// Why the pods of each unavailable Deployment are not ready, by
/// Deployment name; nothing is read for available ones.
async fn not_ready_reasons(
    ctx: &Context,
    namespace: &str,
    stack: &VoiceChatStack,
    deployments: &BTreeMap<String, Deployment>,
) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    for part in [Part::Chat, Part::Voice, Part::Redis] {
        let name = build::meta::name(stack, part.as_str());
        let Some(deployment) = deployments.get(&name) else {
            continue;
        };
        if status::is_available(deployment) {
            continue;
        }
        let readiness = match part {
            Part::Chat => Some(("/readyz", CHAT_PORT)),
            Part::Voice => Some(("/readyz", VOICE_PORT)),
            _ => None,
        };
        let selector = build::meta::selector(stack, Some(part))
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        if let Some(why) = ctx
            .pod_reasons
            .not_ready(&ctx.client, namespace, &selector, readiness)
            .await
        {
            reasons.insert(name, why);
        }
    }
    reasons
}

pub fn error_policy(
    stack: Arc<VoiceChatStack>,
    error: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(stack = %stack.name_any(), category = error.category(), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

/// Node events that change which nodes offer GPUs (see
/// [`profile::GpuNodeTracker`]), as a trigger stream.
fn gpu_node_changes(
    client: Client,
    gpu_resource: String,
) -> impl futures_util::Stream<Item = Result<Node, watcher::Error>> + Send {
    use profile::{GpuNodeTracker, NodeEvent};
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
) -> impl futures_util::Stream<Item = Result<kube::api::PartialObjectMeta<K>, watcher::Error>>
+ Send
+ 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::WatchStreamExt;
    // An `Api` of `PartialObjectMeta` makes metadata-only requests.
    watcher(
        Api::<kube::api::PartialObjectMeta<K>>::all(client.clone()),
        config.clone(),
    )
    .default_backoff()
    .touched_objects()
}

/// Runs the controller until the process is stopped.
pub async fn run(ctx: Arc<Context>) {
    use kube::runtime::WatchStreamExt;
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        build::meta::MANAGED_BY
    ));
    let (store, writer) = kube::runtime::reflector::store();
    let stacks = watcher(
        Api::<VoiceChatStack>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let nodes =
        gpu_node_changes(client.clone(), ctx.settings.gpu_resource.clone()).default_backoff();
    let stacks_for_nodes = store.clone();
    Controller::for_stream(stacks, store)
        .trigger_backoff(NoSharedBackoff)
        .owns_stream(child_changes::<Deployment>(&client, &owned))
        .owns_stream(child_changes::<Service>(&client, &owned))
        .owns_stream(child_changes::<ConfigMap>(&client, &owned))
        .owns_stream(child_changes::<Secret>(&client, &owned))
        .owns_stream(child_changes::<PodDisruptionBudget>(&client, &owned))
        .owns_stream(child_changes::<NetworkPolicy>(&client, &owned))
        .watches_stream(nodes, move |_node| {
            stacks_for_nodes
                .state()
                .into_iter()
                .filter(|s| s.spec.voice.stt_profile == SttProfile::Auto)
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
