//! Where each model of a stack stands, from what its loader Job and pods
//! report (pure): `Pending` before the Job runs, `Downloading` (with bytes,
//! from the loader's progress lines) while it does, `Ready` or `Failed`
//! with the reason from the loader's report (its termination message).

use std::collections::BTreeMap;

use voicechat_common::models::{LoaderReport, OutcomePhase};

use crate::crd::{ModelPhase, ModelStatus};
use crate::models::StackModels;

/// What the cluster says about the stack's current loader Job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoaderObserved {
    pub state: LoaderState,
    /// The report of the loader's last finished pod, if any.
    pub report: Option<LoaderReport>,
    /// From a running loader's log: bytes so far and in all, by file path.
    pub progress: BTreeMap<String, (u64, Option<u64>)>,
    /// Models a running loader's log says are done.
    pub done: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoaderState {
    /// No Job yet (it is being created).
    #[default]
    Absent,
    Running,
    Succeeded,
    /// The Job gave up: `permanent` when a model can never load as given
    /// (digest mismatch, 404); else a new Job is started.
    Failed {
        permanent: bool,
    },
}

/// The models' statuses and whether all are Ready, with a message.
pub fn models_status(
    plan: &StackModels,
    observed: &LoaderObserved,
) -> (Vec<ModelStatus>, bool, String) {
    let statuses: Vec<ModelStatus> = plan
        .models
        .iter()
        .map(|model| {
            let outcome = observed
                .report
                .as_ref()
                .and_then(|r| r.models.iter().find(|o| o.name == model.name));
            let mut status = ModelStatus {
                name: model.name.clone(),
                phase: ModelPhase::Pending,
                bytes: None,
                total_bytes: None,
                reason: None,
                message: None,
            };
            if observed.state == LoaderState::Succeeded || observed.done.contains(&model.name) {
                status.phase = ModelPhase::Ready;
                return status;
            }
            if let Some(outcome) = outcome
                && outcome.phase == OutcomePhase::Failed
            {
                status.phase = ModelPhase::Failed;
                status.reason = outcome.reason.clone();
                status.message = outcome.message.clone();
                // A retry is under way: its progress goes with the reason.
                if observed.state != LoaderState::Running {
                    return status;
                }
            }
            if observed.state == LoaderState::Running {
                let progress: Vec<(u64, Option<u64>)> = model
                    .files
                    .iter()
                    .filter_map(|f| observed.progress.get(&f.path).copied())
                    .collect();
                if !progress.is_empty() {
                    status.phase = ModelPhase::Downloading;
                    status.bytes = Some(progress.iter().map(|p| p.0 as i64).sum());
                    let total: u64 = model.files.iter().filter_map(|f| f.size).sum();
                    status.total_bytes = (total > 0).then_some(total as i64);
                }
            }
            status
        })
        .collect();
    let ready = observed.state == LoaderState::Succeeded;
    let message = if ready {
        format!("{} models in the cache", statuses.len())
    } else {
        let failed: Vec<String> = statuses
            .iter()
            .filter(|s| s.phase == ModelPhase::Failed)
            .map(|s| {
                format!(
                    "{}: {}",
                    s.name,
                    s.message
                        .as_deref()
                        .or(s.reason.as_deref())
                        .unwrap_or("failed")
                )
            })
            .collect();
        let waiting = statuses
            .iter()
            .filter(|s| s.phase != ModelPhase::Ready)
            .count();
        match (observed.state, failed.is_empty()) {
            (LoaderState::Failed { permanent: true }, _) => {
                format!(
                    "models failed (fix the stack's models): {}",
                    failed.join("; ")
                )
            }
            (_, false) => format!("models failed, retrying: {}", failed.join("; ")),
            _ => format!("{waiting} of {} models loading", statuses.len()),
        }
    };
    (statuses, ready, message)
}

/// Progress and completion lines of the loader's log (`progress <path>
/// <bytes> <total|->`, `ready <name>`), the last of each file winning.
pub fn parse_loader_log(log: &str, observed: &mut LoaderObserved) {
    for line in log.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("progress") => {
                let (Some(path), Some(bytes)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(bytes) = bytes.parse::<u64>() else {
                    continue;
                };
                let total = words.next().and_then(|t| t.parse::<u64>().ok());
                observed.progress.insert(path.to_owned(), (bytes, total));
            }
            Some("ready") => {
                if let Some(name) = words.next()
                    && !observed.done.iter().any(|d| d == name)
                {
                    observed.done.push(name.to_owned());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::settings::OperatorSettings;
    use voicechat_common::models::ModelOutcome;
    use voicechat_common::stt_profile::SttProfile;

    fn plan() -> StackModels {
        crate::models::resolve(
            &fixtures::stack(),
            &OperatorSettings::default(),
            SttProfile::Cpu,
        )
        .unwrap()
    }

    #[test]
    fn each_state_of_the_loader_shows_in_each_model() {
        let plan = plan();
        let (statuses, ready, _) = models_status(&plan, &LoaderObserved::default());
        assert!(!ready);
        assert!(statuses.iter().all(|s| s.phase == ModelPhase::Pending));

        let mut running = LoaderObserved {
            state: LoaderState::Running,
            ..Default::default()
        };
        parse_loader_log(
            "progress piper/en_US-joe-medium.onnx 63201294 63201294 (100%)\n\
             ready piper/en_US-joe-medium\n\
             progress whisper/ggml-base.en-q8_0.bin 1000 81781811 (0%)\n\
             progress whisper/ggml-base.en-q8_0.bin 5000 81781811 (0%)\n\
             garbage line\nprogress x notanumber\n",
            &mut running,
        );
        let (statuses, ready, message) = models_status(&plan, &running);
        assert!(!ready);
        assert_eq!(statuses[0].phase, ModelPhase::Ready);
        assert_eq!(statuses[1].phase, ModelPhase::Downloading);
        assert_eq!(statuses[1].bytes, Some(5000));
        assert_eq!(statuses[1].total_bytes, Some(81781811));
        assert!(message.contains("1 of 2"), "{message}");

        let failed = LoaderObserved {
            state: LoaderState::Failed { permanent: true },
            report: Some(LoaderReport {
                models: vec![ModelOutcome {
                    name: "whisper/base.en-q8_0".into(),
                    phase: OutcomePhase::Failed,
                    reason: Some("DigestMismatch".into()),
                    message: Some("expected sha256:aa, got sha256:bb".into()),
                    downloaded: 0,
                }],
            }),
            ..Default::default()
        };
        let (statuses, ready, message) = models_status(&plan, &failed);
        assert!(!ready);
        assert_eq!(statuses[1].phase, ModelPhase::Failed);
        assert_eq!(statuses[1].reason.as_deref(), Some("DigestMismatch"));
        assert!(
            message.contains("expected sha256:aa, got sha256:bb"),
            "{message}"
        );

        let done = LoaderObserved {
            state: LoaderState::Succeeded,
            ..Default::default()
        };
        let (statuses, ready, _) = models_status(&plan, &done);
        assert!(ready);
        assert!(statuses.iter().all(|s| s.phase == ModelPhase::Ready));
    }
}
