//! `crds/` holds exactly what `voicechat-operator crd` prints: the YAML is
//! generated from the Rust types, never edited by hand.

use serde::Deserialize;

#[test]
fn committed_crd_matches_the_generated_one() {
    let generated = voicechat_operator::crd_yaml().expect("render CRD");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/voicechat.dev_voicechatstacks.yaml"
    );
    let committed =
        std::fs::read_to_string(path).expect("read crds/voicechat.dev_voicechatstacks.yaml");
    assert!(
        committed == generated,
        "crds/voicechat.dev_voicechatstacks.yaml is stale: run\n  cargo run -p voicechat-operator -- crd > crds/voicechat.dev_voicechatstacks.yaml"
    );
}

#[test]
fn the_binary_prints_the_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voicechat-operator"))
        .arg("crd")
        .output()
        .expect("run voicechat-operator crd");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        voicechat_operator::crd_yaml().unwrap()
    );
}

#[test]
fn schema_defaults_give_one_replica_each() {
    let yaml = voicechat_operator::crd_yaml().unwrap();
    let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["chat"]["default"]["replicas"], 1);
    assert_eq!(spec["voice"]["default"]["replicas"], 1);
    assert_eq!(spec["voice"]["default"]["sttProfile"], "Auto");
    let printer: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["jsonPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        printer[0], r#".status.conditions[?(@.type=="Ready")].status"#,
        "Ready comes from the Ready condition, not conditions[0]"
    );
}

#[test]
fn examples_are_valid_stacks() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/examples");
    let mut stacks = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(doc).unwrap();
            if value["kind"] == "VoiceChatStack" {
                let stack: voicechat_operator::crd::VoiceChatStack = serde_json::from_value(value)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(stack.metadata.name.is_some());
                stacks += 1;
            }
        }
    }
    assert_eq!(stacks, 3, "minimal, gpu and external-redis");
}

#[test]
fn cel_rules_are_in_the_schema() {
    let yaml = voicechat_operator::crd_yaml().unwrap();
    let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let rules = |v: &serde_json::Value| {
        v["x-kubernetes-validations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let redis = rules(&spec["redis"]);
    assert_eq!(
        redis[0]["rule"],
        "self.mode != 'External' || has(self.urlSecret)"
    );
    let secret = rules(&spec["auth"]["properties"]["jwtSecret"]);
    assert_eq!(secret[0]["rule"], "self == oldSelf");
    let root = rules(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
    assert!(
        root[0]["rule"]
            .as_str()
            .unwrap()
            .contains("exists(e, e == 'whisper')"),
        "{root:?}"
    );
}

#[test]
fn the_chart_ships_the_same_crd_file() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let chart = std::path::Path::new(root)
        .join("charts/voicechat-operator/crds/voicechat.dev_voicechatstacks.yaml");
    let top = std::path::Path::new(root).join("crds/voicechat.dev_voicechatstacks.yaml");
    assert!(
        std::fs::symlink_metadata(&chart)
            .expect("the chart has the CRD")
            .file_type()
            .is_symlink(),
        "the chart's CRD is a link to crds/, so the two cannot drift"
    );
    assert_eq!(
        std::fs::canonicalize(&chart).unwrap(),
        std::fs::canonicalize(&top).unwrap()
    );
}
