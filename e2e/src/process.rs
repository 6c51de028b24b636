//! A child process that cannot outlive its test: killed on drop, and
//! (through `PR_SET_PDEATHSIG`, see `voicechat_testkit::child`) killed by
//! the kernel if the test process dies without unwinding (a timeout's
//! SIGKILL).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::HarnessError;

pub struct ManagedProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, HarnessError> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(HarnessError::io(format!("open {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(HarnessError::io("clone a log handle"))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = voicechat_testkit::child::spawn_tied_to_process(command)
            .map_err(HarnessError::io(format!("start {name}")))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Whether the process is alive (not exited, not a zombie), without
    /// reaping it: usable through a shared reference.
    pub fn is_running(&self) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // The state follows the parenthesised command name.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            })
            .is_some_and(|state| state != 'Z' && state != 'X')
    }

    /// Fails when the process has already exited.
    pub fn check_running(&mut self) -> Result<(), HarnessError> {
        let Some(child) = self.child.as_mut() else {
            return Err(HarnessError::Exited {
                what: self.name.clone(),
                status: "stopped".into(),
                log_tail: self.log_tail(30),
            });
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(HarnessError::Exited {
                what: self.name.clone(),
                status: status.to_string(),
                log_tail: self.log_tail(30),
            }),
            Err(e) => Err(HarnessError::io(format!("wait for {}", self.name))(e)),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns the exit status text.
    pub fn terminate(&mut self, grace: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".into();
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => break,
            }
        }
        let _ = child.kill();
        match child.wait() {
            Ok(status) => format!("{status} (killed after {} s)", grace.as_secs()),
            Err(e) => format!("killed; wait failed: {e}"),
        }
    }

    /// SIGSTOP: the process stalls (a paused VM, a partitioned node) until
    /// [`ManagedProcess::resume`].
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`ManagedProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
        {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGKILL now: a crash, for fault tests.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(5));
    }
}

/// The last `lines` lines of a log file (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
