use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::*;
use crate::crd::{LlmBackend, RedisSpec, SecretKeyRef, VoiceChatStackSpec};
use crate::fixtures;

fn facts(profile: SttProfile) -> Facts {
    Facts {
        profile,
        jwt_secret: "s3cret-value-from-the-cluster".into(),
        models_ready: true,
    }
}

fn built(spec: VoiceChatStackSpec, profile: SttProfile) -> Children {
    build(
        &fixtures::stack().with_spec(spec),
        &OperatorSettings::default(),
        &facts(profile),
    )
    .unwrap()
}

fn deployment<'a>(c: &'a Children, name: &str) -> &'a Deployment {
    c.deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no deployment {name}"))
}

fn config<'a>(c: &'a Children, name: &str) -> &'a BTreeMap<String, String> {
    c.config_maps
        .iter()
        .find(|m| m.metadata.name.as_deref() == Some(name))
        .and_then(|m| m.data.as_ref())
        .unwrap()
}

fn container(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    &d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

#[test]
fn an_empty_spec_builds_the_whole_cpu_stack() {
    let c = built(VoiceChatStackSpec::default(), SttProfile::Cpu);
    let names: Vec<_> = c
        .deployments
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["demo-chat", "demo-voice", "demo-redis"]);
    let strategy = |i: usize| {
        c.deployments[i]
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap()
            .type_
            .clone()
    };
    assert_eq!(strategy(0).as_deref(), Some("RollingUpdate"));
    assert_eq!(
        strategy(2).as_deref(),
        Some("Recreate"),
        "two Redis pods must never share one data folder"
    );
    let services: Vec<_> = c
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(services, ["demo-chat", "demo-voice", "demo-redis"]);
    assert!(c.pdbs.is_empty(), "one replica each: no PDB");
    assert_eq!(
        c.network_policies.len(),
        1,
        "Redis only from chat and voice"
    );

    let secret = c.jwt_secret.as_ref().expect("a generated JWT secret");
    assert_eq!(secret.metadata.name.as_deref(), Some("demo-jwt"));
    assert_eq!(
        secret.data.as_ref().unwrap()[JWT_KEY].0,
        b"s3cret-value-from-the-cluster"
    );

    // Owner, labels, namespace on every child.
    for meta in c
        .deployments
        .iter()
        .map(|d| &d.metadata)
        .chain(c.services.iter().map(|s| &s.metadata))
        .chain(c.config_maps.iter().map(|m| &m.metadata))
    {
        assert_eq!(meta.namespace.as_deref(), Some("apps"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("VoiceChatStack", "1234-uid", Some(true))
        );
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "voicechat-operator");
    }

    let voice = deployment(&c, "demo-voice");
    let vc = container(voice);
    assert_eq!(
        vc.image.as_deref(),
        Some(OperatorSettings::default().voice_image.as_str())
    );
    assert_eq!(
        vc.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/livez")
    );
    assert_eq!(
        vc.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        vc.startup_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|g| g.path.as_deref()),
        Some("/startupz"),
        "model loading gets a startup probe that passes once loading has finished"
    );
    assert!(
        !vc.resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .contains_key("nvidia.com/gpu")
    );
    let vconf = config(&c, "demo-voice-config");
    assert_eq!(vconf["STT_PROFILE"], "cpu");
    assert_eq!(vconf["WHISPER_MODEL"], "ggml-base.en-q8_0.bin");
    assert_eq!(vconf["STT_THREADS"], "2");
    assert_eq!(vconf["REDIS_URL"], "redis://demo-redis:6379");

    let chat = deployment(&c, "demo-chat");
    let cc = container(chat);
    let env: Vec<_> = cc
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert!(
        env.contains(&(
            "JWT_SECRET_FILE",
            Some("/var/run/secrets/voicechat/jwt/secret")
        )),
        "{env:?}"
    );
    assert_eq!(
        config(&c, "demo-chat-config")["LLM_URL"],
        "http://ollama:11434"
    );
    assert!(
        cc.lifecycle
            .as_ref()
            .unwrap()
            .pre_stop
            .as_ref()
            .unwrap()
            .sleep
            .is_some()
    );
}

#[test]
fn every_pod_meets_the_restricted_pod_security_level() {
    let mut spec = VoiceChatStackSpec::default();
    spec.ollama.enabled = true;
    let c = built(spec, SttProfile::Gpu);
    assert_eq!(c.deployments.len(), 4);
    let job_pods = c
        .jobs
        .iter()
        .map(|j| j.spec.as_ref().unwrap().template.spec.as_ref().unwrap());
    let pods: Vec<_> = c
        .deployments
        .iter()
        .map(|d| d.spec.as_ref().unwrap().template.spec.as_ref().unwrap())
        .chain(job_pods)
        .collect();
    assert_eq!(pods.len(), 5, "four Deployments and the models loader");
    for pod in pods {
        assert_eq!(
            pod.security_context.as_ref().unwrap().run_as_non_root,
            Some(true),
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..])
            );
            assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        }
    }
}

#[test]
fn gpu_profile_uses_the_cuda_image_gpu_limit_toleration_and_larger_model() {
    let c = built(VoiceChatStackSpec::default(), SttProfile::Gpu);
    let voice = deployment(&c, "demo-voice");
    let vc = container(voice);
    assert_eq!(
        vc.image.as_deref(),
        Some(OperatorSettings::default().voice_cuda_image.as_str())
    );
    assert_eq!(
        vc.resources.as_ref().unwrap().limits.as_ref().unwrap()["nvidia.com/gpu"],
        Quantity("1".into())
    );
    let pod = voice.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("nvidia.com/gpu")
    );
    let vconf = config(&c, "demo-voice-config");
    assert_eq!(vconf["STT_PROFILE"], "gpu");
    assert_eq!(vconf["WHISPER_MODEL"], "ggml-large-v3-turbo.bin");
    assert!(!vconf.contains_key("STT_THREADS"));
}

#[test]
fn overrides_replicas_threads_scheduling_and_secrets() {
    let mut spec = VoiceChatStackSpec::default();
    spec.chat.replicas = 3;
    spec.voice.replicas = 2;
    spec.voice.resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".into(), Quantity("1500m".into()))])),
        ..Default::default()
    });
    spec.voice.node_selector = Some(BTreeMap::from([("pool".into(), "speech".into())]));
    spec.auth.jwt_secret = Some(SecretKeyRef {
        name: "app-jwt".into(),
        key: "hs256".into(),
    });
    spec.redis = RedisSpec {
        url_secret: Some(SecretKeyRef {
            name: "r".into(),
            key: "url".into(),
        }),
        mode: crate::crd::RedisMode::External,
        ..Default::default()
    };
    spec.chat.llm.backend = LlmBackend::OpenAI;
    spec.chat.llm.url = Some("http://llm.ai:8000/v1".into());
    let c = built(spec, SttProfile::Cpu);
    assert_eq!(c.pdbs.len(), 2);
    assert!(
        c.jwt_secret.is_none(),
        "the stack's own Secret is used, none generated"
    );
    assert!(
        c.deployments
            .iter()
            .all(|d| d.metadata.name.as_deref() != Some("demo-redis")),
        "no managed Redis"
    );
    assert!(c.network_policies.is_empty());
    let vconf = config(&c, "demo-voice-config");
    assert_eq!(vconf["STT_THREADS"], "2");
    assert!(!vconf.contains_key("REDIS_URL"));
    let voice = deployment(&c, "demo-voice");
    let pod = voice.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "speech");
    let env: Vec<_> = container(voice)
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    assert!(env.contains(&(
        "JWT_SECRET_FILE".into(),
        "/var/run/secrets/voicechat/jwt/hs256".into()
    )));
    assert!(env.contains(&(
        "REDIS_URL_FILE".into(),
        "/var/run/secrets/voicechat/redis/url".into()
    )));
    let chat_conf = config(&c, "demo-chat-config");
    assert_eq!(chat_conf["LLM_BACKEND"], "openai");
    assert_eq!(chat_conf["LLM_URL"], "http://llm.ai:8000/v1");
}

#[test]
fn threads_follow_the_cpu_limit() {
    let limit = |q: &str| ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".into(), Quantity(q.into()))])),
        ..Default::default()
    };
    assert_eq!(workloads::threads_from_cpu_limit(None), 2);
    assert_eq!(workloads::threads_from_cpu_limit(Some(&limit("4"))), 4);
    assert_eq!(workloads::threads_from_cpu_limit(Some(&limit("500m"))), 1);
    assert_eq!(workloads::threads_from_cpu_limit(Some(&limit("2500m"))), 3);
}

#[test]
fn output_is_deterministic_and_config_changes_roll_pods() {
    let a = serde_json::to_value(built(VoiceChatStackSpec::default(), SttProfile::Cpu).deployments)
        .unwrap();
    let b = serde_json::to_value(built(VoiceChatStackSpec::default(), SttProfile::Cpu).deployments)
        .unwrap();
    assert_eq!(
        a, b,
        "same input, same objects: a steady reconcile writes nothing"
    );
    let checksum_of = |c: &Children| {
        deployment(c, "demo-voice")
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[workloads::CONFIG_CHECKSUM]
            .clone()
    };
    let mut spec = VoiceChatStackSpec::default();
    let before = checksum_of(&built(spec.clone(), SttProfile::Cpu));
    spec.voice.whisper_model = Some("ggml-small.bin".into());
    let after = checksum_of(&built(spec, SttProfile::Cpu));
    assert_ne!(before, after);
}

#[test]
fn invalid_stacks_are_refused_with_a_category() {
    let mut spec = VoiceChatStackSpec::default();
    spec.redis.mode = crate::crd::RedisMode::External;
    let err = build(
        &fixtures::stack().with_spec(spec),
        &OperatorSettings::default(),
        &facts(SttProfile::Cpu),
    )
    .unwrap_err();
    assert_eq!(err, BuildError::ExternalRedisWithoutUrl);
    assert_eq!(err.category(), "InvalidRedis");
}

#[test]
fn chat_speaks_through_the_stacks_voice_service() {
    let c = built(VoiceChatStackSpec::default(), SttProfile::Cpu);
    assert_eq!(
        config(&c, "demo-chat-config")["VOICE_URL"],
        "http://demo-voice:8006"
    );
}

#[test]
fn engine_choices_reach_the_voice_service() {
    let mut spec = VoiceChatStackSpec::default();
    spec.voice.engines = Some(crate::crd::VoiceEngines {
        tts: Some(vec![crate::crd::TtsEngine::EspeakNg]),
        stt: Some(vec![
            crate::crd::SttEngine::Whisper,
            crate::crd::SttEngine::Vosk,
        ]),
    });
    let c = built(spec, SttProfile::Cpu);
    let vconf = config(&c, "demo-voice-config");
    assert_eq!(vconf["VOICE_TTS_ENGINES"], "espeak-ng");
    assert_eq!(vconf["VOICE_STT_ENGINES"], "whisper,vosk");
    let plain = built(VoiceChatStackSpec::default(), SttProfile::Cpu);
    assert!(
        !config(&plain, "demo-voice-config").contains_key("VOICE_STT_ENGINES"),
        "unset: the service's defaults"
    );
    assert!(!config(&plain, "demo-voice-config").contains_key("OPENAI_VOICE_MAP"));
}

#[test]
fn the_openai_voice_table_reaches_the_voice_service() {
    let mut spec = VoiceChatStackSpec::default();
    spec.voice.openai_voices = BTreeMap::from([
        ("nova".to_owned(), "en_GB-alan-low".to_owned()),
        ("alloy".to_owned(), "en_US-joe-medium".to_owned()),
    ]);
    let c = built(spec, SttProfile::Cpu);
    let table = &config(&c, "demo-voice-config")["OPENAI_VOICE_MAP"];
    assert_eq!(table, "alloy=en_US-joe-medium,nova=en_GB-alan-low");
    // What the operator writes, the service reads.
    let read = voicechat_common::openai_voices::OpenAiVoices::parse(Some(table)).unwrap();
    assert_eq!(read.resolve("nova").as_deref(), Some("en_GB-alan-low"));
}

#[test]
fn models_are_loaded_by_a_job_into_the_shared_cache_and_mounted_file_by_file() {
    let mut spec = VoiceChatStackSpec::default();
    spec.ollama.enabled = true;
    let stack = fixtures::stack().with_spec(spec);
    let settings = OperatorSettings::default();
    let waiting = Facts {
        models_ready: false,
        ..facts(SttProfile::Cpu)
    };
    let c = build(&stack, &settings, &waiting).unwrap();
    let names: Vec<_> = c
        .deployments
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        ["demo-chat", "demo-redis"],
        "voice and Ollama wait for their models"
    );
    assert_eq!(
        c.waiting_for_models,
        ["demo-voice", "demo-voice-config", "demo-ollama"]
    );
    let config_maps: Vec<_> = c
        .config_maps
        .iter()
        .map(|m| m.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        config_maps,
        ["demo-chat-config"],
        "the voice's configuration changes with its pods, once the models are there"
    );
    let cache = c.models_cache.as_ref().unwrap();
    assert_eq!(cache.metadata.name.as_deref(), Some("voicechat-models"));
    assert!(
        cache.metadata.owner_references.is_none(),
        "the cache outlives any one stack"
    );
    assert_eq!(c.jobs.len(), 1);
    let job = &c.jobs[0];
    assert_eq!(
        job.metadata.name.as_deref(),
        Some(format!("demo-models-{}", c.models.hash).as_str())
    );
    let job_spec = job.spec.as_ref().unwrap();
    let rule = &job_spec.pod_failure_policy.as_ref().unwrap().rules[0];
    assert_eq!(rule.action, "FailJob");
    assert_eq!(rule.on_exit_codes.as_ref().unwrap().values, [3]);
    let loader = &job_spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        loader.args.as_ref().unwrap()[..2],
        ["models".to_owned(), "fetch".to_owned()]
    );
    let plan_env = loader
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "MODELS_PLAN")
        .unwrap();
    let plan: Vec<voicechat_common::models::PlannedModel> =
        serde_json::from_str(plan_env.value.as_deref().unwrap()).unwrap();
    assert_eq!(plan, c.models.models);
    assert_eq!(plan.len(), 3, "a voice, a Whisper model and the LLM");

    let ready = build(&stack, &settings, &facts(SttProfile::Cpu)).unwrap();
    assert!(ready.waiting_for_models.is_empty());
    let voice = deployment(&ready, "demo-voice");
    let mounts = container(voice).volume_mounts.clone().unwrap();
    let onnx = mounts
        .iter()
        .find(|m| m.mount_path == "/models/piper/en_US-joe-medium.onnx")
        .expect("the voice file is mounted at its path");
    assert_eq!(
        onnx.sub_path.as_deref(),
        Some("piper/md5-74fd6a4dc39e0aa9/en_US-joe-medium.onnx")
    );
    assert_eq!(onnx.read_only, Some(true));
    assert!(
        mounts
            .iter()
            .all(|m| !m.mount_path.starts_with("/models/llm")),
        "the LLM is Ollama's"
    );
    assert_eq!(
        config(&ready, "demo-voice-config")["WHISPER_MODEL"],
        "ggml-base.en-q8_0.bin"
    );
    assert_eq!(
        config(&ready, "demo-chat-config")["LLM_MODEL"],
        "smollm2:135m-instruct-q4_1"
    );
    let ollama = deployment(&ready, "demo-ollama");
    let pod = ollama
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    let script = &init.command.as_ref().unwrap()[2];
    assert!(
        script.contains("FROM /models/llm/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{script}"
    );
    assert!(
        script.contains("ollama create 'smollm2:135m-instruct-q4_1'"),
        "{script}"
    );

    // Another model list: another Job, and the voice pods roll.
    let mut other = stack.clone();
    other.spec.models = vec![crate::crd::ModelSource {
        name: Some("piper/en_GB-alan-medium".into()),
        ..Default::default()
    }];
    let changed = build(&other, &settings, &facts(SttProfile::Cpu)).unwrap();
    assert_ne!(changed.jobs[0].metadata.name, ready.jobs[0].metadata.name);
    assert_ne!(
        deployment(&changed, "demo-voice")
            .spec
            .as_ref()
            .unwrap()
            .template,
        voice.spec.as_ref().unwrap().template
    );
}

#[test]
fn a_stack_with_its_own_models_pvc_and_no_ollama_has_no_loader() {
    let mut spec = VoiceChatStackSpec::default();
    spec.voice.models_pvc = Some("mine".into());
    spec.voice.whisper_model = Some("ggml-tiny.en.bin".into());
    let c = build(
        &fixtures::stack().with_spec(spec),
        &OperatorSettings::default(),
        &Facts {
            models_ready: false,
            ..facts(SttProfile::Cpu)
        },
    )
    .unwrap();
    assert!(c.jobs.is_empty() && c.models_cache.is_none());
    assert_eq!(
        config(&c, "demo-voice-config")["WHISPER_MODEL"],
        "ggml-tiny.en.bin"
    );
    let voice = deployment(&c, "demo-voice");
    let mounts = container(voice).volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/models" && m.read_only == Some(true))
    );
}

#[test]
fn wyoming_is_off_until_enabled_and_then_open_only_to_the_listed_peers() {
    use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    let plain = built(VoiceChatStackSpec::default(), SttProfile::Cpu);
    assert_eq!(config(&plain, "demo-voice-config")["WYOMING_PORT"], "0");
    let voice_service = |c: &Children| {
        c.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("demo-voice"))
            .and_then(|s| s.spec.clone())
            .and_then(|s| s.ports)
            .unwrap()
    };
    assert_eq!(voice_service(&plain).len(), 1);
    let policy_names = |c: &Children| -> Vec<String> {
        c.network_policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    };
    assert!(!policy_names(&plain).contains(&"demo-voice".to_owned()));

    let mut spec = VoiceChatStackSpec::default();
    spec.voice.wyoming.enabled = true;
    let on = built(spec.clone(), SttProfile::Cpu);
    assert_eq!(config(&on, "demo-voice-config")["WYOMING_PORT"], "10300");
    let ports = voice_service(&on);
    assert_eq!(
        ports
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect::<Vec<_>>(),
        [("http".to_owned(), 8006), ("wyoming".to_owned(), 10300)]
    );
    let container_ports = container(deployment(&on, "demo-voice"))
        .ports
        .clone()
        .unwrap();
    assert!(
        container_ports
            .iter()
            .any(|p| p.name.as_deref() == Some("wyoming") && p.container_port == 10300)
    );
    let rules = |c: &Children| {
        c.network_policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("demo-voice"))
            .and_then(|p| p.spec.clone())
            .and_then(|s| s.ingress)
            .expect("a policy on the voice pods")
    };
    let default_rules = rules(&on);
    let port_of = |r: &k8s_openapi::api::networking::v1::NetworkPolicyIngressRule| {
        r.ports.as_ref().unwrap()[0].port.clone().unwrap()
    };
    assert_eq!(port_of(&default_rules[0]), IntOrString::Int(8006));
    assert_eq!(
        default_rules[0].from, None,
        "HTTP stays open (tokens guard it)"
    );
    assert_eq!(port_of(&default_rules[1]), IntOrString::Int(10300));
    assert_eq!(
        default_rules[1].from,
        Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..Default::default()
        }]),
        "by default the stack's own namespace"
    );

    let home_assistant = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                "home-assistant".to_owned(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    spec.voice.wyoming.allow_from = vec![home_assistant.clone()];
    let listed = built(spec, SttProfile::Cpu);
    assert_eq!(rules(&listed)[1].from, Some(vec![home_assistant]));
}

#[test]
fn autoscaling_makes_an_autoscaler_and_leaves_the_replicas_to_it() {
    use crate::crd::AutoscalingSpec;
    let plain = built(VoiceChatStackSpec::default(), SttProfile::Cpu);
    assert!(plain.autoscalers.is_empty());
    assert_eq!(
        deployment(&plain, "demo-voice")
            .spec
            .as_ref()
            .unwrap()
            .replicas,
        Some(1)
    );

    let mut spec = VoiceChatStackSpec::default();
    spec.voice.autoscaling = Some(AutoscalingSpec {
        min_replicas: 2,
        max_replicas: 6,
        target_cpu_utilization_percentage: 60,
        target_per_pod: Some(3),
    });
    spec.chat.autoscaling = Some(AutoscalingSpec {
        min_replicas: 1,
        max_replicas: 4,
        target_cpu_utilization_percentage: 70,
        target_per_pod: None,
    });
    let c = built(spec, SttProfile::Cpu);
    // The operator no longer writes replicas: the autoscaler sets them.
    for part in ["demo-voice", "demo-chat"] {
        assert_eq!(
            deployment(&c, part).spec.as_ref().unwrap().replicas,
            None,
            "{part}"
        );
    }
    assert_eq!(
        deployment(&c, "demo-redis").spec.as_ref().unwrap().replicas,
        Some(1)
    );
    let hpa = |name: &str| {
        c.autoscalers
            .iter()
            .find(|h| h.metadata.name.as_deref() == Some(name))
            .and_then(|h| h.spec.clone())
            .unwrap_or_else(|| panic!("no autoscaler {name}"))
    };
    let voice = hpa("demo-voice");
    assert_eq!(voice.scale_target_ref.name, "demo-voice");
    assert_eq!((voice.min_replicas, voice.max_replicas), (Some(2), 6));
    let metrics = voice.metrics.unwrap();
    assert_eq!(
        metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .target
            .average_utilization,
        Some(60)
    );
    let pods = metrics[1].pods.as_ref().unwrap();
    assert_eq!(pods.metric.name, "voice_inference_queue_depth");
    assert_eq!(pods.target.average_value.as_ref().unwrap().0, "3");
    let chat = hpa("demo-chat");
    assert_eq!(
        chat.metrics.unwrap().len(),
        1,
        "CPU only without a per-pod target"
    );
    // A disruption budget counts on the autoscaler's minimum.
    let pdbs: Vec<_> = c
        .pdbs
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(pdbs, ["demo-voice"]);
}
