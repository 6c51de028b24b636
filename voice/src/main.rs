//! `voicechat-voice [serve]` runs the service.

use std::process::ExitCode;

use voicechat_voice::app::{self, StartError};
use voicechat_voice::config::VoiceConfig;
use voicechat_voice::state::AppState;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("--version") => {
            println!("voicechat-voice {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(_) => {
            eprintln!("usage: voicechat-voice [serve | --version]");
            return ExitCode::from(2);
        }
    }
    voicechat_common::telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "voice service failed");
            eprintln!("voicechat-voice: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), StartError> {
    let config = VoiceConfig::from_env()?;
    let addr = config.listen;
    let state = AppState::from_config(config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    tracing::info!(%addr, profile = ?state.config.profile, "voice service listening");
    app::serve(listener, state, voicechat_common::shutdown::signal()).await
}
