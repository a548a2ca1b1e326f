//! Helpers shared by the `ecs-build config` black-box tests (included with `mod`).

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use host_util::{CommandExt, Tool};

pub const EPOCH: &str = "1700000000";

/// The binary under test, with a fixed SOURCE_DATE_EPOCH and only warnings logged.
pub fn ecs_build() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ecs-build"));
    c.env("SOURCE_DATE_EPOCH", EPOCH).env("RUST_LOG", "warn");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("running ecs-build");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Exit 2 with exactly one error line on stderr (warnings about the input may come before it),
/// `error: ...`, which contains `needle`.
pub fn assert_bad_input(r: &Run, needle: &str) {
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.contains("WARN")).collect();
    assert_eq!(lines.len(), 1, "one line expected: {}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{}", r.stderr);
    assert!(lines[0].contains(needle), "`{needle}` not in: {}", r.stderr);
}

pub fn tool(program: &'static str, package: &'static str) -> Command {
    Tool::new(program, package)
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An operator key pair made by ssh-keygen; returns the public key file.
pub fn operator_key(dir: &Path) -> PathBuf {
    let key = dir.join("operator");
    if key.exists() {
        return dir.join("operator.pub");
    }
    tool("ssh-keygen", "openssh-client")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "operator@example.org",
            "-f",
        ])
        .arg(&key)
        .run_checked()
        .unwrap();
    dir.join("operator.pub")
}

pub fn original_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../appliance-env/tests/fixtures/original-env.yml")
}

/// Names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
