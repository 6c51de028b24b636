//! The reconcile pipeline: dereference (read what the build needs) →
//! validate and build (pure) → apply → prune → status. Invalid stacks wait
//! for a change instead of retrying in a loop. Each step lives in its own
//! module ([`dereference`], [`crate::build`], [`crate::apply`],
//! [`crate::status`]); this one runs them in order, and [`watches`] says
//! what starts a run.

mod dereference;
mod loader;
mod watches;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};

pub use dereference::generate_secret;

use crate::apply::{self, FIELD_MANAGER};
use crate::build;
use crate::cache::{ChildCache, NotListed, Scope};
use crate::crd::VoiceChatStack;
use crate::metrics::OperatorMetrics;
use crate::pod_reasons::PodReasons;
use crate::settings::OperatorSettings;
use crate::status::models::{LoaderObserved, LoaderState};
use crate::status::{self, Observed, update};

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
    #[error(transparent)]
    Cache(#[from] NotListed),
}

impl ReconcileError {
    /// A failed read of `what`, for `map_err`.
    pub fn read(what: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Read { what, source }
    }

    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "ReadFailed",
            Self::Apply(_) => "ApplyFailed",
            Self::Prune(_) => "PruneFailed",
            Self::Status(_) => "StatusFailed",
            Self::Random(_) => "RandomFailed",
            Self::NoNamespace => "InvalidMetadata",
            Self::Cache(_) => "CacheNotListed",
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

/// What the reconciles of one controller share: the process' context and
/// the caches of the controller's scope.
pub struct ScopeContext {
    pub ctx: Arc<Context>,
    pub cache: ChildCache,
}

fn now() -> Time {
    Time(Timestamp::now())
}

pub async fn reconcile(
    stack: Arc<VoiceChatStack>,
    scoped: Arc<ScopeContext>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let ctx = &scoped.ctx;
    let result = reconcile_inner(&stack, ctx, &scoped.cache).await;
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(ReconcileError::category),
    );
    result
}

async fn reconcile_inner(
    stack: &VoiceChatStack,
    ctx: &Context,
    cache: &ChildCache,
) -> Result<Action, ReconcileError> {
    let namespace = stack.namespace().ok_or(ReconcileError::NoNamespace)?;
    // Decisions come from the cache: it must have listed once.
    cache.ready().await?;
    let client = &ctx.client;
    let stacks: Api<VoiceChatStack> = Api::namespaced(client.clone(), &namespace);
    if stack.spec.paused {
        return Ok(Action::await_change());
    }

    let mut found =
        dereference::dereference(client, cache, &ctx.settings, stack, &namespace).await?;
    // The loader Job of the stack's models plan (an invalid plan is the
    // build's to report).
    let loader = match crate::models::resolve(stack, &ctx.settings, found.facts.profile) {
        Ok(plan) if !plan.is_empty() => {
            let job = build::workloads::loader_job_name(stack, &plan);
            loader::observe(client, cache, &namespace, &job).await?
        }
        _ => LoaderObserved::default(),
    };
    found.facts.models_ready = loader.state == LoaderState::Succeeded;

    // Validate and build (pure).
    let children = match build::build(stack, &ctx.settings, &found.facts) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(stack = %stack.name_any(), error = %e, "invalid stack; waiting for a change");
            ctx.event(stack, EventType::Warning, e.category(), e.to_string())
                .await;
            update::write(&stacks, stack, status::refused(stack, &e, &now())).await?;
            return Ok(Action::await_change());
        }
    };

    // Apply, then prune.
    apply::apply_children(client, cache, &namespace, &children)
        .await
        .map_err(ReconcileError::Apply)?;
    apply::prune_children(client, cache, &namespace, &stack.name_any(), &children)
        .await
        .map_err(ReconcileError::Prune)?;

    // Status from what the cluster reports (as cached: what was just
    // applied shows in the next reconcile, which its watch event starts).
    let cluster = update::observe(cache, &ctx.pod_reasons, &namespace, stack).await;
    let observed = Observed {
        deployments: &cluster.deployments,
        jwt_secret_present: found.jwt_secret_present || children.jwt_secret.is_some(),
        profile: found.facts.profile,
        profile_reason: found.profile_reason,
        pod_reasons: &cluster.pod_reasons,
        models: &children.models,
        loader: &loader,
    };
    let status = status::compute(stack, &observed, &now());
    for (name, message) in new_model_failures(stack.status.as_ref(), &status) {
        ctx.event(
            stack,
            EventType::Warning,
            "ModelLoadFailed",
            format!("{name}: {message}"),
        )
        .await;
    }
    if let Some(event) = update::ready_event(stack.status.as_ref(), &status) {
        ctx.event(stack, event.type_, event.reason, event.note)
            .await;
    }
    let ready = update::ready(Some(&status)) == Some("True");
    update::write(&stacks, stack, status).await?;
    // Children and GPU nodes trigger reconciles; the periodic pass is a
    // safety net. Pods are cached but do not trigger: while a part is
    // unavailable, look again soon, so the reasons in the status follow
    // its pods.
    Ok(Action::requeue(Duration::from_secs(if ready {
        300
    } else {
        15
    })))
}

/// Models that failed, or failed otherwise, since the last status: each
/// gets a Warning Event once.
fn new_model_failures(
    previous: Option<&crate::crd::VoiceChatStackStatus>,
    now: &crate::crd::VoiceChatStackStatus,
) -> Vec<(String, String)> {
    use crate::crd::ModelPhase;
    now.models
        .iter()
        .filter(|m| m.phase == ModelPhase::Failed)
        .filter(|m| {
            !previous.is_some_and(|p| {
                p.models.iter().any(|old| {
                    old.name == m.name
                        && old.phase == ModelPhase::Failed
                        && old.message == m.message
                })
            })
        })
        .map(|m| {
            (
                m.name.clone(),
                m.message.clone().or(m.reason.clone()).unwrap_or_default(),
            )
        })
        .collect()
}

pub fn error_policy(
    stack: Arc<VoiceChatStack>,
    error: &ReconcileError,
    _ctx: Arc<ScopeContext>,
) -> Action {
    tracing::warn!(stack = %stack.name_any(), category = error.category(), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

/// Runs the controller until the process is stopped: one over every
/// namespace, or one per namespace of `WATCH_NAMESPACES`, each with its
/// own caches.
pub async fn run(ctx: Arc<Context>) {
    let run_in = |scope: Scope<'_>| {
        let (controller, cache, store_only) = watches::controller(
            &ctx.client,
            &ctx.settings.gpu_resource,
            scope,
            ctx.settings.reconcile_concurrency,
        );
        let scoped = Arc::new(ScopeContext {
            ctx: ctx.clone(),
            cache,
        });
        let controller = Box::pin(
            controller
                .shutdown_on_signal()
                .run(reconcile, error_policy, scoped)
                .for_each(|result| async move {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "reconcile event");
                    }
                }),
        );
        // The store-only watches run as long as the controller does.
        async move {
            futures_util::future::select(controller, store_only).await;
        }
    };
    if ctx.settings.watch_namespaces.is_empty() {
        run_in(Scope::Cluster).await;
    } else {
        futures_util::future::join_all(
            ctx.settings
                .watch_namespaces
                .iter()
                .map(|ns| run_in(Scope::Namespace(ns))),
        )
        .await;
    }
}

#[cfg(test)]
mod tests;
