//! `voicechat-voice [serve]` runs the service; `voicechat-voice models
//! fetch ...` fills a models cache (the operator's loader Job).

use std::process::ExitCode;

use voicechat_common::service::StartError;
use voicechat_voice::app;
use voicechat_voice::config::VoiceConfig;
use voicechat_voice::state::AppState;

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
    let state = AppState::from_config(config)?;
    let listener = voicechat_common::service::bind(addr).await?;
    tracing::info!(%addr, profile = ?state.config.profile, "voice service listening");
    app::serve(listener, state, voicechat_common::shutdown::signal()).await
}
