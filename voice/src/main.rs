//! `voicechat-voice [serve]` runs the service (HTTP, and Wyoming on its
//! own port); `voicechat-voice models
//! fetch ...` fills a models cache (the operator's loader Job).

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use voicechat_common::service::StartError;
use voicechat_voice::config::VoiceConfig;
use voicechat_voice::state::AppState;
use voicechat_voice::{app, wyoming};

fn main() -> ExitCode {
    voicechat_voice::openmp::reexec_with_passive_waiting("voicechat-voice");
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => voicechat_common::service::run_process("voicechat-voice", serve),
        Some("models") => {
            voicechat_common::telemetry::init();
            let args: Vec<String> = std::env::args().skip(2).collect();
            voicechat_voice::loader::run(&args)
        }
        Some("--version") => {
            println!("voicechat-voice {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(_) => {
            eprintln!("usage: voicechat-voice [serve | models fetch ... | --version]");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> Result<(), StartError> {
    let config = VoiceConfig::from_env()?;
    let addr = config.listen;
    let wyoming_addr = config.wyoming.listen;
    let state = AppState::from_config(config)?;
    let listener = voicechat_common::service::bind(addr).await?;
    let wyoming_listener = match wyoming_addr {
        Some(addr) => Some(voicechat_common::service::bind(addr).await?),
        None => None,
    };
    tracing::info!(%addr, wyoming = ?wyoming_addr, profile = ?state.config.profile, "voice service listening");
    let stop = CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        voicechat_common::shutdown::signal().await;
        signalled.cancel();
    });
    let wyoming = async {
        if let Some(listener) = wyoming_listener {
            wyoming::serve(listener, state.clone(), stop.clone()).await;
        }
    };
    let (http, ()) = tokio::join!(
        app::serve(listener, state.clone(), stop.clone().cancelled_owned()),
        wyoming
    );
    http
}
