//! `voicechat-operator run` runs the controller, with `/metrics`, `/livez`
//! and `/readyz` on `OPERATOR_HTTP_ADDR` (default `0.0.0.0:8080`);
//! `voicechat-operator crd` prints the CRD YAML (what `crds/` holds);
//! `voicechat-operator models` prints the models catalog.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use voicechat_operator::controller::{self, Context};
use voicechat_operator::metrics::OperatorMetrics;
use voicechat_operator::settings::OperatorSettings;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("crd") => match voicechat_operator::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot render the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Some("models") => {
            print!("{}", voicechat_operator::models::catalog_table());
            ExitCode::SUCCESS
        }
        Some("run") => run(),
        Some("--version") => {
            println!("voicechat-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: voicechat-operator run | crd | models | --version");
            ExitCode::from(2)
        }
    }
}

fn run() -> ExitCode {
    voicechat_common::service::run_process("voicechat-operator", || async {
        voicechat_operator::install_crypto_provider();
        serve().await
    })
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let settings = OperatorSettings::from_env()?;
    let client = kube::Client::try_default().await?;
    let metrics = OperatorMetrics::new()?;
    let addr = voicechat_common::config::env_string("OPERATOR_HTTP_ADDR")
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let registry = metrics.registry.clone();
    let http = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { voicechat_common::http_metrics::render(&registry) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "operator HTTP endpoints listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, http).await {
            tracing::error!(error = %e, "operator HTTP server stopped");
        }
    });
    controller::run(Arc::new(Context::new(client, settings, metrics))).await;
    Ok(())
}
