//! `remove_on_success`: a test process's directory goes when the process exits without a
//! panic, and stays after a panic. The process under test is this binary re-run with only
//! the ignored `child` test selected.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DIR_VAR: &str = "REMOVE_ON_SUCCESS_DIR";
const PANIC_VAR: &str = "REMOVE_ON_SUCCESS_PANIC";

/// Registers the directory named by the environment and panics if asked to.
#[test]
#[ignore = "run by the other tests as a child process"]
fn child() {
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).expect("run by the other tests only"));
    e2e_tests::remove_on_success(&dir).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(std::env::var_os(PANIC_VAR).is_none(), "failing on purpose");
}

/// Runs `child` on a fresh directory holding a file; returns the directory and whether the
/// child passed.
fn run_child(parent: &Path, panic: bool) -> (PathBuf, bool) {
    let dir = parent.join("work");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/disk.raw"), b"big").unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--ignored", "--nocapture"])
        .env(DIR_VAR, &dir);
    if panic {
        cmd.env(PANIC_VAR, "1");
    }
    let out = cmd.output().unwrap();
    (dir, out.status.success())
}

/// Waits until no process (the watcher) has `dir` on its command line.
fn wait_for_watcher(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == needle))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while running() {
        assert!(
            Instant::now() < deadline,
            "the watcher of {} did not end",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_passing_process_leaves_no_directory() {
    let parent = tempfile::tempdir().unwrap();
    let (dir, passed) = run_child(parent.path(), false);
    assert!(passed);
    wait_for_watcher(&dir);
    assert!(!dir.exists(), "{} is still there", dir.display());
}

#[test]
fn a_panic_keeps_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let (dir, passed) = run_child(parent.path(), true);
    assert!(!passed);
    wait_for_watcher(&dir);
    assert!(dir.join("sub/disk.raw").exists(), "{} was removed", dir.display());
}
