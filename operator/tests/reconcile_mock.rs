//! One reconcile against a mocked API server (tower-test, as kube-rs's
//! controller-rs does): the requests, in order, with the field manager and
//! `force`; the generated JWT Secret; the status; and a second reconcile of
//! the same state that writes no status.

use std::sync::Arc;

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

/// Answers like an empty namespace: lists are empty, the JWT Secret does
/// not exist (or does, with `existing_secret`), applies echo their body.
async fn serve(mut handle: Handle, existing_secret: Option<String>) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some((request, reply)) = handle.next_request().await {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let response = match (&method, path.as_str()) {
            (&Method::GET, p) if p.ends_with("/secrets/demo-jwt") => match &existing_secret {
                Some(v) => json_response(
                    StatusCode::OK,
                    &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-jwt"}, "data": {"secret": v}}),
                ),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                ),
            },
            (&Method::GET, _) => json_response(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []}),
            ),
            // The API server answers an apply with the whole object.
            (&Method::PATCH, p) => {
                let mut object = body.clone();
                if object.get("metadata").is_none() {
                    let segments: Vec<&str> = p.split('/').collect();
                    let name = segments[segments.len() - 2];
                    object["metadata"] = json!({"name": name, "namespace": "apps"});
                    object["spec"] = json!({});
                }
                json_response(StatusCode::OK, &object)
            }
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

fn stack() -> VoiceChatStack {
    let mut s = VoiceChatStack::new("demo", VoiceChatStackSpec::default());
    s.metadata.namespace = Some("apps".into());
    s.metadata.uid = Some("uid-1".into());
    s.metadata.generation = Some(1);
    s
}

async fn run_reconcile(stack: VoiceChatStack, existing_secret: Option<String>) -> Vec<Seen> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(handle, existing_secret));
    let ctx = Arc::new(Context {
        client: Client::new(service, "apps"),
        settings: OperatorSettings::default(),
        metrics: OperatorMetrics::new().unwrap(),
    });
    reconcile(Arc::new(stack), ctx).await.expect("reconcile");
    // Dropping the client ends the mock server's request stream.
    server.await.unwrap()
}

#[tokio::test]
async fn reconcile_applies_children_in_order_then_writes_status() {
    let seen = run_reconcile(stack(), None).await;
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
    let seen = run_reconcile(stack(), Some(existing.clone())).await;
    let secret = seen
        .iter()
        .find(|p| p.method == Method::PATCH && p.path.ends_with("secrets/demo-jwt"))
        .unwrap();
    assert_eq!(
        secret.body["data"]["secret"],
        existing.as_str(),
        "re-applied unchanged, never rotated"
    );
}

#[tokio::test]
async fn a_steady_state_writes_no_status() {
    let first = run_reconcile(stack(), None).await;
    let status_patch = first
        .iter()
        .rev()
        .find(|p| p.path.ends_with("/status"))
        .unwrap();
    let mut settled = stack();
    settled.status = Some(serde_json::from_value(status_patch.body["status"].clone()).unwrap());
    let secret = first
        .iter()
        .find(|p| p.method == Method::PATCH && p.path.ends_with("secrets/demo-jwt"))
        .unwrap();
    let second = run_reconcile(
        settled,
        Some(secret.body["data"]["secret"].as_str().unwrap().to_owned()),
    )
    .await;
    assert!(
        second.iter().all(|p| !p.path.ends_with("/status")),
        "status unchanged: not written"
    );
}

#[tokio::test]
async fn an_invalid_stack_gets_a_status_and_waits() {
    let mut s = stack();
    s.spec.redis.mode = voicechat_operator::crd::RedisMode::External;
    let seen = run_reconcile(s, None).await;
    assert!(
        seen.iter().all(|p| !p.path.contains("/deployments/")),
        "nothing applied: {:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    let status = &seen.last().unwrap().body["status"];
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
