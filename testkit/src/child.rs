//! Children that cannot outlive the test process. `PR_SET_PDEATHSIG`
//! fires when the *thread* that forked the child exits, and a test's thread
//! ends with the test: a server shared by a whole test binary (a `static`)
//! would be killed under the next test, and one spawned without it leaks
//! when the binary exits (statics are never dropped). So every child is
//! forked by one thread that lives as long as the process: the kernel
//! kills the child when the test process exits, however it exits.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

type Request = (Command, Sender<io::Result<Child>>);

fn spawner() -> &'static Sender<Request> {
    static SPAWNER: OnceLock<Sender<Request>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    // SAFETY: prctl is async-signal-safe and touches only the child.
                    unsafe {
                        command.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the testkit spawner thread");
        tx
    })
}

/// Spawns `command`; the kernel kills the child (SIGKILL) when this
/// process exits.
pub fn spawn_tied_to_process(command: Command) -> io::Result<Child> {
    let (reply, answer) = channel();
    spawner()
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}
