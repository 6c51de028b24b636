//! The stack's status, computed from what was applied and observed (a pure
//! function): one condition per part, `Ready` when all are, and
//! `lastTransitionTime` kept unless a condition's status changes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::build::meta::Part;
use crate::crd::{Endpoints, RedisMode, VoiceChatStack, VoiceChatStackStatus};
use voicechat_common::stt_profile::SttProfile;

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
    let name = |part: Part| {
        format!(
            "{}-{}",
            stack.metadata.name.as_deref().unwrap_or_default(),
            part.as_str()
        )
    };
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
    verdicts.push(deployment_verdict(
        "VoiceReady",
        &name(Part::Voice),
        get(Part::Voice),
        why(Part::Voice),
    ));
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
        .map(|v| {
            let status = if v.ok { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|c| c.type_ == v.type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: v.type_.into(),
                status: status.into(),
                reason: v.reason,
                message: v.message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect();
    let namespace = stack.metadata.namespace.as_deref().unwrap_or("default");
    VoiceChatStackStatus {
        observed_generation: generation,
        conditions,
        stt_profile: Some(observed.profile.label().into()),
        stt_profile_reason: Some(observed.profile_reason.clone()),
        endpoints: Some(Endpoints {
            chat: format!(
                "http://{}.{namespace}.svc:{}",
                name(Part::Chat),
                crate::build::workloads::CHAT_PORT
            ),
            voice: format!(
                "http://{}.{namespace}.svc:{}",
                name(Part::Voice),
                crate::build::workloads::VOICE_PORT
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;

    fn time(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn deployment(available: bool) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                ready_replicas: Some(i32::from(available)),
                conditions: Some(vec![DeploymentCondition {
                    type_: "Available".into(),
                    status: if available { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn stack() -> VoiceChatStack {
        fixtures::stack().at_generation(3)
    }

    static NO_REASONS: BTreeMap<String, String> = BTreeMap::new();

    fn observed(deployments: &BTreeMap<String, Deployment>) -> Observed<'_> {
        Observed {
            deployments,
            jwt_secret_present: true,
            profile: SttProfile::Cpu,
            profile_reason: "Auto: no GPU".into(),
            pod_reasons: &NO_REASONS,
        }
    }

    fn condition<'a>(s: &'a VoiceChatStackStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_only_when_every_part_is_available() {
        let mut d = BTreeMap::from([
            ("demo-chat".to_owned(), deployment(true)),
            ("demo-voice".to_owned(), deployment(false)),
            ("demo-redis".to_owned(), deployment(true)),
        ]);
        let s = compute(&stack(), &observed(&d), &time(100));
        assert_eq!(s.conditions[0].type_, "Ready");
        assert_eq!(condition(&s, "Ready").status, "False");
        assert!(condition(&s, "Ready").message.contains("VoiceReady"));
        assert_eq!(condition(&s, "ChatReady").status, "True");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(condition(&s, "Ready").observed_generation, Some(3));
        assert_eq!(s.stt_profile.as_deref(), Some("CPU"));
        assert_eq!(
            s.endpoints.as_ref().unwrap().chat,
            "http://demo-chat.apps.svc:8007"
        );
        d.insert("demo-voice".into(), deployment(true));
        let s = compute(&stack(), &observed(&d), &time(100));
        assert_eq!(condition(&s, "Ready").status, "True");
    }

    #[test]
    fn transition_time_moves_only_on_change() {
        let d = BTreeMap::from([
            ("demo-chat".to_owned(), deployment(true)),
            ("demo-voice".to_owned(), deployment(true)),
            ("demo-redis".to_owned(), deployment(true)),
        ]);
        let mut s = stack();
        s.status = Some(compute(&s, &observed(&d), &time(100)));
        let again = compute(&s, &observed(&d), &time(200));
        assert_eq!(
            condition(&again, "Ready").last_transition_time,
            time(100),
            "unchanged: time kept"
        );
        assert_eq!(
            again,
            compute(&s, &observed(&d), &time(300)),
            "a steady state computes the same status"
        );
        let mut broken = d.clone();
        broken.insert("demo-chat".into(), deployment(false));
        let changed = compute(&s, &observed(&broken), &time(200));
        assert_eq!(
            condition(&changed, "ChatReady").last_transition_time,
            time(200)
        );
        assert_eq!(
            condition(&changed, "VoiceReady").last_transition_time,
            time(100)
        );
    }

    #[test]
    fn an_unavailable_part_says_why_its_pods_are_not_ready() {
        let d = BTreeMap::from([
            ("demo-chat".to_owned(), deployment(true)),
            ("demo-voice".to_owned(), deployment(false)),
            ("demo-redis".to_owned(), deployment(true)),
        ]);
        let reasons = BTreeMap::from([(
            "demo-voice".to_owned(),
            "pod demo-voice-1: /readyz answers 503: no speech-to-text engine loaded".to_owned(),
        )]);
        let o = Observed {
            pod_reasons: &reasons,
            ..observed(&d)
        };
        let s = compute(&stack(), &o, &time(1));
        let voice = condition(&s, "VoiceReady");
        assert_eq!(voice.status, "False");
        assert!(
            voice.message.ends_with(
                "; pod demo-voice-1: /readyz answers 503: no speech-to-text engine loaded"
            ),
            "{}",
            voice.message
        );
        assert!(!condition(&s, "ChatReady").message.contains("pod"));
    }

    #[test]
    fn missing_children_and_secret_are_named() {
        let d = BTreeMap::new();
        let mut o = observed(&d);
        o.jwt_secret_present = false;
        let s = compute(&stack(), &o, &time(1));
        assert_eq!(condition(&s, "SecretReady").reason, "Missing");
        assert_eq!(condition(&s, "ChatReady").reason, "NotCreated");
        assert_eq!(condition(&s, "RedisReady").status, "False");
    }
}
