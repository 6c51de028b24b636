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
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Voice => "voice",
            Self::Redis => "redis",
            Self::Ollama => "ollama",
        }
    }
}

pub const MANAGED_BY: &str = "voicechat-operator";
pub const PART_OF: &str = "voicechatstack";

/// Labels every child carries; the selector labels are the first two.
pub fn labels(stack: &VoiceChatStack, part: Option<Part>) -> BTreeMap<String, String> {
    let mut l = selector(stack, part);
    l.insert("app.kubernetes.io/part-of".into(), PART_OF.into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert(
        "app.kubernetes.io/version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    l
}

/// Stable labels a Service or PDB selects pods by.
pub fn selector(stack: &VoiceChatStack, part: Option<Part>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("app.kubernetes.io/instance".into(), stack.name_any());
    if let Some(p) = part {
        l.insert("app.kubernetes.io/name".into(), p.as_str().into());
        l.insert("app.kubernetes.io/component".into(), p.as_str().into());
    }
    l
}

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
