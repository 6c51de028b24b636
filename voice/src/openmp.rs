//! How whisper.cpp's threads wait for each other. They meet at a barrier
//! after every step of the model; libgomp's default is to spin there, so
//! when another process holds a core, the thread that arrived first burns
//! the CPU the late one needs (docs/benchmarks.md: with one core busy, 2.8x
//! slower spinning, 1.1x waiting passively). libgomp reads
//! `OMP_WAIT_POLICY` once, as it loads, before `main`: a process started
//! without it therefore re-executes itself with `passive` set.

use std::os::unix::process::CommandExt;
use std::process::Command;

pub const WAIT_POLICY: &str = "OMP_WAIT_POLICY";

/// Returns at once when `OMP_WAIT_POLICY` is set (the operator's choice
/// stands); else replaces the process with itself, same arguments, and
/// `OMP_WAIT_POLICY=passive`. If that fails, says so and returns.
pub fn reexec_with_passive_waiting(program: &str) {
    if std::env::var_os(WAIT_POLICY).is_some() {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return warn(program, &e),
    };
    let mut args = std::env::args_os();
    let mut command = Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let error = command.args(args).env(WAIT_POLICY, "passive").exec();
    warn(program, &error);
}

fn warn(program: &str, error: &std::io::Error) {
    eprintln!(
        "{program}: cannot restart with {WAIT_POLICY}=passive ({error}); Whisper's threads will spin while they wait"
    );
}
