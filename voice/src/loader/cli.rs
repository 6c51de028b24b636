//! `voicechat-voice models fetch [--dest DIR] [--mirror URL] [NAME...]`:
//! catalog names from the arguments, and the plan the operator hands over
//! in `MODELS_PLAN` (JSON, URLs already through the mirror). Settings from
//! the environment: `MODELS_DEST` (default /models), `MODELS_MIRROR`,
//! `MODELS_RESULT_FILE` (where the report goes; the Job's termination
//! log), `MODELS_READ_TIMEOUT_SECS` (30), `MODELS_ATTEMPTS` (5).
//!
//! Exit status: 0 when every model is in the cache, 3 when one failed in a
//! way a retry cannot change (digest mismatch, 404, bad plan), 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use voicechat_common::config::env_string;
use voicechat_common::models::{
    LoaderReport, ModelOutcome, OutcomePhase, PERMANENT_FAILURE_EXIT, PlannedModel, catalog,
};

use super::fetch::{FetchError, FetchOptions, Fetched, fetch_file};

const USAGE: &str = "usage: voicechat-voice models fetch [--dest DIR] [--mirror URL] [NAME...]\n\
(names from `voicechat-operator models`; MODELS_PLAN adds a JSON plan)";

pub fn run(args: &[String]) -> ExitCode {
    let Some(("fetch", rest)) = args.split_first().map(|(a, r)| (a.as_str(), r)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let invocation = match Invocation::parse(rest) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("models fetch: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("models fetch: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (report, permanent) = runtime.block_on(invocation.fetch());
    let message = report.to_termination_message();
    println!("{message}");
    if let Some(path) = env_string("MODELS_RESULT_FILE")
        && let Err(e) = std::fs::write(&path, &message)
    {
        eprintln!("models fetch: cannot write the report to {path}: {e}");
    }
    if report.failed().next().is_none() {
        ExitCode::SUCCESS
    } else if permanent {
        ExitCode::from(PERMANENT_FAILURE_EXIT)
    } else {
        ExitCode::FAILURE
    }
}

struct Invocation {
    options: FetchOptions,
    /// Models, or why a requested one could not be planned.
    models: Vec<Result<PlannedModel, (String, String)>>,
}

impl Invocation {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut dest = PathBuf::from(env_string("MODELS_DEST").unwrap_or_else(|| "/models".into()));
        let mut mirror = env_string("MODELS_MIRROR");
        let mut names = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--dest" => dest = args.next().ok_or("--dest needs a folder")?.into(),
                "--mirror" => mirror = Some(args.next().ok_or("--mirror needs a URL")?.clone()),
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                name => names.push(name.to_owned()),
            }
        }
        let mut models: Vec<Result<PlannedModel, (String, String)>> = names
            .iter()
            .map(|name| {
                catalog()
                    .get(name)
                    .and_then(|m| m.plan(mirror.as_deref()))
                    .map_err(|e| (name.clone(), e.to_string()))
            })
            .collect();
        if let Some(plan) = env_string("MODELS_PLAN") {
            match serde_json::from_str::<Vec<PlannedModel>>(&plan) {
                Ok(planned) => models.extend(planned.into_iter().map(Ok)),
                Err(e) => models.push(Err(("MODELS_PLAN".into(), format!("not a plan: {e}")))),
            }
        }
        if models.is_empty() {
            return Err("no model named and no MODELS_PLAN".into());
        }
        let mut options = FetchOptions::new(dest);
        if let Some(secs) = seconds("MODELS_READ_TIMEOUT_SECS")? {
            options.read_timeout = secs;
        }
        if let Some(attempts) = env_string("MODELS_ATTEMPTS") {
            options.attempts = attempts
                .parse()
                .ok()
                .filter(|&n| (1..=100).contains(&n))
                .ok_or("MODELS_ATTEMPTS must be 1-100")?;
        }
        Ok(Self { options, models })
    }

    /// The report, and whether a model failed in a way a retry cannot
    /// change ([`FetchError::is_permanent`], or a plan that is not one).
    async fn fetch(self) -> (LoaderReport, bool) {
        let client = match reqwest::Client::builder()
            .connect_timeout(self.options.connect_timeout)
            .read_timeout(self.options.read_timeout)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                let models = self
                    .models
                    .iter()
                    .map(|m| failed(&name_of(m), "InvalidPlan", e.to_string()))
                    .collect();
                return (LoaderReport { models }, true);
            }
        };
        let mut report = LoaderReport::default();
        let mut permanent = false;
        for model in self.models {
            let outcome = match model {
                Err((name, reason)) => {
                    permanent = true;
                    failed(&name, "InvalidPlan", reason)
                }
                Ok(model) => match fetch_model(&client, &model, &self.options).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        permanent |= e.is_permanent();
                        failed(&model.name, e.reason(), e.to_string())
                    }
                },
            };
            report.models.push(outcome);
        }
        (report, permanent)
    }
}

fn name_of(model: &Result<PlannedModel, (String, String)>) -> String {
    match model {
        Ok(m) => m.name.clone(),
        Err((name, _)) => name.clone(),
    }
}

async fn fetch_model(
    client: &reqwest::Client,
    model: &PlannedModel,
    options: &FetchOptions,
) -> Result<ModelOutcome, FetchError> {
    let mut downloaded = 0;
    for file in &model.files {
        match fetch_file(client, file, options).await {
            Ok(Fetched::AlreadyPresent) => {}
            Ok(Fetched::Downloaded {
                bytes,
                resumed_from,
            }) => downloaded += bytes - resumed_from,
            Err(e) => {
                tracing::error!(model = %model.name, reason = e.reason(), error = %e, "model not fetched");
                eprintln!("failed {}: {e}", model.name);
                return Err(e);
            }
        }
    }
    eprintln!("ready {}", model.name);
    Ok(ModelOutcome {
        name: model.name.clone(),
        phase: OutcomePhase::Ready,
        reason: None,
        message: None,
        downloaded,
    })
}

fn failed(name: &str, reason: &str, message: String) -> ModelOutcome {
    ModelOutcome {
        name: name.to_owned(),
        phase: OutcomePhase::Failed,
        reason: Some(reason.to_owned()),
        message: Some(message),
        downloaded: 0,
    }
}

fn seconds(name: &str) -> Result<Option<Duration>, String> {
    env_string(name)
        .map(|v| {
            v.parse::<u64>()
                .ok()
                .filter(|&s| (1..=3600).contains(&s))
                .map(Duration::from_secs)
                .ok_or_else(|| format!("{name} must be 1-3600 seconds, got {v:?}"))
        })
        .transpose()
}
