//! `voicechat-smoke`: one scripted conversation with a running stack (see
//! `voicechat_e2e::smoke`), printing what each step took. Exits non-zero,
//! naming the step, when any part fails.
//!
//! Settings (environment): `CHAT_URL` (http://127.0.0.1:8007),
//! `VOICE_URL` (http://127.0.0.1:8006), `TOKEN` (required: a JWT the
//! services accept), `SMOKE_PROMPT`.

use std::process::ExitCode;

use voicechat_e2e::smoke::{Target, converse};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let token = setting("TOKEN", "");
    if token.is_empty() {
        eprintln!("voicechat-smoke: TOKEN is required (scripts/run-local.sh prints one)");
        return ExitCode::from(2);
    }
    let target = Target {
        chat_url: setting("CHAT_URL", "http://127.0.0.1:8007"),
        voice_url: setting("VOICE_URL", "http://127.0.0.1:8006"),
        token,
        prompt: setting(
            "SMOKE_PROMPT",
            "Write one short sentence about the weather today.",
        ),
    };
    match converse(&target).await {
        Ok(report) => {
            println!("smoke conversation passed\n{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("smoke conversation FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
