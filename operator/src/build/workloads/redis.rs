//! The managed Redis: a Deployment on its own data volume (a PVC when
//! persistence is asked for) that only the stack's pods can reach.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Probe, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{REDIS_PORT, default_resources, deployment, pod_spec};
use crate::build::meta::{Part, child_meta, name};
use crate::build::pods::{container_security, scratch_volume};
use crate::crd::VoiceChatStack;
use crate::settings::OperatorSettings;

/// The `redis` user of the Redis image.
const REDIS_USER: i64 = 999;

/// The URL the services reach the managed Redis at.
pub(super) fn url(stack: &VoiceChatStack) -> String {
    format!("redis://{}:{REDIS_PORT}", name(stack, "redis"))
}

fn tcp_probe(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    }
}

pub fn redis(stack: &VoiceChatStack, settings: &OperatorSettings) -> Deployment {
    let redis = &stack.spec.redis;
    let data = match &redis.persistence_size {
        Some(_) => Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name(stack, "redis-data"),
                read_only: None,
            }),
            ..Default::default()
        },
        None => scratch_volume("data", "/data").0,
    };
    let container = Container {
        name: "redis".into(),
        image: Some(
            redis
                .image
                .clone()
                .unwrap_or_else(|| settings.redis_image.clone()),
        ),
        args: Some(
            ["--dir", "/data", "--appendonly", "yes", "--save", ""]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("redis".into()),
            container_port: REDIS_PORT,
            ..Default::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..Default::default()
        }]),
        liveness_probe: Some(tcp_probe(REDIS_PORT)),
        readiness_probe: Some(tcp_probe(REDIS_PORT)),
        resources: Some(default_resources("50m", "64Mi", "512Mi")),
        security_context: Some(container_security()),
        ..Default::default()
    };
    let mut redis = deployment(
        stack,
        Part::Redis,
        Some(1),
        None,
        pod_spec(stack, container, vec![data], REDIS_USER),
    );
    // One Redis at a time on its data: a surge pod would open the same AOF.
    if let Some(spec) = redis.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    redis
}

pub fn redis_pvc(stack: &VoiceChatStack) -> Option<PersistentVolumeClaim> {
    let size = stack.spec.redis.persistence_size.clone()?;
    Some(PersistentVolumeClaim {
        metadata: child_meta(stack, "redis-data", Some(Part::Redis)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}
