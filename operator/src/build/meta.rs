//! Names, labels and owner references shared by every child.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::VoiceChatStack;

/// One component of the stack; children are named `<stack>-<part>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Chat,
    Voice,
    Redis,
    Ollama,
    /// The loader Jobs that fill the models cache.
    Models,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Voice => "voice",
            Self::Redis => "redis",
            Self::Ollama => "ollama",
            Self::Models => "models",
        }
    }
}

pub const MANAGED_BY: &str = "voicechat-operator";
pub const PART_OF: &str = "voicechatstack";
/// The label naming the operator on everything it manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The label naming the stack a child belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Labels every child carries; the selector labels are the first two.
pub fn labels(stack: &VoiceChatStack, part: Option<Part>) -> BTreeMap<String, String> {
    let mut l = selector(stack, part);
    l.insert("app.kubernetes.io/part-of".into(), PART_OF.into());
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    l.insert(
        "app.kubernetes.io/version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    l
}

/// Stable labels a Service or PDB selects pods by.
pub fn selector(stack: &VoiceChatStack, part: Option<Part>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(INSTANCE_LABEL.into(), stack.name_any());
    if let Some(p) = part {
        l.insert("app.kubernetes.io/name".into(), p.as_str().into());
        l.insert("app.kubernetes.io/component".into(), p.as_str().into());
    }
    l
}

/// Label selector of everything the operator manages, in every stack
/// (what its watches of children select).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Label selector of one stack's children.
pub fn children_selector(stack_name: &str) -> String {
    format!("{INSTANCE_LABEL}={stack_name},{}", managed_selector())
}

/// Labels as a label selector, `key=value,...`.
pub fn selector_query(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A child's name: `<stack>-<suffix>`.
pub fn name(stack: &VoiceChatStack, suffix: &str) -> String {
    format!("{}-{suffix}", stack.name_any())
}

/// Metadata of a child: name, namespace, labels, and the stack as its
/// controlling owner (so deleting the stack collects it).
pub fn child_meta(stack: &VoiceChatStack, suffix: &str, part: Option<Part>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name(stack, suffix)),
        namespace: stack.namespace(),
        labels: Some(labels(stack, part)),
        owner_references: owner(stack).map(|o| vec![o]),
        ..Default::default()
    }
}

fn owner(stack: &VoiceChatStack) -> Option<OwnerReference> {
    stack.controller_owner_ref(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn selectors_select_what_the_labels_say() {
        let stack = fixtures::stack();
        assert_eq!(
            children_selector("demo"),
            "app.kubernetes.io/instance=demo,app.kubernetes.io/managed-by=voicechat-operator"
        );
        let labels = labels(&stack, Some(Part::Voice));
        for pair in children_selector("demo").split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            assert_eq!(labels[k], v, "a child carries {pair}");
        }
        assert_eq!(
            selector_query(&selector(&stack, Some(Part::Voice))),
            "app.kubernetes.io/component=voice,app.kubernetes.io/instance=demo,app.kubernetes.io/name=voice"
        );
    }
}
