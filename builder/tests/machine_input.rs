//! machine.yml from careless and hostile hands: `ecs-build image` refuses an alias bomb, a huge
//! file, /dev/zero, a FIFO and a directory at once with exit 2 and the limit named; no mutation
//! of the default machine.yml panics the loader or names a line outside the file.

#[path = "../../appliance-env/tests/common/mutate.rs"]
mod mutate;

use std::path::Path;
use std::process::Command;

use ecs_build::machine::{self, DEFAULT_CONFIG, MachineError};
use proptest::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_ecs-build");

/// `ecs-build image --config <path>` under a 1 GiB address-space cap and a hang guard; its exit
/// code and stderr.
fn image(config: &Path) -> (i32, String) {
    let out = Command::new("prlimit")
        .arg(format!("--as={}", 1u64 << 30))
        .args([
            "--",
            "timeout",
            "300",
            BIN,
            "image",
            "--image-version",
            "1",
            "--config",
        ])
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running prlimit (util-linux)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hostile_files_are_refused_at_once_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // machine.yml is typed throughout (unknown keys are errors), so a bomb never gets expanded;
    // under the address-space cap a regression would fail instead of eating the machine.
    let bomb = dir.path().join("bomb.yml");
    std::fs::write(&bomb, mutate::alias_bomb("")).unwrap();
    let big = dir.path().join("big.yml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(50 * 1024 * 1024)
        .unwrap();
    let fifo = dir.path().join("fifo.yml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // A writer that never closes: a blocking read would wait for it forever.
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    for (path, needle) in [
        (bomb.as_path(), "bomb.yml:1:1: unknown field `a0`"),
        (big.as_path(), "larger than the limit of 1 MiB"),
        (
            Path::new("/dev/zero"),
            "reading /dev/zero: a character device, not a regular file",
        ),
        (fifo.as_path(), "a FIFO (named pipe), not a regular file"),
        (dir.path(), "a directory, not a regular file"),
    ] {
        let (code, stderr) = image(path);
        assert_eq!(code, 2, "{}: {stderr}", path.display());
        assert!(stderr.contains(needle), "{needle} not in: {stderr}");
    }
}

fn assert_located(text: &str, result: Result<machine::Machine, MachineError>) {
    match result {
        Ok(m) => {
            let _ = m.validate("machine.yml");
        }
        Err(MachineError::Parse { line, .. }) => {
            assert!(
                line >= 1 && line <= mutate::last_line(text),
                "line {line} outside the file"
            );
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// Any few careless edits of the default machine.yml parse or fail with an error naming a line
/// in the file; none panics. In a child with a 2 GiB address-space cap, with the alias bomb and
/// a 50 MB text as fixed cases.
#[test]
fn mutated_machine_never_panics_and_errors_name_a_line() {
    if !mutate::in_capped_child(
        "mutated_machine_never_panics_and_errors_name_a_line",
        2 << 30,
        &[],
    ) {
        return;
    }
    let fixed = [
        mutate::alias_bomb(""),
        format!("{}base:\n  extra_packages: *a9\n", mutate::alias_bomb("")),
        "x: y\n".repeat(10 * 1024 * 1024),
        format!("k: {}\n", "[".repeat(1_000_000)),
    ];
    for text in &fixed {
        assert_located(text, machine::parse("machine.yml", text));
    }
    let config = ProptestConfig {
        cases: 96,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&prop::collection::vec(mutate::edit(), 1..5), |edits| {
            let mut text = DEFAULT_CONFIG.to_string();
            for e in &edits {
                text = mutate::apply(&text, e);
            }
            assert_located(&text, machine::parse("machine.yml", &text));
            Ok(())
        })
        .unwrap();
}
