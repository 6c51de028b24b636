//! `voicechat-operator run` runs the controller, with `/metrics`, `/livez`
//! and `/readyz` on `OPERATOR_HTTP_ADDR` (default `0.0.0.0:8080`); with
//! `LEADER_ELECT=true` only the replica holding the Lease reconciles;
//! `voicechat-operator crd` prints the CRD YAML (what `crds/` holds);
//! `voicechat-operator models` prints the models catalog.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use voicechat_operator::controller::{self, Context};
use voicechat_operator::leader::{self, LeaderSettings, Leadership, WriteGate};
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
    let election = LeaderSettings::from_lookup(|name| std::env::var(name).ok())?;
    let mut config = kube::Config::infer().await?;
    // The audit log tells replicas apart by their user agent.
    let identity = election
        .as_ref()
        .map_or_else(|| "single".to_owned(), |e| e.identity.clone());
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&format!(
            "voicechat-operator/{} ({identity})",
            env!("CARGO_PKG_VERSION")
        ))?,
    ));
    let metrics = OperatorMetrics::new()?;
    let leadership = Leadership::new();
    serve_http(metrics.clone(), leadership.clone(), election.is_some()).await?;
    let Some(election) = election else {
        metrics.leader.set(1);
        let client = kube::Client::try_from(config)?;
        controller::run(Arc::new(Context::new(client, settings, metrics))).await;
        return Ok(());
    };
    // The Lease's own client is not gated; the controller's refuses to
    // write whenever this replica does not lead.
    let lease_client = kube::Client::try_from(config.clone())?;
    let gated = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&WriteGate::new(leadership.clone()))
        .build();
    let leases: Api<Lease> = Api::namespaced(lease_client, &election.lease_namespace);
    tracing::info!(identity = %election.identity, lease = %election.lease_name, namespace = %election.lease_namespace, "leader election on");
    tokio::spawn(leader::keep_lease(
        leases.clone(),
        election.clone(),
        leadership.clone(),
    ));
    let mut changes = leadership.subscribe();
    let stop = voicechat_common::shutdown::signal();
    tokio::pin!(stop);
    loop {
        // Standby until this replica leads.
        tokio::select! {
            _ = changes.wait_for(|leading| *leading) => {}
            () = &mut stop => break,
        }
        metrics.leader.set(1);
        metrics.leader_transitions.inc();
        tracing::info!(identity = %election.identity, "leading: the controller starts");
        let ctx = Arc::new(Context::new(
            gated.clone(),
            settings.clone(),
            metrics.clone(),
        ));
        tokio::select! {
            () = controller::run(ctx) => break,
            _ = changes.wait_for(|leading| !*leading) => {
                tracing::warn!(identity = %election.identity, "leadership lost: the controller stops");
            }
            () = &mut stop => break,
        }
        metrics.leader.set(0);
    }
    leader::release(&leases, &election, &leadership).await;
    Ok(())
}

/// `/livez`, `/readyz` and `/metrics`. A standby is ready (200) too: it is
/// healthy and takes over when the leader goes, and a rolling update of
/// two replicas could never finish if it were not; its body says which it
/// is, and the `leader` metric.
async fn serve_http(
    metrics: OperatorMetrics,
    leadership: Arc<Leadership>,
    elected: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let addr = voicechat_common::config::env_string("OPERATOR_HTTP_ADDR")
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let registry = metrics.registry.clone();
    let http = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let leadership = leadership.clone();
                async move {
                    if !elected || leadership.is_leader() {
                        "ok: leader"
                    } else {
                        "ok: standby (not the leader)"
                    }
                }
            }),
        )
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
    Ok(())
}
