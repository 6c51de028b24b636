//! The stack's status, computed from what was applied and observed (a pure
//! function): one condition per part, `Ready` when all are, and
//! `lastTransitionTime` kept unless a condition's status changes. What the
//! status step reads from the cluster and writes is in [`update`].

pub mod models;
pub mod update;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use voicechat_common::stt_profile::SttProfile;

use crate::build::BuildError;
use crate::build::meta::{self, Part};
use crate::build::workloads::{CHAT_PORT, VOICE_PORT};
use crate::crd::{Endpoints, RedisMode, VoiceChatStack, VoiceChatStackStatus};
use crate::models::StackModels;

/// What the status is computed from.
pub struct Observed<'a> {
    /// The stack's Deployments as the API server reports them, by name.
    pub deployments: &'a BTreeMap<String, Deployment>,
    /// Whether the JWT Secret the pods mount exists.
    pub jwt_secret_present: bool,
    pub profile: SttProfile,
    pub profile_reason: String,
    /// Why an unavailable Deployment's pods are not ready, by Deployment
    /// name (see [`crate::pod_reasons`]); appended to that part's message.
    pub pod_reasons: &'a BTreeMap<String, String>,
    /// The stack's models and what its loader reports.
    pub models: &'a StackModels,
    pub loader: &'a models::LoaderObserved,
}

struct Verdict {
    type_: &'static str,
    ok: bool,
    reason: String,
    message: String,
}

/// Whether a Deployment's `Available` condition is true.
pub fn is_available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
        .is_some_and(|c| c.status == "True")
}

/// Availability of a Deployment from its `Available` condition, with why
/// its pods are not ready when that is known.
fn deployment_verdict(
    type_: &'static str,
    name: &str,
    observed: Option<&Deployment>,
    pod_reason: Option<&String>,
) -> Verdict {
    let Some(d) = observed else {
        return Verdict {
            type_,
            ok: false,
            reason: "NotCreated".into(),
            message: format!("Deployment {name} does not exist yet"),
        };
    };
    let available = is_available(d);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if available {
        Verdict {
            type_,
            ok: true,
            reason: "Available".into(),
            message: format!("{ready}/{wanted} replicas ready"),
        }
    } else {
        Verdict {
            type_,
            ok: false,
            reason: "Unavailable".into(),
            message: match pod_reason {
                Some(why) => format!("{ready}/{wanted} replicas ready; {why}"),
                None => format!("{ready}/{wanted} replicas ready"),
            },
        }
    }
}

pub fn compute(
    stack: &VoiceChatStack,
    observed: &Observed<'_>,
    now: &Time,
) -> VoiceChatStackStatus {
    let name = |part: Part| meta::name(stack, part.as_str());
    let get = |part: Part| observed.deployments.get(&name(part));
    let why = |part: Part| observed.pod_reasons.get(&name(part));
    let mut verdicts = vec![Verdict {
        type_: "SecretReady",
        ok: observed.jwt_secret_present,
        reason: if observed.jwt_secret_present {
            "Present"
        } else {
            "Missing"
        }
        .into(),
        message: if observed.jwt_secret_present {
            "the JWT secret exists"
        } else {
            "the JWT secret does not exist"
        }
        .into(),
    }];
    verdicts.push(match stack.spec.redis.mode {
        RedisMode::Managed => deployment_verdict(
            "RedisReady",
            &name(Part::Redis),
            get(Part::Redis),
            why(Part::Redis),
        ),
        RedisMode::External => Verdict {
            type_: "RedisReady",
            ok: true,
            reason: "External".into(),
            message: "an external Redis is used".into(),
        },
    });
    verdicts.push(deployment_verdict(
        "ChatReady",
        &name(Part::Chat),
        get(Part::Chat),
        why(Part::Chat),
    ));
    let (model_statuses, models_ready, models_message) =
        models::models_status(observed.models, observed.loader);
    let mut voice = deployment_verdict(
        "VoiceReady",
        &name(Part::Voice),
        get(Part::Voice),
        why(Part::Voice),
    );
    if !models_ready && observed.models.needs_voice_models() && get(Part::Voice).is_none() {
        voice.reason = "WaitingForModels".into();
        voice.message =
            format!("the voice pods start once their models are loaded: {models_message}");
    }
    verdicts.push(voice);
    if !observed.models.is_empty() {
        let failed = model_statuses
            .iter()
            .any(|m| m.phase == crate::crd::ModelPhase::Failed);
        verdicts.push(Verdict {
            type_: "ModelsReady",
            ok: models_ready,
            reason: if models_ready {
                "Loaded"
            } else if failed {
                "LoadFailed"
            } else {
                "Loading"
            }
            .into(),
            message: models_message,
        });
    }
    let failing: Vec<&str> = verdicts.iter().filter(|v| !v.ok).map(|v| v.type_).collect();
    let all = Verdict {
        type_: "Ready",
        ok: failing.is_empty(),
        reason: if failing.is_empty() {
            "AllPartsReady"
        } else {
            "PartsNotReady"
        }
        .into(),
        message: if failing.is_empty() {
            "chat and voice are available".into()
        } else {
            format!("not ready: {}", failing.join(", "))
        },
    };
    verdicts.insert(0, all);

    let previous = stack
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = stack.metadata.generation;
    let conditions = verdicts
        .into_iter()
        .map(|v| condition(previous, v, generation, now))
        .collect();
    let namespace = stack.metadata.namespace.as_deref().unwrap_or("default");
    VoiceChatStackStatus {
        observed_generation: generation,
        conditions,
        stt_profile: Some(observed.profile.label().into()),
        stt_profile_reason: Some(observed.profile_reason.clone()),
        endpoints: Some(Endpoints {
            chat: format!("http://{}.{namespace}.svc:{}", name(Part::Chat), CHAT_PORT),
            voice: format!(
                "http://{}.{namespace}.svc:{}",
                name(Part::Voice),
                VOICE_PORT
            ),
        }),
        models: model_statuses,
    }
}

/// The status of a stack the build refused: not Ready, with the reason;
/// the parts' conditions stay as they were.
pub fn refused(stack: &VoiceChatStack, error: &BuildError, now: &Time) -> VoiceChatStackStatus {
    let mut status = stack.status.clone().unwrap_or_default();
    let ready = condition(
        &status.conditions,
        Verdict {
            type_: "Ready",
            ok: false,
            reason: error.category().into(),
            message: error.to_string(),
        },
        stack.metadata.generation,
        now,
    );
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.insert(0, ready);
    status.observed_generation = stack.metadata.generation;
    status
}

/// A verdict as a condition. Its `lastTransitionTime` is the previous
/// condition's of the same type while the status stays the same, `now`
/// when it changes (a new reason or message is no transition).
fn condition(
    previous: &[Condition],
    verdict: Verdict,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if verdict.ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == verdict.type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: verdict.type_.into(),
        status: status.into(),
        reason: verdict.reason,
        message: verdict.message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

#[cfg(test)]
mod tests;
