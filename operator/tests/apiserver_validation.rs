//! The generated CRD against a real API server: accepted (structural
//! schema, CEL compiles), the examples pass server-side validation, and
//! invalid stacks are refused by the server itself with the schema's and
//! the CEL rules' messages, before any operator sees them.

mod support;

use support::{STACKS_NAMESPACE, repo_root, stack_yaml};
use voicechat_e2e::{ControlPlane, Options};

fn apply(plane: &ControlPlane, yaml: &str) -> Result<String, String> {
    plane
        .kubectl_with_stdin(&["apply", "-f", "-"], Some(yaml))
        .map_err(|e| e.to_string())
}

#[test]
fn the_server_accepts_the_crd_and_refuses_invalid_stacks() {
    if !support::available("the_server_accepts_the_crd_and_refuses_invalid_stacks") {
        return;
    }
    let plane = ControlPlane::start(Options {
        controller_manager: false,
    })
    .expect("start the control plane");
    support::install_crd(&plane);
    plane
        .kubectl(&["create", "namespace", STACKS_NAMESPACE])
        .expect("namespace");

    // Every example passes the server's validation.
    let examples = repo_root().join("crds/examples");
    let out = plane
        .kubectl(&[
            "apply",
            "--dry-run=server",
            "-n",
            STACKS_NAMESPACE,
            "-f",
            &examples.display().to_string(),
        ])
        .expect("the examples are valid");
    assert_eq!(
        out.matches("voicechatstack.voicechat.dev/").count(),
        3,
        "three example stacks: {out}"
    );

    // Defaults come from the schema: spec: {} is stored with them.
    apply(&plane, &stack_yaml("defaults", "{}")).expect("spec: {}");
    let stored = plane
        .kubectl(&[
            "get",
            "vcs",
            "defaults",
            "-n",
            STACKS_NAMESPACE,
            "-o",
            "jsonpath={.spec.chat.replicas} {.spec.voice.replicas} {.spec.voice.sttProfile}",
        ])
        .expect("read the stored stack");
    assert_eq!(stored, "1 1 Auto");

    apply(
        &plane,
        &stack_yaml(
            "openai-voices",
            "{voice: {openaiVoices: {alloy: en_US-joe-medium, nova: es}}}",
        ),
    )
    .expect("a table of OpenAI voice names is accepted");

    let refused = [
        (
            "{redis: {mode: External}}",
            "redis.mode External needs redis.urlSecret",
        ),
        (
            "{voice: {sttProfile: GPU, engines: {stt: [vosk]}}}",
            "voice.sttProfile GPU needs the whisper engine in voice.engines.stt",
        ),
        ("{chat: {replicas: 101}}", "spec.chat.replicas"),
        // Autoscaling: a minimum over the maximum, a target of 0.
        (
            "{voice: {autoscaling: {minReplicas: 5, maxReplicas: 2}}}",
            "autoscaling.minReplicas must not be more than maxReplicas",
        ),
        (
            "{chat: {autoscaling: {minReplicas: 1, maxReplicas: 2, targetCpuUtilizationPercentage: 0}}}",
            "spec.chat.autoscaling.targetCpuUtilizationPercentage",
        ),
        (
            "{voice: {autoscaling: {minReplicas: 1, maxReplicas: 2, targetPerPod: 0}}}",
            "spec.voice.autoscaling.targetPerPod",
        ),
        ("{chat: {replicas: two}}", "spec.chat.replicas"),
        ("{voice: {sttProfile: TPU}}", "Unsupported value: \"TPU\""),
        (
            "{chat: {history: {ttlSeconds: 5}}}",
            "spec.chat.history.ttlSeconds",
        ),
        // Models: an unknown catalog name, a URL that is not http(s), a
        // malformed sha256, a URL without its digest, two forms at once.
        (
            "{models: [{name: piper/en_US-nobody-medium}]}",
            "spec.models[0].name: Unsupported value: \"piper/en_US-nobody-medium\"",
        ),
        (
            "{models: [{url: 'ftp://h/x.bin', sha256: '{sha}', path: whisper/x.bin}]}",
            "spec.models[0].url",
        ),
        (
            "{models: [{url: 'https://h/x.bin', sha256: ABC, path: whisper/x.bin}]}",
            "spec.models[0].sha256",
        ),
        (
            "{models: [{url: 'https://h/x.bin', path: whisper/x.bin}]}",
            "a model given by url needs sha256 and path",
        ),
        (
            "{models: [{name: whisper/tiny.en, url: 'https://h/x.bin', sha256: '{sha}', path: whisper/x.bin}]}",
            "a model has one of name (a catalog model), url or image",
        ),
        // Images: pinned by digest, with a path; image fields only with one.
        (
            "{models: [{image: 'reg.example/m/whisper:latest', path: whisper/x.bin}]}",
            "spec.models[0].image",
        ),
        (
            "{models: [{image: 'reg.example/m/whisper@sha256:{sha}'}]}",
            "a model given by image needs path",
        ),
        (
            "{models: [{image: 'reg.example/m/whisper@sha256:{sha}', sha256: '{sha}', path: whisper/x.bin}]}",
            "sha256 goes with url",
        ),
        (
            "{models: [{url: 'https://h/x.bin', sha256: '{sha}', path: whisper/x.bin, pullSecret: regcred}]}",
            "file, pullSecret and plainHttp go with image",
        ),
        (
            "{models: [{image: 'reg.example/m/w@sha256:{sha}', path: whisper/x.bin, pullSecret: Not_A_Name}]}",
            "spec.models[0].pullSecret",
        ),
        (
            "{models: [{url: 'https://h/x.bin', sha256: '{sha}', path: '../x.bin'}]}",
            "spec.models[0].path",
        ),
        // OpenAI's voice names only, each to one voice name.
        (
            "{voice: {openaiVoices: {robot: en_US-joe-medium}}}",
            "keys are OpenAI's voice names: alloy, ash",
        ),
        (
            "{voice: {openaiVoices: {alloy: 'a,b=c'}}}",
            "spec.voice.openaiVoices.alloy",
        ),
    ];
    let sha = "ab".repeat(32);
    for (i, (spec, message)) in refused.iter().enumerate() {
        let name = format!("invalid-{i}");
        let spec = &spec.replace("{sha}", &sha);
        let err = apply(&plane, &stack_yaml(&name, spec))
            .expect_err(&format!("the server refuses spec {spec}"));
        assert!(
            err.contains(message),
            "spec {spec}: expected {message:?} in:\n{err}"
        );
        assert!(
            plane
                .kubectl(&["get", "vcs", &name, "-n", STACKS_NAMESPACE])
                .is_err(),
            "a refused stack is not stored"
        );
    }

    // auth.jwtSecret is immutable (a transition rule, checked on update).
    apply(
        &plane,
        &stack_yaml("pinned", "{auth: {jwtSecret: {name: a, key: k}}}"),
    )
    .expect("a stack naming its JWT Secret");
    let err = apply(
        &plane,
        &stack_yaml("pinned", "{auth: {jwtSecret: {name: b, key: k}}}"),
    )
    .expect_err("changing jwtSecret is refused");
    assert!(
        err.contains("auth.jwtSecret is immutable; create a new stack to change it"),
        "{err}"
    );
}
