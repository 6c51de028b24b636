//! Reads the stack's current loader Job and its pods (cached; only a
//! running loader's log is asked of the API server): the Job's state,
//! the last finished pod's report (termination message) and a running
//! pod's progress (the tail of its log). A Job that gave up on errors that
//! may pass is deleted, so that the next reconcile starts a new one.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;

use kube::Api;
use kube::api::{DeleteParams, LogParams};
use voicechat_common::models::LoaderReport;

use super::ReconcileError;
use crate::build::workloads::LOADER_CONTAINER;
use crate::cache::ChildCache;
use crate::status::models::{LoaderObserved, LoaderState, parse_loader_log};

/// Log lines of a running loader that are read for its progress.
const LOG_TAIL_LINES: i64 = 40;

pub async fn observe(
    client: &kube::Client,
    cache: &ChildCache,
    namespace: &str,
    job_name: &str,
) -> Result<LoaderObserved, ReconcileError> {
    let Some(job) = cache.get::<Job>(namespace, job_name) else {
        return Ok(LoaderObserved::default());
    };
    let mut observed = LoaderObserved {
        state: job_state(&job),
        ..Default::default()
    };
    if observed.state == LoaderState::Succeeded {
        return Ok(observed);
    }
    let mut listed = cache.matching::<Pod>(
        namespace,
        &BTreeMap::from([(
            "batch.kubernetes.io/job-name".to_owned(),
            job_name.to_owned(),
        )]),
    );
    listed.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    observed.report = listed.iter().rev().find_map(|p| report_of(p));
    if let Some(running) = listed
        .iter()
        .rev()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        && let Some(name) = &running.metadata.name
    {
        let params = LogParams {
            container: Some(LOADER_CONTAINER.into()),
            tail_lines: Some(LOG_TAIL_LINES),
            ..Default::default()
        };
        // Progress is a nicety: a log that cannot be read leaves it out.
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        match pods.logs(name, &params).await {
            Ok(log) => parse_loader_log(&log, &mut observed),
            Err(e) => tracing::debug!(pod = %name, error = %e, "cannot read the loader's log"),
        }
    }
    if observed.state == (LoaderState::Failed { permanent: false }) {
        tracing::info!(job = %job_name, "the models loader gave up on errors that may pass; starting a new one");
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        match jobs.delete(job_name, &DeleteParams::background()).await {
            // Gone already: the cache had not seen the deletion yet.
            Err(e) if !crate::apply::is_not_found(&e) => return Err(ReconcileError::Prune(e)),
            _ => {}
        }
    }
    Ok(observed)
}

fn job_state(job: &Job) -> LoaderState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let is = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if is("Complete").is_some() {
        return LoaderState::Succeeded;
    }
    if let Some(failed) = is("Failed") {
        // The pod failure policy's FailJob: the loader exited with its
        // permanent-failure status.
        let permanent = failed.reason.as_deref() == Some("PodFailurePolicy");
        return LoaderState::Failed { permanent };
    }
    LoaderState::Running
}

/// The loader's report in a finished pod's termination message.
fn report_of(pod: &Pod) -> Option<LoaderReport> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == LOADER_CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
}
