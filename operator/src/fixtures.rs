//! What the unit tests build on (as kube-rs's controller-rs keeps them):
//! one test stack, and [`crate::controller::Context::test`], a context over
//! a fake API server that keeps the objects written to it.

mod api_server;

pub use api_server::{Seen, Store, empty_store, run_reconcile, settled, writes};

use crate::crd::{VoiceChatStack, VoiceChatStackSpec};

/// The stack every test starts from: `demo` in `apps`, with a uid (for the
/// children's owner references), generation 1 and an empty spec.
pub fn stack() -> VoiceChatStack {
    let mut s = VoiceChatStack::new("demo", VoiceChatStackSpec::default());
    s.metadata.namespace = Some("apps".into());
    s.metadata.uid = Some("1234-uid".into());
    s.metadata.generation = Some(1);
    s
}

impl VoiceChatStack {
    /// The stack with this spec.
    pub fn with_spec(mut self, spec: VoiceChatStackSpec) -> Self {
        self.spec = spec;
        self
    }

    /// The stack at this generation.
    pub fn at_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }
}
