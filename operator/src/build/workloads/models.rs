//! The models cache and its loader: one PVC per namespace, shared by
//! every stack in it (not owned by any, so it outlives them: it is a
//! cache), and per stack a Job that runs the voice image's `models fetch`
//! into it. Pods mount each of their files by subPath at `/models/<path>`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodTemplateSpec, SecretVolumeSource, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use voicechat_common::models::{PERMANENT_FAILURE_EXIT, PlannedFile, pull_secret_auth_file};

use super::{SERVICE_USER, default_resources, env, pod_spec};
use crate::build::meta::{MANAGED_BY, MANAGED_BY_LABEL, Part, child_meta, labels, name};
use crate::build::pods::container_security;
use crate::crd::VoiceChatStack;
use crate::models::StackModels;
use crate::settings::OperatorSettings;

/// The namespace's models cache PVC.
pub const MODELS_CACHE_PVC: &str = "voicechat-models";
/// The volume name of the cache in pods.
const CACHE_VOLUME: &str = "models-cache";
/// Label on loader Jobs: the plan hash they fetch.
pub const PLAN_LABEL: &str = "voicechat.dev/models-plan";
/// The loader's container, named in the Job's pod failure policy.
pub const LOADER_CONTAINER: &str = "fetch";
/// Tries of a loader pod before its Job fails (Kubernetes waits 10 s,
/// 20 s, 40 s, ... between them); the operator then starts a new Job.
const LOADER_BACKOFF_LIMIT: i32 = 4;
/// A loader that has not finished in this long (a pod stuck Pending, a
/// hung download) fails its Job, and the operator starts a new one.
const LOADER_DEADLINE_SECS: i64 = 6 * 3600;

pub fn cache_pvc(stack: &VoiceChatStack, settings: &OperatorSettings) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(MODELS_CACHE_PVC.into()),
            namespace: stack.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (
                    "app.kubernetes.io/name".to_owned(),
                    MODELS_CACHE_PVC.to_owned(),
                ),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![settings.models.access_mode.clone()]),
            storage_class_name: settings.models.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(settings.models.cache_size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn loader_job_name(stack: &VoiceChatStack, plan: &StackModels) -> String {
    name(stack, &format!("models-{}", plan.hash))
}

pub fn loader_job(stack: &VoiceChatStack, settings: &OperatorSettings, plan: &StackModels) -> Job {
    let mut metadata = child_meta(stack, &format!("models-{}", plan.hash), Some(Part::Models));
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(PLAN_LABEL.into(), plan.hash.clone());
    let plan_json = serde_json::to_string(&plan.models).unwrap_or_default();
    let pull_secrets = pull_secret_volumes(stack);
    let container = Container {
        name: LOADER_CONTAINER.into(),
        image: Some(settings.voice_image.clone()),
        args: Some(vec![
            "models".into(),
            "fetch".into(),
            "--dest".into(),
            "/cache".into(),
        ]),
        env: Some(vec![
            env("MODELS_PLAN", plan_json),
            env("MODELS_RESULT_FILE", "/dev/termination-log".into()),
            env("LOG_FORMAT", "text".into()),
        ]),
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: CACHE_VOLUME.into(),
                mount_path: "/cache".into(),
                ..Default::default()
            })
            .chain(
                pull_secrets
                    .iter()
                    .map(|(volume, mount)| mount_of(volume, mount)),
            )
            .collect(),
        ),
        resources: Some(default_resources("100m", "128Mi", "512Mi")),
        security_context: Some(container_security()),
        termination_message_policy: Some("File".into()),
        ..Default::default()
    };
    let volumes = std::iter::once(cache_volume(false))
        .chain(pull_secrets.into_iter().map(|(volume, _)| volume))
        .collect();
    let mut pod = pod_spec(stack, container, volumes, SERVICE_USER);
    pod.restart_policy = Some("Never".into());
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(LOADER_BACKOFF_LIMIT),
            active_deadline_seconds: Some(LOADER_DEADLINE_SECS),
            // A digest mismatch or a 404 fails the same way every time.
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: Some(LOADER_CONTAINER.into()),
                        operator: "In".into(),
                        values: vec![i32::from(PERMANENT_FAILURE_EXIT)],
                    }),
                    on_pod_conditions: None,
                }],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(stack, Some(Part::Models))),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pull secrets of the stack's image models, each a volume with its
/// `.dockerconfigjson` as `config.json`, and the folder the loader reads
/// it from (the plan's `authFile`). Only the loader mounts them: the voice
/// and Ollama pods never see registry credentials.
fn pull_secret_volumes(stack: &VoiceChatStack) -> Vec<(Volume, String)> {
    let names: BTreeSet<&str> = stack
        .spec
        .models
        .iter()
        .filter(|m| m.image.is_some())
        .filter_map(|m| m.pull_secret.as_deref())
        .collect();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let volume = Volume {
                name: format!("pull-secret-{i}"),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(name.to_owned()),
                    items: Some(vec![KeyToPath {
                        key: ".dockerconfigjson".into(),
                        path: "config.json".into(),
                        mode: None,
                    }]),
                    default_mode: Some(0o440),
                    optional: Some(false),
                }),
                ..Default::default()
            };
            let auth_file = pull_secret_auth_file(name);
            let folder = auth_file
                .strip_suffix("/config.json")
                .unwrap_or(&auth_file)
                .to_owned();
            (volume, folder)
        })
        .collect()
}

fn mount_of(volume: &Volume, folder: &str) -> VolumeMount {
    VolumeMount {
        name: volume.name.clone(),
        mount_path: folder.to_owned(),
        read_only: Some(true),
        ..Default::default()
    }
}

pub fn cache_volume(read_only: bool) -> Volume {
    Volume {
        name: CACHE_VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: MODELS_CACHE_PVC.into(),
            read_only: Some(read_only),
        }),
        ..Default::default()
    }
}

/// A read-only mount of one cached file at `/models/<path>`.
pub fn file_mount(file: &PlannedFile) -> VolumeMount {
    VolumeMount {
        name: CACHE_VOLUME.into(),
        mount_path: format!("/models/{}", file.path),
        sub_path: Some(file.cache_path()),
        read_only: Some(true),
        ..Default::default()
    }
}
