//! One reconcile against a mocked API server (tower-test, as kube-rs's
//! controller-rs does): the requests, in order, with the field manager and
//! `force`; the generated JWT Secret; the status; and a second reconcile of
//! the same state that writes no status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use voicechat_operator::controller::{Context, reconcile};
use voicechat_operator::crd::{VoiceChatStack, VoiceChatStackSpec};
use voicechat_operator::metrics::OperatorMetrics;
use voicechat_operator::settings::OperatorSettings;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Objects the mock API server holds, by path.
type Store = Arc<Mutex<BTreeMap<String, Value>>>;

fn not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

/// A small API server: applies are stored (and answered with the whole
/// object), gets and lists read the store, deletes remove from it.
async fn serve(mut handle: Handle, store: Store) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some((request, reply)) = handle.next_request().await {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut objects = store.lock().unwrap();
        let is_list = query.contains("labelSelector") || path == "/api/v1/nodes";
        let response = match method {
            Method::GET if is_list => {
                let prefix = format!("{path}/");
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                    .map(|(_, v)| v.clone())
                    .collect();
                json_response(
                    StatusCode::OK,
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            Method::GET => objects
                .get(&path)
                .map_or_else(not_found, |o| json_response(StatusCode::OK, o)),
            Method::PATCH => {
                let mut object = body.clone();
                if path.ends_with("/status") {
                    object["metadata"] = json!({"name": "demo", "namespace": "apps"});
                    object["spec"] = json!({});
                } else {
                    objects.insert(path.clone(), object.clone());
                }
                json_response(StatusCode::OK, &object)
            }
            // Events are created, never read back here.
            Method::POST if path.contains("/events") => json_response(StatusCode::CREATED, &body),
            Method::DELETE => match objects.remove(&path) {
                Some(_) => json_response(
                    StatusCode::OK,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
                None => not_found(),
            },
            _ => json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({})),
        };
        seen.push(Seen {
            method,
            path,
            query,
            body,
        });
        reply.send_response(response);
    }
    seen
}

fn writes(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method != Method::GET)
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

fn stack() -> VoiceChatStack {
    let mut s = VoiceChatStack::new("demo", VoiceChatStackSpec::default());
    s.metadata.namespace = Some("apps".into());
    s.metadata.uid = Some("uid-1".into());
    s.metadata.generation = Some(1);
    s
}

async fn run_reconcile(stack: VoiceChatStack, store: Store) -> Vec<Seen> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(handle, store));
    let ctx = Arc::new(Context::new(
        Client::new(service, "apps"),
        OperatorSettings::default(),
        OperatorMetrics::new().unwrap(),
    ));
    reconcile(Arc::new(stack), ctx).await.expect("reconcile");
    // Dropping the client ends the mock server's request stream.
    server.await.unwrap()
}

fn empty_store() -> Store {
    Arc::new(Mutex::new(BTreeMap::new()))
}

/// The stack as the API server would hand it out after `seen`'s status write.
fn settled(mut stack: VoiceChatStack, seen: &[Seen]) -> VoiceChatStack {
    let status = seen
        .iter()
        .rev()
        .find(|p| p.method == Method::PATCH && p.path.ends_with("/status"))
        .expect("a status write");
    stack.status = Some(serde_json::from_value(status.body["status"].clone()).unwrap());
    stack
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
    assert!(position("configmaps/demo-voice-config") < position("services/demo-chat"));
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
    let stack = settled(stack(), &first);

    let second = run_reconcile(stack.clone(), store.clone()).await;
    assert_eq!(
        writes(&second),
        Vec::<String>::new(),
        "a steady state sends no write"
    );

    // Someone scales the chat Deployment by hand: only it is re-applied.
    let path = "/apis/apps/v1/namespaces/apps/deployments/demo-chat";
    store.lock().unwrap().get_mut(path).unwrap()["spec"]["replicas"] = json!(5);
    let third = run_reconcile(stack, store.clone()).await;
    assert_eq!(writes(&third), [format!("PATCH {path}")]);
    assert_eq!(store.lock().unwrap()[path]["spec"]["replicas"], 1);
}

#[tokio::test]
async fn children_no_longer_wanted_are_deleted() {
    let store = empty_store();
    let mut with_ollama = stack();
    with_ollama.spec.ollama.enabled = true;
    let first = run_reconcile(with_ollama, store.clone()).await;
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
        deletes,
        [
            "DELETE /apis/apps/v1/namespaces/apps/deployments/demo-ollama",
            "DELETE /api/v1/namespaces/apps/services/demo-ollama",
            "DELETE /apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-ollama",
        ]
    );
}

#[tokio::test]
async fn an_invalid_stack_gets_a_status_and_waits() {
    let mut s = stack();
    s.spec.redis.mode = voicechat_operator::crd::RedisMode::External;
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
    let first = run_reconcile(stack(), store.clone()).await;
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
