//! A voice pod whose inference queue is full reports not-ready (the
//! Service then sends new work elsewhere), and ready again once drained;
//! the queue depth is a metric (the autoscaler's signal).

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test]
async fn a_full_inference_queue_makes_the_pod_unready_until_it_drains() {
    let test = "a_full_inference_queue_makes_the_pod_unready_until_it_drains";
    if !models_or_skip(test) {
        return;
    }
    let m = models_dir();
    let mut cfg = config(None, m.join("piper"), m.join("vosk"));
    cfg.inference_queue_limit = 2;
    cfg.wyoming.listen = None;
    let service = Service::start(cfg, None);
    let ready = || async {
        let r = client().get(service.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    // One call runs and three wait, each a few seconds of Piper.
    let text = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(6);
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let body =
                json!({"text": text, "voice": "en_US-joe-medium", "speed": 1.0 + i as f32 * 0.01});
            let url = service.url("/api/v1/tts");
            tokio::spawn(async move {
                client()
                    .post(url)
                    .bearer_auth(token("busy"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut unready = None;
    for _ in 0..200 {
        let (status, body) = ready().await;
        if status == 503 {
            unready = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = unready.expect("/readyz never said 503 while the queue was full");
    assert!(body.contains("inference queue full"), "{body}");
    let metrics = service.get_text("/metrics").await;
    let depth: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("voice_inference_queue_depth "))
        .and_then(|v| v.trim().parse().ok())
        .expect("voice_inference_queue_depth");
    assert!(depth >= 2.0, "depth {depth}");
    for call in calls {
        assert_eq!(call.await.unwrap(), 200, "every queued call is answered");
    }
    assert_eq!(ready().await, (200, "ok".to_owned()));
}
