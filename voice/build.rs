//! Native libraries for the link. espeak-ng (built by espeak-rs-sys for
//! Piper) uses libsonic, but its build script does not ask the linker
//! for it. The Vosk engine links `libvosk.so`, which comes from
//! `scripts/fetch-models.sh`: without it the build stops with one line
//! saying what to run first, not a linker error (ONNX Runtime is loaded at
//! run time and needs nothing here).

use std::path::Path;

fn main() {
    println!("cargo::rustc-link-lib=sonic");
    println!("cargo::rerun-if-env-changed=LIBRARY_PATH");
    let from_env = std::env::var("LIBRARY_PATH").unwrap_or_default();
    let system = [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/lib",
    ];
    let found = from_env
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(system)
        .any(|dir| Path::new(dir).join("libvosk.so").exists());
    if !found {
        println!(
            "cargo::error=libvosk.so is not on LIBRARY_PATH: run `./scripts/fetch-models.sh && source ~/.cache/voicechat/env.sh` first"
        );
    }
}
