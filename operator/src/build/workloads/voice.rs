//! The voice service: its ConfigMap (speech-to-text profile, Whisper
//! model, engines) and its Deployment, scheduled by the resolved profile.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerPort, PersistentVolumeClaimVolumeSource, ResourceRequirements, Service,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use voicechat_common::stt_profile::SttProfile;

use super::models::{cache_volume, file_mount};
use super::service_pod::{ServicePod, common_config, secret_inputs, service_deployment};
use super::{NamedPort, VOICE_PORT, WYOMING_PORT, default_resources, service_with_ports};
use crate::build::meta::{Part, child_meta, name};
use crate::build::pods::{http_probe, scratch_volume};
use crate::crd::VoiceChatStack;
use crate::models::{StackModels, catalog_whisper_file};
use crate::settings::OperatorSettings;

pub fn voice_config(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    profile: SttProfile,
    models: &StackModels,
) -> ConfigMap {
    let voice = &stack.spec.voice;
    let mut data = BTreeMap::new();
    common_config(stack, &mut data);
    data.insert("VOICE_PORT".into(), VOICE_PORT.to_string());
    let wyoming = if voice.wyoming.enabled {
        WYOMING_PORT
    } else {
        0
    };
    data.insert("WYOMING_PORT".into(), wyoming.to_string());
    data.insert("VOICE_MODELS_DIR".into(), "/models".into());
    let profile_settings = settings.profile(profile);
    data.insert("STT_PROFILE".into(), profile.as_str().into());
    // The loaded Whisper model; with the stack's own PVC the named file,
    // else the file of the profile's default.
    let whisper = models
        .whisper_file_name()
        .map(str::to_owned)
        .or_else(|| voice.whisper_model.clone())
        .or_else(|| catalog_whisper_file(&profile_settings.whisper_model));
    if let Some(file) = whisper {
        data.insert("WHISPER_MODEL".into(), file);
    }
    if profile == SttProfile::Cpu {
        data.insert(
            "STT_THREADS".into(),
            threads_from_cpu_limit(voice.resources.as_ref()).to_string(),
        );
    }
    if !voice.openai_voices.is_empty() {
        use voicechat_common::openai_voices::{OpenAiVoices, VARIABLE};
        data.insert(VARIABLE.into(), OpenAiVoices::to_env(&voice.openai_voices));
    }
    // Unset lists leave the service's defaults (every engine).
    if let Some(engines) = &voice.engines {
        if let Some(tts) = &engines.tts {
            data.insert("VOICE_TTS_ENGINES".into(), engine_names(tts));
        }
        if let Some(stt) = &engines.stt {
            data.insert("VOICE_STT_ENGINES".into(), engine_names(stt));
        }
    }
    ConfigMap {
        metadata: child_meta(stack, "voice-config", Some(Part::Voice)),
        data: Some(data),
        ..Default::default()
    }
}

/// `[EspeakNg, Google]` → `espeak-ng,google`: the names the service reads.
fn engine_names<E: serde::Serialize>(engines: &[E]) -> String {
    engines
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whisper threads from the CPU limit (rounded up; 2 without a limit).
pub fn threads_from_cpu_limit(resources: Option<&ResourceRequirements>) -> u32 {
    let limit = resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("cpu"))
        .map(|q| q.0.as_str());
    let cores = match limit {
        Some(q) if q.ends_with('m') => q
            .trim_end_matches('m')
            .parse::<f64>()
            .ok()
            .map(|m| m / 1000.0),
        Some(q) => q.parse::<f64>().ok(),
        None => None,
    };
    cores.map_or(2, |c| c.ceil().max(1.0) as u32)
}

pub fn voice(
    stack: &VoiceChatStack,
    settings: &OperatorSettings,
    profile: SttProfile,
    checksum: &str,
    models: &StackModels,
) -> Deployment {
    let voice = &stack.spec.voice;
    let (mut env_vars, mut volumes, mut mounts) = secret_inputs(stack, false);
    env_vars.extend(voice.extra_env.iter().cloned());
    match &voice.models_pvc {
        Some(claim) => {
            volumes.push(Volume {
                name: "models".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: Some(true),
                }),
                ..Default::default()
            });
            mounts.push(VolumeMount {
                name: "models".into(),
                mount_path: "/models".into(),
                read_only: Some(true),
                ..Default::default()
            });
        }
        // Each file of the plan from the shared cache, and only those: a
        // stack sees its own models, not every stack's.
        None if models.needs_voice_models() => {
            volumes.push(cache_volume(true));
            mounts.extend(models.voice_files().map(file_mount));
        }
        None => {
            let (volume, mount) = scratch_volume("models", "/models");
            volumes.push(volume);
            mounts.push(mount);
        }
    }
    let image = match profile {
        SttProfile::Cpu => voice
            .image
            .clone()
            .unwrap_or_else(|| settings.voice_image.clone()),
        SttProfile::Gpu => voice
            .cuda_image
            .clone()
            .unwrap_or_else(|| settings.voice_cuda_image.clone()),
    };
    let profile_settings = settings.profile(profile);
    let mut resources = voice
        .resources
        .clone()
        .unwrap_or_else(|| default_resources("500m", "512Mi", "4Gi"));
    if profile == SttProfile::Gpu {
        resources
            .limits
            .get_or_insert_with(BTreeMap::new)
            .entry(settings.gpu_resource.clone())
            .or_insert_with(|| Quantity("1".into()));
    }
    let mut deployment = service_deployment(
        stack,
        ServicePod {
            part: Part::Voice,
            image,
            port: VOICE_PORT,
            config: name(stack, "voice-config"),
            checksum,
            env: env_vars,
            volumes,
            mounts,
            resources,
            replicas: voice.autoscaling.is_none().then_some(voice.replicas),
            // Loading models can take minutes: up to 10 before liveness
            // applies. `/startupz` passes once loading has finished, even
            // with models missing: such a pod stays unready, not restarted.
            startup: Some(http_probe("/startupz", VOICE_PORT, 5, 120)),
        },
    );
    if let Some(pod) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
    {
        let selector = voice
            .node_selector
            .clone()
            .unwrap_or_else(|| profile_settings.node_selector.clone());
        pod.node_selector = (!selector.is_empty()).then_some(selector);
        let tolerations = voice
            .tolerations
            .clone()
            .unwrap_or_else(|| profile_settings.tolerations.clone());
        pod.tolerations = (!tolerations.is_empty()).then_some(tolerations);
        pod.runtime_class_name = voice
            .runtime_class_name
            .clone()
            .or_else(|| profile_settings.runtime_class_name.clone());
        if voice.wyoming.enabled
            && let Some(ports) = pod.containers.first_mut().and_then(|c| c.ports.as_mut())
        {
            ports.push(ContainerPort {
                name: Some("wyoming".into()),
                container_port: WYOMING_PORT,
                ..Default::default()
            });
        }
    }
    deployment
}

/// The voice Service: HTTP, and Wyoming when it is on.
pub fn voice_service(stack: &VoiceChatStack) -> Service {
    let mut ports = vec![NamedPort {
        name: "http",
        port: VOICE_PORT,
    }];
    if stack.spec.voice.wyoming.enabled {
        ports.push(NamedPort {
            name: "wyoming",
            port: WYOMING_PORT,
        });
    }
    service_with_ports(stack, Part::Voice, &ports, stack.spec.service_type)
}
