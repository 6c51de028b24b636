//! What each model of a plan came to: the loader writes it, the operator
//! reads it from the loader pod's termination message (at most 4 KiB, so
//! messages are cut).

use serde::{Deserialize, Serialize};

/// The most the kubelet keeps of a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// The loader's exit status when a model failed in a way a retry cannot
/// change (digest mismatch, 404, a bad plan): its Job fails at once.
pub const PERMANENT_FAILURE_EXIT: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutcomePhase {
    Ready,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelOutcome {
    pub name: String,
    pub phase: OutcomePhase,
    /// Failed: the error's stable name (`DigestMismatch`, `NotFound`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bytes downloaded by this run (0 when everything was cached).
    #[serde(default)]
    pub downloaded: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderReport {
    pub models: Vec<ModelOutcome>,
}

impl LoaderReport {
    pub fn failed(&self) -> impl Iterator<Item = &ModelOutcome> {
        self.models
            .iter()
            .filter(|m| m.phase == OutcomePhase::Failed)
    }

    /// Compact JSON within the termination message limit: messages are
    /// shortened until it fits.
    pub fn to_termination_message(&self) -> String {
        let mut report = self.clone();
        let mut limit = 600;
        loop {
            let text = serde_json::to_string(&report).unwrap_or_default();
            if text.len() <= TERMINATION_MESSAGE_LIMIT {
                return text;
            }
            if limit == 0 {
                // Still too long: no messages, then only the failed models
                // (a cut message would not parse at all).
                report.models.iter_mut().for_each(|m| m.message = None);
                report.models.retain(|m| m.phase == OutcomePhase::Failed);
                report.models.truncate(TERMINATION_MESSAGE_LIMIT / 128);
                return serde_json::to_string(&report).unwrap_or_default();
            }
            limit /= 2;
            for m in &mut report.models {
                if let Some(msg) = &mut m.message
                    && msg.len() > limit
                {
                    let cut = (0..=limit)
                        .rev()
                        .find(|&i| msg.is_char_boundary(i))
                        .unwrap_or(0);
                    msg.truncate(cut);
                    msg.push('…');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_fits_a_termination_message() {
        let report = LoaderReport {
            models: (0..20)
                .map(|i| ModelOutcome {
                    name: format!("piper/voice-{i}"),
                    phase: OutcomePhase::Failed,
                    reason: Some("DigestMismatch".into()),
                    message: Some("é".repeat(1000)),
                    downloaded: 0,
                })
                .collect(),
        };
        let text = report.to_termination_message();
        assert!(text.len() <= TERMINATION_MESSAGE_LIMIT, "{}", text.len());
        let back: LoaderReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back.models.len(), 20);
        assert_eq!(back.failed().count(), 20);
    }
}
