//! One reconcile against a fake API server (tower-test, as kube-rs's
//! controller-rs does): the requests, in order, with the field manager and
//! `force`; the generated JWT Secret; the status; and a second reconcile of
//! the same state that writes no status.

use http::Method;
use serde_json::json;

use crate::fixtures::{Seen, Store, empty_store, run_reconcile, settled, stack, writes};

/// No Job controller here: mark every loader Job finished, as the cluster would.
fn complete_loader_jobs(store: &Store) {
    for (path, object) in store.lock().unwrap().iter_mut() {
        if path.contains("/jobs/") {
            object["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        }
    }
}

#[tokio::test]
async fn reconcile_applies_children_in_order_then_writes_status() {
    let seen = run_reconcile(stack(), empty_store()).await;
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::PATCH).collect();
    for p in &patches {
        assert!(
            p.query.contains("fieldManager=voicechat-operator") && p.query.contains("force=true"),
            "{} {}",
            p.path,
            p.query
        );
    }
    let order: Vec<String> = patches
        .iter()
        .map(|p| {
            p.path
                .trim_start_matches("/api/v1/namespaces/apps/")
                .trim_start_matches("/apis/")
                .to_owned()
        })
        .collect();
    let position = |needle: &str| {
        order
            .iter()
            .position(|p| p.contains(needle))
            .unwrap_or_else(|| panic!("no PATCH of {needle} in {order:?}"))
    };
    assert!(position("serviceaccounts/demo-pods") < position("secrets/demo-jwt"));
    assert!(position("secrets/demo-jwt") < position("configmaps/demo-chat-config"));
    assert!(position("configmaps/demo-chat-config") < position("services/demo-chat"));
    assert!(
        !order
            .iter()
            .any(|p| p.contains("configmaps/demo-voice-config")),
        "the voice's configuration waits with it for the models: {order:?}"
    );
    assert!(position("services/demo-redis") < position("networkpolicies/demo-redis"));
    assert!(position("networkpolicies/demo-redis") < position("deployments/demo-chat"));
    assert!(
        order
            .last()
            .unwrap()
            .ends_with("voicechatstacks/demo/status"),
        "status last: {order:?}"
    );

    // The generated secret: 96 hex characters, base64 in the Secret.
    let secret = patches
        .iter()
        .find(|p| p.path.ends_with("secrets/demo-jwt"))
        .unwrap();
    let encoded = secret.body["data"]["secret"].as_str().unwrap();
    assert!(encoded.len() >= 128, "{encoded}");

    let status = &patches.last().unwrap().body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["sttProfile"], "CPU");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False", "no Deployment is available yet");
}

#[tokio::test]
async fn an_existing_jwt_secret_is_kept() {
    use base64::Engine as _;
    let existing = base64::engine::general_purpose::STANDARD
        .encode("the-secret-already-in-the-cluster-0123456789");
    let store = empty_store();
    store.lock().unwrap().insert(
        "/api/v1/namespaces/apps/secrets/demo-jwt".into(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-jwt", "namespace": "apps"}, "data": {"secret": existing}}),
    );
    run_reconcile(stack(), store.clone()).await;
    let kept =
        store.lock().unwrap()["/api/v1/namespaces/apps/secrets/demo-jwt"]["data"]["secret"].clone();
    assert_eq!(kept, existing.as_str(), "never rotated");
}

#[tokio::test]
async fn a_steady_state_writes_nothing_and_drift_is_corrected() {
    let store = empty_store();
    let first = run_reconcile(stack(), store.clone()).await;
    assert!(writes(&first).len() > 10, "{:?}", writes(&first));
    // The status comes from the cache as the reconcile starts: the
    // children just applied show in the next one (their watch events start
    // it), which writes the status again and nothing else.
    let stack = settled(stack(), &first);
    let second = run_reconcile(stack.clone(), store.clone()).await;
    assert!(
        writes(&second).iter().all(|w| w.ends_with("/status")),
        "{:?}",
        writes(&second)
    );
    let stack = settled(stack, &second);

    let third = run_reconcile(stack.clone(), store.clone()).await;
    assert_eq!(
        third
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect::<Vec<_>>(),
        Vec::<String>::new(),
        "a steady state sends no request at all: the cache answers"
    );

    // Someone scales the chat Deployment by hand: only it is re-applied
    // (the status, from the cache, says what was seen meanwhile).
    let path = "/apis/apps/v1/namespaces/apps/deployments/demo-chat";
    store.lock().unwrap().get_mut(path).unwrap()["spec"]["replicas"] = json!(5);
    let fourth = run_reconcile(stack, store.clone()).await;
    let children: Vec<String> = writes(&fourth)
        .into_iter()
        .filter(|w| !w.ends_with("/status"))
        .collect();
    assert_eq!(children, [format!("PATCH {path}")]);
    assert_eq!(store.lock().unwrap()[path]["spec"]["replicas"], 1);
}

#[tokio::test]
async fn children_no_longer_wanted_are_deleted() {
    let store = empty_store();
    let mut with_ollama = stack();
    with_ollama.spec.ollama.enabled = true;
    let loading = run_reconcile(with_ollama.clone(), store.clone()).await;
    assert!(
        !store
            .lock()
            .unwrap()
            .contains_key("/apis/apps/v1/namespaces/apps/deployments/demo-ollama"),
        "Ollama waits for its model"
    );
    complete_loader_jobs(&store);
    let first = run_reconcile(settled(with_ollama, &loading), store.clone()).await;
    assert!(
        store
            .lock()
            .unwrap()
            .contains_key("/apis/apps/v1/namespaces/apps/deployments/demo-ollama")
    );
    let without = settled(stack(), &first);
    let second = run_reconcile(without, store.clone()).await;
    let deletes: Vec<String> = writes(&second)
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes[..3],
        [
            "DELETE /apis/apps/v1/namespaces/apps/deployments/demo-ollama",
            "DELETE /api/v1/namespaces/apps/services/demo-ollama",
            "DELETE /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-ollama",
        ]
    );
    // Without the LLM the plan is another: the old loader Job goes, and
    // the voice Deployment stays while the new one runs.
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    assert!(deletes[3].starts_with("DELETE /apis/batch/v1/namespaces/apps/jobs/demo-models-"));
    assert!(
        store
            .lock()
            .unwrap()
            .contains_key("/apis/apps/v1/namespaces/apps/deployments/demo-voice")
    );
}

#[tokio::test]
async fn an_invalid_stack_gets_a_status_and_waits() {
    let mut s = stack();
    s.spec.redis.mode = crate::crd::RedisMode::External;
    let seen = run_reconcile(s, empty_store()).await;
    assert!(
        seen.iter().all(|p| !p.path.contains("/deployments/")),
        "nothing applied: {:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    let event = seen
        .iter()
        .find(|p| p.method == Method::POST && p.path.contains("/events"))
        .expect("a Warning event");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidRedis");
    let status = &seen
        .iter()
        .rev()
        .find(|p| p.path.ends_with("/status"))
        .unwrap()
        .body["status"];
    let ready = &status["conditions"][0];
    assert_eq!(
        (
            ready["type"].as_str(),
            ready["status"].as_str(),
            ready["reason"].as_str()
        ),
        (Some("Ready"), Some("False"), Some("InvalidRedis"))
    );
}

#[tokio::test]
async fn becoming_ready_is_reported_in_status_and_an_event() {
    let store = empty_store();
    let loading = run_reconcile(stack(), store.clone()).await;
    assert!(
        !store
            .lock()
            .unwrap()
            .contains_key("/apis/apps/v1/namespaces/apps/deployments/demo-voice"),
        "the voice waits for its models"
    );
    complete_loader_jobs(&store);
    let first = run_reconcile(settled(stack(), &loading), store.clone()).await;
    let stack = settled(stack(), &first);
    // No kubelet here: mark the Deployments available, as the cluster would.
    for (path, object) in store.lock().unwrap().iter_mut() {
        if path.contains("/deployments/") {
            object["status"] = json!({"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
        }
    }
    let second = run_reconcile(stack, store).await;
    let event = second
        .iter()
        .find(|p| p.method == Method::POST && p.path.contains("/events"))
        .expect("a Ready event");
    assert_eq!(
        (event.body["type"].as_str(), event.body["reason"].as_str()),
        (Some("Normal"), Some("Ready"))
    );
    let status = &second
        .iter()
        .rev()
        .find(|p| p.path.ends_with("/status"))
        .unwrap()
        .body["status"];
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
}
