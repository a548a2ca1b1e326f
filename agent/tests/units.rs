//! `systemd-analyze verify` on every unit in agent/systemd, in a temp root holding what the
//! units need (systemd's own units, the built ecs-agent at /usr/local/bin, the host's other
//! programs they run), and on the backup timer and the CRL's path unit with the drop-ins
//! `start` writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use host_util::Tool;

const SYSTEMD_ANALYZE: Tool = Tool::new("systemd-analyze", "systemd");

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A root with systemd's units, the agent's units and every program their Exec lines name.
fn root(units: &Path) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    copy_tree(
        Path::new("/usr/lib/systemd/system"),
        &root.path().join("usr/lib/systemd/system"),
    );
    let etc = root.path().join("etc/systemd/system");
    copy_tree(units, &etc);
    for entry in std::fs::read_dir(units).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| l.starts_with("Exec")) {
            let cmd = line
                .split_once('=')
                .unwrap()
                .1
                .trim_start_matches(['-', '+', '!', '@', ':']);
            let program = PathBuf::from(cmd.split_whitespace().next().unwrap());
            let source = if program == Path::new("/usr/local/bin/ecs-agent") {
                PathBuf::from(env!("CARGO_BIN_EXE_ecs-agent"))
            } else {
                program.clone()
            };
            let dest = root.path().join(program.strip_prefix("/").unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&source, &dest)
                .unwrap_or_else(|e| panic!("{line}: {} is needed on this host: {e}", source.display()));
        }
    }
    root
}

/// (success, stderr) of `systemd-analyze verify` of `unit` in `root`.
fn verify(root: &Path, unit: &str) -> (bool, String) {
    let out = Command::new(SYSTEMD_ANALYZE.path().unwrap_or_else(|e| panic!("{e}")))
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg(root.join("etc/systemd/system").join(unit))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn systemd_analyze_verifies_every_unit() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let root = root(&units);
    let mut names: Vec<String> = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"ecs-agent-backup.timer".to_string()), "{names:?}");
    for name in &names {
        let (ok, stderr) = verify(root.path(), name);
        assert!(ok && stderr.trim().is_empty(), "{name}: {stderr}");
    }

    // The backup timer with the drop-in `start` writes from env.yml's schedule.
    let etc = root.path().join("etc/systemd/system");
    assert!(ecs_agent::backup::write_dropin(&etc, "Sun *-*-* 02:15:00").unwrap());
    let (ok, stderr) = verify(root.path(), "ecs-agent-backup.timer");
    assert!(ok && stderr.trim().is_empty(), "{stderr}");
    // The drop-in is read: a schedule systemd cannot parse leaves the timer without one.
    assert!(ecs_agent::backup::write_dropin(&etc, "bogus o'clock").unwrap());
    let (ok, stderr) = verify(root.path(), "ecs-agent-backup.timer");
    assert!(!ok && stderr.contains("bogus"), "{stderr}");

    // The CRL's path unit, and its drop-in when the app keeps its CA elsewhere.
    assert!(names.contains(&"ecs-agent-crl.path".to_string()), "{names:?}");
    let text = std::fs::read_to_string(units.join("ecs-agent-crl.path")).unwrap();
    for p in ecs_agent::client_ca::DEFAULT_WATCHED {
        assert!(text.contains(&format!("PathChanged={p}\n")), "{text}");
    }
    let dropin =
        "[Path]\nPathChanged=\nPathChanged=/data/other-ca/ca.pem\nPathChanged=/data/other-ca/crl.pem\n";
    assert!(ecs_agent::client_ca::write_path_dropin(&etc, Some(dropin)).unwrap());
    let (ok, stderr) = verify(root.path(), "ecs-agent-crl.path");
    assert!(ok && stderr.trim().is_empty(), "{stderr}");
    let dropin = "[Path]\nPathChanged=\nPathChanged=relative/crl.pem\n";
    assert!(ecs_agent::client_ca::write_path_dropin(&etc, Some(dropin)).unwrap());
    let (ok, stderr) = verify(root.path(), "ecs-agent-crl.path");
    assert!(
        !ok && stderr.contains("relative/crl.pem"),
        "the drop-in is not read: {stderr}"
    );
}
