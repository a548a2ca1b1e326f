//! `ecs-build image|packer` on inputs that are checked before any build work: machine.yml
//! errors with file:line, the printed default, unwritable output directories, a missing agent,
//! and `packer validate` (Debian's packer) on the emitted templates.

use std::path::Path;
use std::process::{Command, Output};

use host_util::{CommandExt, Tool};

const BIN: &str = env!("CARGO_BIN_EXE_ecs-build");
const PACKER: Tool = Tool::new("packer", "packer");
const SSH_KEYGEN: Tool = Tool::new("ssh-keygen", "openssh-client");

fn ecs_build(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("running ecs-build")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn unknown_key_is_named_with_its_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(
        &m,
        "name: t\ndisks:\n  root_size: 2G\n  root_sise: 3G\noutputs:\n  dir: out\n",
    )
    .unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("machine.yml:4:3: unknown field `root_sise`"),
        "{err}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "nothing may be created for bad input"
    );
}

#[test]
fn printed_default_config_is_accepted_as_machine_yml() {
    let o = ecs_build(&["image", "--print-default-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("suite: trixie") && text.contains("# "), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(&m, &text).unwrap();
    // `packer` loads and validates the whole file without building anything.
    let o = ecs_build(&[
        "packer",
        "--config",
        m.to_str().unwrap(),
        "--image-version",
        "0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        files_in(&dir.path().join("out")),
        ["ecs-appliance-0.1.json", "ecs-appliance-0.1.pkr.hcl"]
    );
}

#[test]
fn bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(&m, "outputs:\n  vagrant_box: true\n").unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("outputs.vagrant_box"), "{}", stderr(&o));
    std::fs::write(&m, "disks:\n  root_size: 10Q\n").unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("machine.yml:2:"), "{}", stderr(&o));
    std::fs::write(&m, "env: missing-env.yml\n").unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("env: ") && stderr(&o).contains("missing-env.yml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_machine_yml_problem_is_reported_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(
        &m,
        "base:\n  mirror: \"http://deb.debian.org/debian trixie main\"\ndisks:\n  table: mbr\n  root_size: 1T\n  \
         volatile_size: 1T\n  kernel_cmdline: \"console=ttyS0 'quiet'\"\noutputs:\n  dir: out\n",
    )
    .unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("machine.yml: 3 problems:"), "{err}");
    for key in [
        "base.mirror: ",
        "disks: root_size 1T + volatile_size 1T on mbr: ",
        "disks.kernel_cmdline: ",
    ] {
        assert!(err.contains(&format!("machine.yml: {key}")), "{key}: {err}");
    }
    assert!(
        !dir.path().join("out").exists(),
        "nothing may be created for bad input"
    );
}

#[test]
fn bad_version_and_missing_agent_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(&m, "agent:\n  binary: no-such-agent\n").unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "a/b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("image version \"a/b\""), "{}", stderr(&o));
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("no-such-agent") && err.contains("cargo build --release -p ecs-agent"),
        "{err}"
    );
    assert_eq!(files_in(&dir.path().join("out")), Vec::<String>::new());
}

#[test]
fn output_dir_that_cannot_be_written_is_refused_before_work() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the directory should be: not writable for root either.
    std::fs::write(dir.path().join("blocker"), "x").unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(&m, "outputs:\n  dir: blocker/out\n").unwrap();
    let o = ecs_build(&["image", "--config", m.to_str().unwrap(), "--image-version", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("outputs.dir") && err.contains("blocker/out") && err.contains("not writable"),
        "{err}"
    );
}

#[test]
fn emitted_templates_pass_packer_validate() {
    let packer = PACKER.path().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    SSH_KEYGEN
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .run_checked()
        .unwrap();
    let m = dir.path().join("machine.yml");
    std::fs::write(&m, "name: t\ndisks:\n  raid1: true\noutputs:\n  dir: out\n").unwrap();
    let o = ecs_build(&[
        "packer",
        "--config",
        m.to_str().unwrap(),
        "--image-version",
        "2.0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    let hcl = std::fs::read_to_string(out.join("t-2.0.pkr.hcl")).unwrap();
    assert!(
        hcl.contains("source \"qemu\" \"ecs\"") && hcl.contains("disk_image"),
        "{hcl}"
    );
    assert!(!hcl.contains("required_plugins"));
    for file in ["t-2.0.pkr.hcl", "t-2.0.json"] {
        let o = Command::new(&packer)
            .current_dir(&out)
            .args(["validate", "-var"])
            .arg(format!("ssh_private_key_file={}", key.display()))
            .arg(file)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "packer validate {file}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
    }
}
