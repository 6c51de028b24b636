//! `voicechat-chat [serve]` runs the service; `voicechat-chat mint-token
//! --user NAME [--ttl SECS]` prints a token signed with the configured
//! HS256 secret (for demos and local development).

use std::process::ExitCode;
use std::time::Duration;

use voicechat_chat::app;
use voicechat_chat::config::ChatConfig;
use voicechat_chat::state::AppState;
use voicechat_common::auth::AuthSettings;
use voicechat_common::service::StartError;

// glibc's malloc was a fifth of the service's CPU under load (many small,
// short-lived buffers per token); mimalloc's thread-local free lists take
// most of that back. Figures: docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: voicechat-chat [serve | mint-token --user NAME [--ttl SECS] | --version]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => run_server(),
        Some("mint-token") => mint_token(&args[1..]),
        Some("--version") => {
            println!("voicechat-chat {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(_) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run_server() -> ExitCode {
    voicechat_common::service::run_process("voicechat-chat", serve)
}

async fn serve() -> Result<(), StartError> {
    let config = ChatConfig::from_env()?;
    let addr = config.listen;
    let state = AppState::from_config(config)?;
    let listener = voicechat_common::service::bind(addr).await?;
    tracing::info!(%addr, llm = state.llm.name(), model = %state.config.llm.model, "chat service listening");
    app::serve(listener, state, voicechat_common::shutdown::signal()).await
}

fn mint_token(args: &[String]) -> ExitCode {
    let mut user = None;
    let mut ttl = 3600u64;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--user", Some(v)) => user = Some(v.clone()),
            ("--ttl", Some(v)) => match v.parse() {
                Ok(v) => ttl = v,
                Err(_) => {
                    eprintln!("--ttl: {v:?} is not a number of seconds");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(user) = user else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let settings = match AuthSettings::from_env() {
        Ok(AuthSettings::Local(s)) => s,
        Ok(AuthSettings::Remote { .. }) => {
            eprintln!("AUTH_VERIFY_URL is set: tokens come from that service, not from here");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match settings.mint(&user, Duration::from_secs(ttl)) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
