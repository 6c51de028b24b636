//! Unit tests of the status computation.

use super::*;
use crate::fixtures;
use crate::models::StackModels;
use crate::status::models::{LoaderObserved, LoaderState};
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
static NO_MODELS: StackModels = StackModels {
    models: Vec::new(),
    hash: String::new(),
};
static NO_LOADER: LoaderObserved = LoaderObserved {
    state: LoaderState::Absent,
    report: None,
    progress: BTreeMap::new(),
    done: Vec::new(),
};

fn observed(deployments: &BTreeMap<String, Deployment>) -> Observed<'_> {
    Observed {
        deployments,
        jwt_secret_present: true,
        profile: SttProfile::Cpu,
        profile_reason: "Auto: no GPU".into(),
        pod_reasons: &NO_REASONS,
        models: &NO_MODELS,
        loader: &NO_LOADER,
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
        voice
            .message
            .ends_with("; pod demo-voice-1: /readyz answers 503: no speech-to-text engine loaded"),
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

#[test]
fn a_refused_stack_is_not_ready_and_keeps_its_parts_conditions() {
    let all_available: BTreeMap<String, Deployment> = ["chat", "voice", "redis"]
        .iter()
        .map(|part| (format!("demo-{part}"), deployment(true)))
        .collect();
    let ready = compute(&stack(), &observed(&all_available), &time(100));
    let mut s = VoiceChatStack {
        status: Some(ready),
        ..stack()
    };
    let error = BuildError::ExternalRedisWithoutUrl;
    let refused_once = refused(&s, &error, &time(200));
    let ready = &refused_once.conditions[0];
    assert_eq!(
        (
            ready.type_.as_str(),
            ready.status.as_str(),
            ready.reason.as_str()
        ),
        ("Ready", "False", "InvalidRedis")
    );
    assert_eq!(ready.message, error.to_string());
    assert_eq!(ready.last_transition_time, time(200), "True to False moves");
    assert_eq!(
        refused_once
            .conditions
            .iter()
            .filter(|c| c.type_ == "Ready")
            .count(),
        1
    );
    assert_eq!(condition(&refused_once, "ChatReady").status, "True");
    assert_eq!(refused_once.observed_generation, Some(3));
    assert_eq!(refused_once.stt_profile.as_deref(), Some("CPU"));

    s.status = Some(refused_once.clone());
    let still = refused(&s, &error, &time(300));
    assert_eq!(still, refused_once, "refused again: nothing changes");
}

#[test]
fn a_voice_waiting_for_its_models_says_so_and_the_stack_is_not_ready() {
    let d = BTreeMap::from([
        ("demo-chat".to_owned(), deployment(true)),
        ("demo-redis".to_owned(), deployment(true)),
    ]);
    let plan = crate::models::resolve(
        &stack(),
        &crate::settings::OperatorSettings::default(),
        SttProfile::Cpu,
    )
    .unwrap();
    let loader = LoaderObserved {
        state: LoaderState::Running,
        ..Default::default()
    };
    let o = Observed {
        models: &plan,
        loader: &loader,
        ..observed(&d)
    };
    let s = compute(&stack(), &o, &time(1));
    let voice = condition(&s, "VoiceReady");
    assert_eq!(voice.reason, "WaitingForModels");
    assert!(
        voice.message.contains("2 of 2 models loading"),
        "{}",
        voice.message
    );
    assert_eq!(condition(&s, "ModelsReady").status, "False");
    assert_eq!(condition(&s, "Ready").status, "False");
    assert_eq!(s.models.len(), 2);
    assert!(
        s.models
            .iter()
            .all(|m| m.phase == crate::crd::ModelPhase::Pending)
    );
}
