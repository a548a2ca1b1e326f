//! Every `ecs-build` command that writes files treats its outputs the same way: an existing
//! file is replaced only with `--force`, links, directories and devices never; secrets are 0600
//! whatever the umask, other outputs follow it; a signal leaves no temporary behind.

mod config_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use config_common::*;
use host_util::CommandExt;

/// `config new` in `dir/cfg`; returns its env.yml.
fn new_env(dir: &Path) -> PathBuf {
    let out = dir.join("cfg");
    let r = run(ecs_build()
        .args(["config", "new", "--domain", "out.example.org", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    out.join("env.yml")
}

fn machine_yml(dir: &Path) -> PathBuf {
    let m = dir.join("machine.yml");
    fs::write(&m, "name: t\noutputs:\n  dir: out\n").unwrap();
    m
}

/// Each command that writes `target` (an absolute path), as arguments after `ecs-build`.
fn writers(dir: &Path, env: &Path, target: &Path) -> Vec<Vec<String>> {
    let s = |p: &Path| p.display().to_string();
    let m = s(&machine_yml(dir));
    let out_dir = s(target.parent().unwrap());
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        v(&["config", "seed", &s(env), "-o", &s(target)]),
        v(&["config", "print", &s(env), "-o", &s(target)]),
        v(&["config", "unprint", "no-scan.png", "-o", &s(target)]),
        v(&["disk", "system", "--tree", &s(dir), "-o", &s(target)]),
        v(&["disk", "data", "--size", "64M", "--seed", "s", "-o", &s(target)]),
        v(&[
            "disk",
            "data",
            "--size",
            "64M",
            "--raid1",
            "-o",
            &s(&dir.join("fresh.raw")),
            "-o",
            &s(target),
        ]),
    ]
    .into_iter()
    .chain(
        // image and packer write `<name>-<version>.*` into --out: the target is named so.
        (target.file_name().unwrap() == "t-1.raw")
            .then(|| {
                [
                    v(&["image", "--config", &m, "--image-version", "1", "--out", &out_dir]),
                    v(&[
                        "packer",
                        "--config",
                        &m,
                        "--image-version",
                        "1",
                        "--out",
                        &out_dir,
                    ]),
                ]
            })
            .into_iter()
            .flatten(),
    )
    .collect()
}

#[test]
fn every_command_refuses_an_existing_output_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let env = new_env(dir.path());
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    // The packer templates and the image's raw disk share this one name prefix.
    for name in ["t-1.raw", "t-1.pkr.hcl"] {
        fs::write(out.join(name), "the only copy").unwrap();
    }
    let target = out.join("t-1.raw");
    for args in writers(dir.path(), &env, &target) {
        let before = (listing(dir.path()), listing(&out));
        let r = run(ecs_build().args(&args));
        let wanted = if args[0] == "packer" {
            out.join("t-1.pkr.hcl")
        } else {
            target.clone()
        };
        assert_bad_input(
            &r,
            &format!("{} exists; pass --force to replace it", wanted.display()),
        );
        assert_eq!((listing(dir.path()), listing(&out)), before, "{args:?}");
        for name in ["t-1.raw", "t-1.pkr.hcl"] {
            assert_eq!(fs::read_to_string(out.join(name)).unwrap(), "the only copy");
        }
    }
}

#[test]
fn force_replaces_the_output_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let env = new_env(dir.path());
    let seed = dir.path().join("seed.iso");
    let disk = dir.path().join("data.raw");
    for path in [&seed, &disk] {
        fs::write(path, "old").unwrap();
    }
    let r = run(ecs_build()
        .args(["config", "seed"])
        .arg(&env)
        .arg("-o")
        .arg(&seed)
        .arg("--force"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::read(&seed).unwrap(),
        fs::read(env.with_file_name("seed.iso")).unwrap()
    );
    let r = run(ecs_build()
        .args(["disk", "data", "--size", "64M", "--force", "-o"])
        .arg(&disk));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::metadata(&disk).unwrap().len(), 64 << 20);
    assert_eq!(listing(dir.path()), ["cfg", "data.raw", "seed.iso"]);
}

/// `--raid1 -o a -o link`: the link and the file it points to stay as they were, with --force
/// too; so do directories and /dev/null.
#[test]
fn links_directories_and_devices_are_refused_even_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let env = new_env(dir.path());
    let real = dir.path().join("real.raw");
    fs::write(&real, "keep").unwrap();
    let link = dir.path().join("link.raw");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let before = listing(dir.path());
    let r = run(ecs_build()
        .args(["disk", "data", "--size", "64M", "--raid1", "--force", "-o"])
        .arg(dir.path().join("a.raw"))
        .arg("-o")
        .arg(&link));
    assert_bad_input(
        &r,
        &format!(
            "{} is a symbolic link; an output is never written through a link nor replaces one (not even with --force)",
            link.display()
        ),
    );
    for (target, what) in [
        (sub.as_path(), "a directory"),
        (Path::new("/dev/null"), "a character device"),
    ] {
        let r = run(ecs_build()
            .args(["config", "seed", "--force"])
            .arg(&env)
            .arg("-o")
            .arg(target));
        assert_bad_input(
            &r,
            &format!(
                "{} is {what}, not a regular file; give a file name",
                target.display()
            ),
        );
    }
    assert_eq!(listing(dir.path()), before);
    assert_eq!(fs::read_link(&link).unwrap(), real);
    assert_eq!(fs::read_to_string(&real).unwrap(), "keep");
    assert!(listing(&sub).is_empty());
    let r = run(ecs_build()
        .args(["disk", "data", "--size", "64M", "--raid1", "-o"])
        .arg(dir.path().join("a.raw"))
        .arg("-o")
        .arg(dir.path().join("./a.raw")));
    assert_bad_input(&r, "a.raw is given twice as an output");
    assert_eq!(listing(dir.path()), before);
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// `sh -c 'umask U; exec ecs-build ARGS'` in `dir`.
fn with_umask(umask: &str, dir: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ecs-build"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("RUST_LOG", "warn");
    run(&mut c)
}

#[test]
fn secrets_are_0600_and_other_outputs_follow_the_umask() {
    for (umask, ordinary) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        machine_yml(d);
        for args in [
            &["config", "new", "--domain", "umask.example.org", "--out", "cfg"][..],
            &["config", "seed", "cfg/env.yml", "-o", "seed.iso"],
            &["config", "print", "cfg/env.yml", "-o", "env.pdf"],
            &["disk", "data", "--size", "64M", "-o", "data.raw"],
            &[
                "disk",
                "system",
                "--tree",
                "cfg",
                "--root-size",
                "64M",
                "--volatile-size",
                "64M",
                "-o",
                "system.raw",
            ],
            &["packer", "--config", "machine.yml", "--image-version", "1"],
        ] {
            let r = with_umask(umask, d, args);
            assert_eq!(r.code, 0, "umask {umask} {args:?}: {}", r.stderr);
        }
        assert_eq!(mode_of(&d.join("cfg")), 0o700, "umask {umask}");
        for secret in [
            "cfg/env.yml",
            "cfg/seed.iso",
            "cfg/env.pdf",
            "seed.iso",
            "env.pdf",
        ] {
            assert_eq!(mode_of(&d.join(secret)), 0o600, "umask {umask}: {secret}");
        }
        for file in ["data.raw", "system.raw", "out/t-1.pkr.hcl", "out/t-1.json"] {
            assert_eq!(mode_of(&d.join(file)), ordinary, "umask {umask}: {file}");
        }
    }
}

/// Ctrl-C during `disk data --size 10T` (mke2fs on a 10 TB sparse file): exit 1, "interrupted",
/// and neither the 10 TB temporary nor the output remains.
#[test]
fn sigint_stops_disk_data_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big.raw");
    let child = ecs_build()
        .args(["disk", "data", "--size", "10T", "--seed", "s", "-o"])
        .arg(&target)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It is under way once its private temporary directory exists (the handler is installed
    // before that) and mke2fs runs in it. mke2fs is stopped while the signal goes in, so it
    // cannot finish first on a fast machine: the handler sets the flag, then forwards SIGINT
    // to mke2fs, which shows it as pending (ShdPnd bit 2) until it is continued.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let pid = child.id().to_string();
    let mut mke2fs = None;
    while mke2fs.is_none() && std::time::Instant::now() < deadline {
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if !listing(dir.path()).is_empty() {
            mke2fs = children
                .split_whitespace()
                .find(|c| fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "mke2fs"))
                .map(str::to_string);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mke2fs = mke2fs.expect("mke2fs did not start within 2 minutes");
    let kill = |sig: &str, who: &str| Command::new("kill").args([sig, who]).run_checked();
    // mke2fs may have finished between the look and the stop: then the command is past the
    // point this test is about, and it says so rather than passing or failing by luck.
    kill("-STOP", &mke2fs).expect("mke2fs finished before it could be stopped; rerun");
    kill("-INT", &pid).unwrap();
    let pending = |m: &str| {
        fs::read_to_string(format!("/proc/{m}/status"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
            .any(|l| {
                u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap_or(0) & 0x2 != 0
            })
    };
    while !pending(&mke2fs) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kill("-CONT", &mke2fs).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted: stopped by a signal"), "{stderr}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}
