//! HorizontalPodAutoscalers (`autoscaling/v2`) for the chat and voice
//! parts that ask for one: on CPU, and on the part's own per-pod metric
//! when the stack gives a target for it (the cluster then serves it
//! through a metrics adapter).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::{Part, child_meta, name};
use crate::crd::{AutoscalingSpec, VoiceChatStack};

/// The per-pod metric each part exports for autoscaling (the Prometheus
/// names the services give them).
pub fn per_pod_metric(part: Part) -> &'static str {
    match part {
        Part::Voice => "voice_inference_queue_depth",
        _ => "chat_ws_connections_active",
    }
}

pub fn autoscalers(stack: &VoiceChatStack) -> Vec<HorizontalPodAutoscaler> {
    [
        (Part::Chat, stack.spec.chat.autoscaling.as_ref()),
        (Part::Voice, stack.spec.voice.autoscaling.as_ref()),
    ]
    .into_iter()
    .filter_map(|(part, spec)| spec.map(|spec| autoscaler(stack, part, spec)))
    .collect()
}

fn autoscaler(
    stack: &VoiceChatStack,
    part: Part,
    spec: &AutoscalingSpec,
) -> HorizontalPodAutoscaler {
    let mut metrics = vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(spec.target_cpu_utilization_percentage),
                ..Default::default()
            },
        }),
        ..Default::default()
    }];
    if let Some(target) = spec.target_per_pod {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: per_pod_metric(part).into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(target.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
    }
    HorizontalPodAutoscaler {
        metadata: child_meta(stack, part.as_str(), Some(part)),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: name(stack, part.as_str()),
            },
            min_replicas: Some(spec.min_replicas),
            max_replicas: spec.max_replicas,
            metrics: Some(metrics),
            behavior: None,
        }),
        ..Default::default()
    }
}
