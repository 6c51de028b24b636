//! Resolving the speech-to-text profile (a pure function of the spec and
//! the nodes, as KubeAI picks resource profiles): `Auto` becomes GPU when a
//! schedulable, ready node has allocatable GPUs of the configured resource.

use k8s_openapi::api::core::v1::Node;
use voicechat_common::stt_profile::SttProfile;

use crate::crd;

/// The profile and a sentence saying why, for the status.
pub fn resolve(
    requested: crd::SttProfile,
    nodes: &[Node],
    gpu_resource: &str,
) -> (SttProfile, String) {
    if let Some(profile) = requested.explicit() {
        return (profile, format!("requested {}", profile.label()));
    }
    let with_gpu: Vec<&str> = nodes
        .iter()
        .filter(|n| offers_gpu(n, gpu_resource))
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    match with_gpu.first() {
        Some(first) => (
            SttProfile::Gpu,
            format!(
                "Auto: {} schedulable node(s) with allocatable {gpu_resource}, e.g. {first}",
                with_gpu.len()
            ),
        ),
        None => (
            SttProfile::Cpu,
            format!("Auto: no schedulable node has allocatable {gpu_resource}"),
        ),
    }
}

/// Whether a node offers GPUs to the `Auto` profile right now.
pub fn offers_gpu(node: &Node, gpu_resource: &str) -> bool {
    schedulable(node) && gpus(node, gpu_resource) > 0
}

/// Remembers which nodes offer GPUs, so the Node watch wakes `Auto` stacks
/// only when that changes (a GPU node added, removed, cordoned, its GPUs
/// gone) and not on every heartbeat-driven status update.
#[derive(Debug, Default)]
pub struct GpuNodeTracker {
    offering: std::collections::BTreeSet<String>,
    /// The set as it was when a re-list began; compared at its end, since
    /// nodes deleted while the watch was down send no event.
    before_relist: Option<std::collections::BTreeSet<String>>,
}

/// One Node watch event, reduced to what the tracker needs.
pub enum NodeEvent<'a> {
    Applied(&'a Node),
    Deleted(&'a Node),
    RelistStarted,
    RelistDone,
}

impl GpuNodeTracker {
    /// Records the event; true when the set of GPU nodes changed.
    pub fn observe(&mut self, event: NodeEvent<'_>, gpu_resource: &str) -> bool {
        match event {
            NodeEvent::Applied(node) => {
                let Some(name) = node.metadata.name.clone() else {
                    return false;
                };
                let changed = if offers_gpu(node, gpu_resource) {
                    self.offering.insert(name)
                } else {
                    self.offering.remove(&name)
                };
                // During a re-list, changes are reported once, at its end.
                changed && self.before_relist.is_none()
            }
            NodeEvent::Deleted(node) => node
                .metadata
                .name
                .as_ref()
                .is_some_and(|n| self.offering.remove(n)),
            NodeEvent::RelistStarted => {
                self.before_relist = Some(std::mem::take(&mut self.offering));
                false
            }
            NodeEvent::RelistDone => self
                .before_relist
                .take()
                .is_some_and(|before| before != self.offering),
        }
    }
}

fn schedulable(node: &Node) -> bool {
    let spec_ok = node
        .spec
        .as_ref()
        .is_none_or(|s| !s.unschedulable.unwrap_or(false));
    // A node without conditions (created through the API, no kubelet) is
    // taken at its word; one that reports Ready must report True.
    let ready_ok = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_none_or(|c| c.status == "True");
    spec_ok && ready_ok
}

fn gpus(node: &Node, resource: &str) -> i64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(resource))
        .and_then(|q| q.0.parse::<i64>().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn node(name: &str, gpus: Option<&str>, unschedulable: bool, ready: Option<&str>) -> Node {
        node_with(name, "nvidia.com/gpu", gpus, unschedulable, ready)
    }

    fn node_with(
        name: &str,
        resource: &str,
        gpus: Option<&str>,
        unschedulable: bool,
        ready: Option<&str>,
    ) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.spec = Some(NodeSpec {
            unschedulable: Some(unschedulable),
            ..Default::default()
        });
        n.status = Some(NodeStatus {
            allocatable: gpus.map(|g| [(resource.to_owned(), Quantity(g.into()))].into()),
            conditions: ready.map(|r| {
                vec![NodeCondition {
                    type_: "Ready".into(),
                    status: r.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        n
    }

    #[test]
    fn auto_picks_gpu_only_for_schedulable_ready_nodes_with_gpus() {
        let r = "nvidia.com/gpu";
        assert_eq!(resolve(crd::SttProfile::Auto, &[], r).0, SttProfile::Cpu);
        assert_eq!(
            resolve(
                crd::SttProfile::Auto,
                &[node("cpu", None, false, Some("True"))],
                r
            )
            .0,
            SttProfile::Cpu
        );
        assert_eq!(
            resolve(
                crd::SttProfile::Auto,
                &[node("zero", Some("0"), false, None)],
                r
            )
            .0,
            SttProfile::Cpu
        );
        assert_eq!(
            resolve(
                crd::SttProfile::Auto,
                &[node("cordoned", Some("1"), true, None)],
                r
            )
            .0,
            SttProfile::Cpu
        );
        assert_eq!(
            resolve(
                crd::SttProfile::Auto,
                &[node("down", Some("1"), false, Some("False"))],
                r
            )
            .0,
            SttProfile::Cpu
        );
        let (profile, reason) = resolve(
            crd::SttProfile::Auto,
            &[node("a100", Some("2"), false, Some("True"))],
            r,
        );
        assert_eq!(profile, SttProfile::Gpu);
        assert!(reason.contains("a100"), "{reason}");
        let amd = node_with("amd", "amd.com/gpu", Some("1"), false, None);
        assert_eq!(
            resolve(
                crd::SttProfile::Auto,
                std::slice::from_ref(&amd),
                "amd.com/gpu"
            )
            .0,
            SttProfile::Gpu
        );
        assert_eq!(
            resolve(crd::SttProfile::Auto, &[amd], r).0,
            SttProfile::Cpu,
            "the resource name is configurable"
        );
    }

    #[test]
    fn the_tracker_reports_only_changes_of_the_gpu_node_set() {
        let mut t = GpuNodeTracker::default();
        let r = "nvidia.com/gpu";
        let gpu = node("g", Some("1"), false, Some("True"));
        let cpu = node("c", None, false, Some("True"));
        assert!(!t.observe(NodeEvent::RelistStarted, r));
        assert!(!t.observe(NodeEvent::Applied(&cpu), r));
        assert!(
            !t.observe(NodeEvent::RelistDone, r),
            "no GPU node, as before"
        );
        assert!(t.observe(NodeEvent::Applied(&gpu), r), "a GPU node came");
        assert!(!t.observe(NodeEvent::Applied(&gpu), r), "a heartbeat");
        assert!(!t.observe(NodeEvent::Applied(&cpu), r));
        let cordoned = node("g", Some("1"), true, Some("True"));
        assert!(t.observe(NodeEvent::Applied(&cordoned), r), "cordoned");
        assert!(t.observe(NodeEvent::Applied(&gpu), r), "uncordoned");
        assert!(t.observe(NodeEvent::Deleted(&gpu), r), "a GPU node went");
        assert!(!t.observe(NodeEvent::Deleted(&cpu), r));
        // A re-list after a watch outage during which the GPU node came.
        assert!(!t.observe(NodeEvent::RelistStarted, r));
        assert!(!t.observe(NodeEvent::Applied(&gpu), r));
        assert!(t.observe(NodeEvent::RelistDone, r));
        // And one during which it went (no Deleted event was seen).
        assert!(!t.observe(NodeEvent::RelistStarted, r));
        assert!(!t.observe(NodeEvent::Applied(&cpu), r));
        assert!(t.observe(NodeEvent::RelistDone, r));
    }

    #[test]
    fn explicit_profiles_win() {
        assert_eq!(
            resolve(
                crd::SttProfile::Cpu,
                &[node("g", Some("8"), false, None)],
                "nvidia.com/gpu"
            )
            .0,
            SttProfile::Cpu
        );
        assert_eq!(
            resolve(crd::SttProfile::Gpu, &[], "nvidia.com/gpu").0,
            SttProfile::Gpu
        );
    }

    #[test]
    fn an_explicit_profile_says_it_was_requested() {
        let r = "nvidia.com/gpu";
        assert_eq!(resolve(crd::SttProfile::Cpu, &[], r).1, "requested CPU");
        assert_eq!(resolve(crd::SttProfile::Gpu, &[], r).1, "requested GPU");
    }
}
