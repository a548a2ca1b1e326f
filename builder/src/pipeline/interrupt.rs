//! SIGINT/SIGTERM during a build or any command that writes outputs (`crate::output`): the handler only sets a flag and passes the signal on to our
//! direct children (mmdebstrap, mke2fs, qemu-img), so the running step fails, the error
//! unwinds normally and every temporary file is removed by its guard's `Drop`. Nothing is left
//! under a final name and the rootfs cache only ever holds complete archives.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use host_util::{CommandExt, Tool};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

const KILL: Tool = Tool::new("kill", "procps");

/// The command was interrupted by a signal.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: stopped by a signal before any output was written; temporary files were removed")]
pub struct Interrupted;

/// Installs the handler once per process. Without it a signal kills the process outright and
/// temporary files stay behind (still never under a final name).
pub fn install() {
    INSTALL.call_once(|| {
        let result = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            forward_to_children();
        });
        if let Err(e) = result {
            tracing::warn!("installing the SIGINT handler: {e}");
        }
    });
}

/// Whether a signal arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Err(Interrupted) once a signal arrived: call between steps.
pub fn check() -> Result<(), Interrupted> {
    if interrupted() { Err(Interrupted) } else { Ok(()) }
}

/// Children of `pid`, from /proc/<pid>/task/*/children (one line of pids per thread).
fn children_of(pid: &str) -> Vec<String> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(text.split_whitespace().map(str::to_string));
        }
    }
    pids
}

/// Every descendant: mmdebstrap's apt and dpkg run in a user namespace we own, where the
/// terminal's SIGINT would reach them but a signal to mmdebstrap alone would not.
fn children() -> Vec<String> {
    let mut all = Vec::new();
    let mut queue = children_of("self");
    while let Some(pid) = queue.pop() {
        queue.extend(children_of(&pid));
        all.push(pid);
    }
    all
}

fn forward_to_children() {
    let pids = children();
    if pids.is_empty() {
        return;
    }
    if let Ok(mut cmd) = KILL.command() {
        // Children that already exited (they got the terminal's SIGINT too) make kill fail: fine.
        let _ = cmd.arg("-INT").args(&pids).run_checked();
    }
}
