//! The lifecycle lock: one of `start`, `backup`, `recover`, `database-migrate`, `update-ecs`
//! (and every later command that stops the app or reads the data as a whole) runs at a time.
//!
//! An advisory `flock` on /run/ecs/lifecycle.lock: the kernel drops it when the holder exits,
//! however it exits, so a crash never leaves a stale lock. The holder writes who it is into the
//! file, so the one refused can say what it waits for.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::context::Context;

/// Who holds the lock, as its holder wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub command: String,
    pub pid: u32,
    /// Seconds since the epoch.
    pub since: f64,
}

/// Another command holds the lock.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.holder.as_ref(), .path))]
pub struct Busy {
    pub holder: Option<Holder>,
    pub path: PathBuf,
}

fn describe(holder: Option<&Holder>, path: &Path) -> String {
    match holder {
        Some(h) => format!(
            "`ecs-agent {}` (pid {}) has been running for {:.0}s and holds the lifecycle lock {}; \
             run it again when that has finished",
            h.command,
            h.pid,
            (crate::status::now() - h.since).max(0.0),
            path.display()
        ),
        None => format!(
            "another process holds the lifecycle lock {}; run it again when that has finished",
            path.display()
        ),
    }
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Leave no holder behind for the next reader; the flock itself goes with the file.
        let _ = self.file.set_len(0);
    }
}

pub fn lock_path(ctx: &Context) -> PathBuf {
    ctx.run_dir.join("lifecycle.lock")
}

/// Takes the lock for `command`, waiting up to `wait` for the current holder (zero: refuse at once).
pub fn acquire(ctx: &Context, command: &str, wait: Duration) -> anyhow::Result<Lock> {
    let path = lock_path(ctx);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("opening the lifecycle lock {}", path.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Busy {
                    holder: holder_of(&mut file),
                    path,
                }
                .into());
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
    let me = Holder {
        command: command.into(),
        pid: std::process::id(),
        since: crate::status::now(),
    };
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&serde_json::to_vec(&me)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Lock { file, path })
}

fn holder_of(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// The current holder, if any (for `ecs-agent status`).
pub fn holder(ctx: &Context) -> Option<Holder> {
    let path = lock_path(ctx);
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        // Nobody holds it: whatever the file says is over.
        Ok(()) => None,
        Err(_) => holder_of(&mut file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path) -> Context {
        Context {
            run_dir: dir.join("run"),
            ..Context::default()
        }
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_and_the_lock_is_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let first = acquire(&ctx, "backup", Duration::ZERO).unwrap();
        let e = acquire(&ctx, "update-ecs", Duration::from_millis(300)).unwrap_err();
        let busy = e.downcast_ref::<Busy>().expect("a Busy error");
        assert_eq!(busy.holder.as_ref().unwrap().command, "backup");
        let text = e.to_string();
        assert!(text.starts_with("`ecs-agent backup` (pid "), "{text}");
        assert_eq!(holder(&ctx).unwrap().pid, std::process::id());
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&first.path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        drop(first);
        assert!(holder(&ctx).is_none());
        acquire(&ctx, "update-ecs", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_lock_path_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        std::fs::create_dir_all(&ctx.run_dir).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), lock_path(&ctx)).unwrap();
        let e = format!("{:#}", acquire(&ctx, "backup", Duration::ZERO).unwrap_err());
        assert!(e.contains("opening the lifecycle lock"), "{e}");
        assert!(!dir.path().join("elsewhere").exists());
    }
}
