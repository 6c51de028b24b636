//! The real operator binary as a process, with its own kubeconfig (a
//! ServiceAccount's token, so RBAC applies) and its HTTP endpoints on a
//! free port.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::control_plane::{free_port, http_get};
use crate::process::ManagedProcess;

pub struct OperatorProcess {
    process: ManagedProcess,
    http_port: u16,
}

impl OperatorProcess {
    /// Starts `binary run` and waits for `/readyz`.
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, HarnessError> {
        let http_port = free_port()?;
        let mut cmd = Command::new(binary);
        cmd.arg("run")
            .env("KUBECONFIG", kubeconfig)
            .env("OPERATOR_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env(
                "RUST_LOG",
                std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut process = ManagedProcess::spawn("voicechat-operator", cmd, log)?;
        let started = Instant::now();
        loop {
            process.check_running()?;
            if http_get(http_port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(HarnessError::NotReady {
                    what: "voicechat-operator".into(),
                    seconds: 30,
                    log_tail: process.log_tail(30),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { process, http_port })
    }

    pub fn pause(&self) {
        self.process.pause();
    }

    pub fn resume(&self) {
        self.process.resume();
    }

    /// The body of `/readyz` (`ok: leader`, `ok: standby ...`).
    pub fn readiness(&self) -> Option<String> {
        let response = http_get(self.http_port, "/readyz")?;
        response.split("\r\n\r\n").nth(1).map(str::to_owned)
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> Option<String> {
        let response = http_get(self.http_port, "/metrics")?;
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
    }

    /// Reconciles finished so far, by any result.
    pub fn reconciles(&self) -> u64 {
        self.metrics().map_or(0, |m| {
            sum_counter(&m, "voicechat_operator_reconciles_total")
        })
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// Resident memory now (VmRSS) in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn check_running(&mut self) -> Result<(), HarnessError> {
        self.process.check_running()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// SIGTERM (a graceful stop); returns the exit status text.
    pub fn stop(mut self) -> String {
        self.process.terminate(Duration::from_secs(10))
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        self.process.kill();
    }
}

/// Sum of every sample of a counter family in Prometheus text.
pub fn sum_counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_a_counter_family() {
        let text = "# HELP x\nvoicechat_operator_reconciles_total{result=\"ok\"} 7\nvoicechat_operator_reconciles_total{result=\"ApplyFailed\"} 2\nvoicechat_operator_reconciles_total_other 100\n";
        assert_eq!(
            super::sum_counter(text, "voicechat_operator_reconciles_total"),
            9
        );
    }
}
