//! `ecs-build config new`: the output folder, its modes, what the seed and the tools see, and
//! one-line exit-2 errors that leave nothing behind.

mod config_common;

use std::path::Path;

use appliance_env::Env;
use config_common::*;
use host_util::CommandExt;

fn new_config(dir: &Path, extra: &[&str]) -> (std::path::PathBuf, Run) {
    let out = dir.join("appliance");
    let pubkey = operator_key(dir);
    let r = run(ecs_build()
        .args(["config", "new", "--domain", "ecs.example.org", "--ssh-key"])
        .arg(&pubkey)
        .arg("--out")
        .arg(&out)
        .args(extra));
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    (out, r)
}

#[test]
fn writes_env_seed_and_pdf_privately() {
    let dir = tempfile::tempdir().unwrap();
    let (out, r) = new_config(dir.path(), &[]);
    assert_eq!(listing(dir.path()), ["appliance", "operator", "operator.pub"]);
    assert_eq!(listing(&out), ["env.pdf", "env.yml", "seed.iso"]);
    assert_eq!(mode(&out), 0o700);
    for name in ["env.yml", "seed.iso", "env.pdf"] {
        assert_eq!(mode(&out.join(name)), 0o600, "{name}");
    }
    let text = std::fs::read_to_string(out.join("env.yml")).unwrap();
    assert!(text.starts_with("#cloud-config\n"));
    let (env, warnings) = Env::load(&out.join("env.yml")).unwrap();
    assert!(warnings.is_empty());
    let operator = std::fs::read_to_string(dir.path().join("operator.pub")).unwrap();
    assert_eq!(env.ssh_authorized_keys, [operator.trim()]);
    assert!(std::fs::read(out.join("env.pdf")).unwrap().starts_with(b"%PDF"));

    // The host key fingerprints printed are those ssh-keygen computes; no secret is printed.
    for kind in ["ed25519", "rsa"] {
        let public = dir.path().join(format!("{kind}.pub"));
        std::fs::write(&public, &env.ssh_keys[&format!("{kind}_public")]).unwrap();
        let listed = tool("ssh-keygen", "openssh-client")
            .arg("-l")
            .arg("-f")
            .arg(&public)
            .run_stdout()
            .unwrap();
        let fingerprint = listed.split_whitespace().nth(1).unwrap();
        assert!(
            r.stdout.contains(&format!("{fingerprint} {kind}")),
            "{fingerprint} not in {}",
            r.stdout
        );
    }
    for name in ["env.yml", "seed.iso", "env.pdf"] {
        assert!(
            r.stdout.contains(&out.join(name).display().to_string()),
            "{}",
            r.stdout
        );
    }
    for printed in [&r.stdout, &r.stderr] {
        assert!(
            !printed.contains("PRIVATE KEY") && !printed.contains("SECRET_KEY"),
            "{printed}"
        );
        assert!(!printed.contains(&env.ssh_keys["ed25519_private"][40..80]));
    }

    // The seed carries env.yml as its own file, byte for byte (user-data: tests/config_seed.rs).
    let extracted = dir.path().join("env.yml");
    tool("xorriso", "xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(out.join("seed.iso"))
        .args(["-extract", "/env.yml"])
        .arg(&extracted)
        .run_checked()
        .unwrap();
    assert_eq!(std::fs::read(&extracted).unwrap(), text.as_bytes());
    let blkid = tool("blkid", "util-linux")
        .arg("-p")
        .arg(out.join("seed.iso"))
        .run_stdout()
        .unwrap();
    assert!(
        blkid.contains("LABEL=\"cidata\"") && blkid.contains("TYPE=\"iso9660\""),
        "{blkid}"
    );

    // cloud-init accepts it, and PyYAML reads what we read.
    let schema = tool("cloud-init", "cloud-init")
        .args(["schema", "--config-file"])
        .arg(out.join("env.yml"))
        .run_stdout()
        .unwrap();
    assert!(schema.contains("Valid cloud-config"), "{schema}");
    let json = tool("/usr/bin/python3", "python3-yaml")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(out.join("env.yml"))
        .run_stdout()
        .unwrap();
    let pyyaml: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(pyyaml, serde_json::to_value(&env).unwrap());

    // `config check` agrees; `config seed` remakes the same ISO from the same env.yml.
    let check = run(ecs_build().args(["config", "check"]).arg(out.join("env.yml")));
    assert_eq!(check.code, 0, "{}", check.stderr);
    let again = dir.path().join("again.iso");
    let seed = run(ecs_build()
        .args(["config", "seed"])
        .arg(out.join("env.yml"))
        .arg("-o")
        .arg(&again));
    assert_eq!(seed.code, 0, "{}", seed.stderr);
    assert_eq!(mode(&again), 0o600);
    assert!(std::fs::read(&again).unwrap() == std::fs::read(out.join("seed.iso")).unwrap());
}

#[test]
fn extra_values_are_merged_and_force_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.yml");
    std::fs::write(
        &extra,
        "appliance:\n  update:\n    automatic: false\n    oncalendar: '12:30'\n  allowed_hosts: x\necs:\n  first_user:\n    email: office@example.org\n    first_name: Jane\n    last_name: Doe\n    gender: f\ntimezone: Europe/Vienna\n",
    )
    .unwrap();
    let (out, first) = new_config(dir.path(), &["--extra", extra.to_str().unwrap()]);
    assert!(
        first.stderr.contains("appliance.allowed_hosts"),
        "warning expected: {}",
        first.stderr
    );
    let (env, _) = Env::load(&out.join("env.yml")).unwrap();
    assert!(!env.appliance.update.automatic);
    assert_eq!(env.appliance.update.oncalendar, "12:30");
    assert_eq!(env.ecs.first_user.as_ref().unwrap().last_name, "Doe");
    assert_eq!(env.cloud_config["timezone"], serde_json::json!("Europe/Vienna"));

    let before = std::fs::read(out.join("env.yml")).unwrap();
    let (_, _) = new_config(dir.path(), &["--force"]);
    let after = std::fs::read(out.join("env.yml")).unwrap();
    assert_ne!(before, after, "--force writes fresh keys");
    assert_eq!(
        listing(dir.path()),
        ["appliance", "extra.yml", "operator", "operator.pub"]
    );
}

/// ECS's container (Ubuntu xenial) has GnuPG 1.4: it imports both vault keys, and what it
/// encrypts to ecs_mediaserver and signs with ecs_authority it decrypts and verifies, as ECS's
/// storage vault does (its gpgutils looks for `Good signature from "..."`).
#[test]
fn gnupg1_uses_the_vault_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = new_config(dir.path(), &[]);
    let (env, _) = Env::load(&out.join("env.yml")).unwrap();
    let home = dir.path().join("gnupg1");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let gpg1 = || {
        let mut c = tool("gpg1", "gnupg1");
        c.arg("--homedir")
            .arg(&home)
            .args(["--batch", "--no-tty", "--yes"]);
        c
    };
    for (name, key) in [
        ("ecs_mediaserver", &env.ecs.vault_encrypt),
        ("ecs_authority", &env.ecs.vault_sign),
    ] {
        let file = home.join(format!("{name}.asc"));
        std::fs::write(&file, key).unwrap();
        gpg1().arg("--import").arg(&file).run_checked().unwrap();
    }
    let plain = dir.path().join("document.txt");
    std::fs::write(&plain, "vault document\n").unwrap();
    let sealed = dir.path().join("document.txt.gpg");
    gpg1()
        .args([
            "--always-trust",
            "--recipient",
            "ecs_mediaserver",
            "--local-user",
            "ecs_authority",
        ])
        .arg("--output")
        .arg(&sealed)
        .args(["--sign", "--encrypt"])
        .arg(&plain)
        .run_checked()
        .unwrap();
    let opened = gpg1()
        .args(["--always-trust", "--verbose", "--decrypt"])
        .arg(&sealed)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&opened.stderr);
    assert!(opened.status.success(), "{log}");
    assert_eq!(String::from_utf8_lossy(&opened.stdout), "vault document\n");
    assert!(log.contains("Good signature from \"ecs_authority\""), "{log}");
    assert!(
        log.contains("AES256 encrypted data"),
        "the keys' preferences, not 3DES: {log}"
    );
}

/// Exit 2, one line naming the problem, and the parent folder unchanged.
fn refused(dir: &Path, args: &[&str], needle: &str) {
    let before = listing(dir);
    let r = run(ecs_build().current_dir(dir).args(["config", "new"]).args(args));
    assert_bad_input(&r, needle);
    assert_eq!(listing(dir), before, "nothing may be left behind");
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("malformed.pub"),
        "ssh-ed25519 this-is-not-base64 me@host\n",
    )
    .unwrap();
    std::fs::write(
        d.join("misspelt.yml"),
        "appliance:\n  metric:\n    exportr: true\n",
    )
    .unwrap();
    std::fs::write(
        d.join("wrongtype.yml"),
        "ecs:\n  userswitcher:\n    enabled: sometimes\n",
    )
    .unwrap();
    std::fs::write(d.join("shortcommit.yml"), "ecs:\n  git:\n    commitid: b09f0d5\n").unwrap();
    std::fs::create_dir(d.join("taken")).unwrap();
    std::fs::write(d.join("taken/keep"), "x").unwrap();
    std::fs::write(d.join("taken/env.yml"), "only copy").unwrap();

    refused(
        d,
        &["--domain", "not a domain"],
        "--domain: expected a domain name",
    );
    refused(d, &["--domain=-bad.example.org", "--out", "o"], "--domain:");
    refused(
        d,
        &[
            "--domain",
            "ecs.example.org",
            "--ssh-key",
            "missing.pub",
            "--out",
            "o",
        ],
        "--ssh-key missing.pub: reading:",
    );
    refused(
        d,
        &[
            "--domain",
            "ecs.example.org",
            "--ssh-key",
            "malformed.pub",
            "--out",
            "o",
        ],
        "--ssh-key malformed.pub:1: expected an OpenSSH public key",
    );
    refused(
        d,
        &["--domain", "ecs.example.org", "--out", "taken"],
        "taken/env.yml exists; pass --force to replace it",
    );
    assert_eq!(listing(&d.join("taken")), ["env.yml", "keep"]);
    assert_eq!(
        std::fs::read_to_string(d.join("taken/env.yml")).unwrap(),
        "only copy"
    );
    refused(
        d,
        &[
            "--domain",
            "ecs.example.org",
            "--extra",
            "misspelt.yml",
            "--out",
            "o",
        ],
        "misspelt.yml:3:5: appliance.metric.exportr: unknown key; did you mean `appliance.metric.exporter`?",
    );
    refused(
        d,
        &[
            "--domain",
            "ecs.example.org",
            "--extra",
            "wrongtype.yml",
            "--out",
            "o",
        ],
        "wrongtype.yml:3:5: ecs.userswitcher.enabled:",
    );
    refused(
        d,
        &[
            "--domain",
            "ecs.example.org",
            "--extra",
            "absent.yml",
            "--out",
            "o",
        ],
        "--extra absent.yml: reading:",
    );
    refused(
        d,
        &[
            "--domain",
            "ecs.example.org",
            "--extra",
            "shortcommit.yml",
            "--out",
            "o",
        ],
        "ecs.git.commitid: expected a full commit id of 40 hex digits (`git rev-parse HEAD`), found `b09f0d5`",
    );
}

fn config_new_in(cwd: &Path, out: &Path, extra: &[&str]) -> Run {
    run(ecs_build()
        .current_dir(cwd)
        .args(["config", "new", "--domain", "ecs.example.org", "--out"])
        .arg(out)
        .args(extra))
}

/// Names in `dir` that start with a dot: temporaries.
fn hidden(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.starts_with('.')).collect()
}

const WRITTEN: [&str; 3] = ["env.pdf", "env.yml", "seed.iso"];

#[test]
fn force_replaces_only_what_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("appliance");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    std::fs::write(out.join("env.yml"), "old env").unwrap();
    let r = config_new_in(dir.path(), &out, &[]);
    assert_bad_input(
        &r,
        &format!(
            "{} exists; pass --force to replace it",
            out.join("env.yml").display()
        ),
    );
    assert_eq!(listing(&out), ["env.yml", "notes.txt"]);
    assert_eq!(std::fs::read_to_string(out.join("env.yml")).unwrap(), "old env");

    let r = config_new_in(dir.path(), &out, &["--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(listing(&out), ["env.pdf", "env.yml", "notes.txt", "seed.iso"]);
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    assert!(Env::load(&out.join("env.yml")).is_ok());
    for name in WRITTEN {
        assert_eq!(mode(&out.join(name)), 0o600, "{name}");
    }
}

/// `--out .` writes into the working directory; `--out FILE` is refused, --force or not.
#[test]
fn out_dot_works_and_out_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("other"), "x").unwrap();
    for extra in [&[][..], &["--force"]] {
        let r = config_new_in(d, Path::new("."), extra);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(listing(d), ["env.pdf", "env.yml", "other", "seed.iso"]);
    }
    let first = std::fs::read(d.join("env.yml")).unwrap();
    let r = config_new_in(d, Path::new("."), &[]);
    assert_bad_input(&r, "./env.yml exists; pass --force to replace it");
    assert_eq!(std::fs::read(d.join("env.yml")).unwrap(), first);

    for extra in [&[][..], &["--force"]] {
        let r = config_new_in(d, Path::new("other"), extra);
        assert_bad_input(&r, "--out other: not a directory");
        assert_eq!(std::fs::read_to_string(d.join("other")).unwrap(), "x");
        assert_eq!(listing(d), ["env.pdf", "env.yml", "other", "seed.iso"]);
    }
}

/// Failures while writing or committing: nothing under a final name changes, and no temporary
/// (the private directory holding every secret) remains.
#[test]
fn failed_writes_leave_the_old_files_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("appliance");
    let r = config_new_in(dir.path(), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let old: Vec<Vec<u8>> = WRITTEN
        .iter()
        .map(|n| std::fs::read(out.join(n)).unwrap())
        .collect();
    let unchanged = || {
        assert_eq!(listing(&out), WRITTEN);
        for (name, bytes) in WRITTEN.iter().zip(&old) {
            assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name} changed");
        }
        assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    };
    let chattr = |flag: &str, path: &Path| {
        tool("chattr", "e2fsprogs")
            .arg(flag)
            .arg(path)
            .run_checked()
            .unwrap();
    };

    // Mid-commit: env.yml is already replaced when seed.iso (immutable) cannot be; env.yml is
    // put back.
    chattr("+i", &out.join("seed.iso"));
    let r = config_new_in(dir.path(), &out, &["--force"]);
    chattr("-i", &out.join("seed.iso"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("seed.iso") && r.stderr.contains("put back as they were"),
        "{}",
        r.stderr
    );
    unchanged();

    // A read-only (immutable) folder: nothing can be made in it.
    chattr("+i", &out);
    let r = config_new_in(dir.path(), &out, &["--force"]);
    chattr("-i", &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("private temporary directory"), "{}", r.stderr);
    unchanged();

    // A file too big for the file size limit (the writes fail with EFBIG, not SIGXFSZ).
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_ecs-build"))
        .args(["config", "new", "--domain", "ecs.example.org", "--force", "--out"])
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("RUST_LOG", "warn");
    let r = run(&mut c);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    unchanged();

    // A directory where a file goes is refused before any key is made.
    std::fs::remove_file(out.join("env.pdf")).unwrap();
    std::fs::create_dir(out.join("env.pdf")).unwrap();
    let r = config_new_in(dir.path(), &out, &["--force"]);
    assert_bad_input(
        &r,
        &format!(
            "{} is a directory, not a regular file; give a file name",
            out.join("env.pdf").display()
        ),
    );
    assert_eq!(std::fs::read(out.join("env.yml")).unwrap(), old[1]);
    assert!(hidden(&out).is_empty() && hidden(dir.path()).is_empty());
}
