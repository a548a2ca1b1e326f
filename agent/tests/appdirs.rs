//! Step app-dirs through the real binary: x-ecs data-dirs get their owner and mode, and the
//! x-ecs keyring is rebuilt from env.yml at every start as a GnuPG 1.4 keyring that gpg1,
//! running as the app's uid the way ECS calls it, encrypts, signs and decrypts with (the vault
//! keys of a real `ecs-build config new`); a changed key replaces it; a bad key fails the step
//! and leaves the previous keyring as it was.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use common::{Appliance, GPG, checksums, env_text, stdout};
use host_util::{CommandExt, Tool};

const GPG1: Tool = Tool::new("gpg1", "gnupg1");

/// What the default template asks for ECS, plus a nested directory with other ids.
const X_ECS: &str = "  data-dirs:
    - {path: ecs-ca, owner: \"1000:1000\", mode: \"0700\"}
    - {path: nested/app-dir, owner: \"1234:4321\", mode: \"2750\"}
  keyrings:
    - {dir: ecs-gpg, format: gnupg1, owner: \"1000:1000\", keys: [ECS_VAULT_ENCRYPT, ECS_VAULT_SIGN]}
";

fn gpg2(home: &Path) -> Command {
    let mut c = Command::new(GPG.path().unwrap_or_else(|e| panic!("{e}")));
    c.arg("--batch").arg("--homedir").arg(home);
    c
}

/// An RSA secret key as the original's vault keys were (no passphrase), made in its own GnuPG
/// home under `base`: (fingerprint, armored).
fn make_key(base: &Path, uid: &str) -> (String, String) {
    let home = &base.join(format!("{}", std::fs::read_dir(base).unwrap().count()));
    std::fs::create_dir(home).unwrap();
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).unwrap();
    gpg2(home)
        .args([
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "rsa2048",
            "encrypt,sign",
            "never",
        ])
        .run_checked()
        .unwrap();
    let fpr = fingerprints(
        &gpg2(home)
            .args(["--with-colons", "--list-secret-keys", uid])
            .run_stdout()
            .unwrap(),
    )
    .pop()
    .unwrap();
    let key = gpg2(home)
        .args(["--armor", "--export-secret-keys", &fpr])
        .run_stdout()
        .unwrap();
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "gpg-agent"])
        .run_checked();
    (fpr, key)
}

/// The vault keys of a real `ecs-build config new`: (ecs.vault_encrypt, ecs.vault_sign).
fn config_new_vault_keys(dir: &Path) -> (String, String) {
    let out = dir.join("config");
    Command::new(e2e_tests::workspace_binary("ecs-build"))
        .args(["config", "new", "--domain", common::DOMAIN, "--out"])
        .arg(&out)
        .run_checked()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(out.join("env.yml")).unwrap();
    let (env, _) = appliance_env::Env::from_yaml_str(&text, "env.yml").unwrap();
    (env.ecs.vault_encrypt, env.ecs.vault_sign)
}

/// The primary fingerprint of an armored secret key, read by GnuPG 2 without importing it.
fn fingerprint(dir: &Path, key: &str) -> String {
    let home = tempfile::tempdir_in(dir).unwrap();
    let out = gpg2(home.path())
        .args([
            "--no-autostart",
            "--with-colons",
            "--import-options",
            "show-only",
            "--import",
        ])
        .run_with_input(key.as_bytes())
        .unwrap();
    fingerprints(&String::from_utf8_lossy(&out.stdout)).pop().unwrap()
}

/// Primary secret-key fingerprints in `--with-colons` output.
fn fingerprints(colons: &str) -> Vec<String> {
    let lines: Vec<&str> = colons.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("sec:") && w[1].starts_with("fpr:"))
        .map(|w| w[1].split(':').nth(9).unwrap().to_string())
        .collect()
}

/// The fixture env.yml with these vault keys.
fn write_env(a: &Appliance, encrypt: &str, sign: &str) {
    let text = env_text("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if skipping && (line.starts_with("    ") || line.is_empty()) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
        for (head, key) in [("  vault_encrypt: |", encrypt), ("  vault_sign: |", sign)] {
            if line == head {
                skipping = true;
                for l in key.lines() {
                    out.push_str(&format!("    {l}\n"));
                }
            }
        }
    }
    std::fs::write(a.path("app/env.yml"), out).unwrap();
}

/// gpg1 as the app's user (uid 1000), with ECS's options (ecs/utils/gpgutils.py).
fn gpg1_as_app(home: &Path) -> Command {
    let mut c = Command::new(GPG1.path().unwrap_or_else(|e| panic!("{e}")));
    c.uid(1000).gid(1000).env("HOME", home);
    c.arg("--homedir")
        .arg(home)
        .args(["--batch", "--yes", "--always-trust"]);
    c
}

fn owner_mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
}

#[test]
fn data_dirs_and_the_vault_keyring_are_set_up_at_every_start() {
    let a = Appliance::new("appdirs");
    let compose = std::fs::read_to_string(a.path("compose.yml")).unwrap();
    assert!(compose.contains("\nx-ecs:\n"), "{compose}");
    // X_ECS has the fixture's own data-dirs entry (ecs-ca) among its own.
    let own = "  data-dirs:\n    - {path: ecs-ca, owner: \"1000:1000\", mode: \"0700\"}\n";
    assert!(compose.contains(own), "{compose}");
    let compose = compose.replacen(own, "", 1);
    std::fs::write(
        a.path("compose.yml"),
        compose.replacen("\nx-ecs:\n", &format!("\nx-ecs:\n{X_ECS}"), 1),
    )
    .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (enc, sign) = config_new_vault_keys(keys.path());
    let (enc_fpr, sign_fpr) = (fingerprint(keys.path(), &enc), fingerprint(keys.path(), &sign));
    let (new_fpr, new_sign) = make_key(keys.path(), "ecs_authority");

    // First start: the steps in order, app-dirs between database and tls.
    write_env(&a, &enc, &sign);
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let at = |step: &str| {
        text.find(&format!("ecs-agent: step {step} ok: "))
            .unwrap_or_else(|| panic!("{step}: {text}"))
    };
    assert!(
        at("database") < at("app-dirs") && at("app-dirs") < at("tls"),
        "{text}"
    );
    let msg = a.step_state("app-dirs").1;
    assert!(msg.contains(&format!("ECS_VAULT_ENCRYPT {enc_fpr}")), "{msg}");
    assert!(msg.contains(&format!("ECS_VAULT_SIGN {sign_fpr}")), "{msg}");

    assert_eq!(owner_mode(&a.path("data/ecs-ca")), (1000, 1000, 0o700));
    assert_eq!(owner_mode(&a.path("data/nested/app-dir")), (1234, 4321, 0o2750));
    let home = a.path("data/ecs-gpg");
    assert_eq!(owner_mode(&home), (1000, 1000, 0o700));
    for f in ["pubring.gpg", "secring.gpg"] {
        assert_eq!(owner_mode(&home.join(f)), (1000, 1000, 0o600), "{f}");
    }
    for e in std::fs::read_dir(&home).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(owner_mode(&p), (1000, 1000, 0o600), "{}", p.display());
    }

    // gpg1 lists both secret keys and does what ECS's storage vault does with them.
    let listed = gpg1_as_app(&home)
        .args(["--with-colons", "--fingerprint", "--list-secret-keys"])
        .run_stdout()
        .unwrap();
    assert_eq!(
        fingerprints(&listed),
        [enc_fpr.clone(), sign_fpr.clone()],
        "{listed}"
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sealed = work.path().join("doc.gpg");
    gpg1_as_app(&home)
        .args([
            "--recipient",
            "ecs_mediaserver",
            "--local-user",
            "ecs_authority",
            "--output",
        ])
        .arg(&sealed)
        .args(["--sign", "--encrypt"])
        .run_with_input(b"a vault document\n")
        .unwrap();
    let opened = gpg1_as_app(&home)
        .args(["--recipient", "ecs_mediaserver", "--decrypt"])
        .arg(&sealed)
        .run_checked()
        .unwrap();
    assert_eq!(opened.stdout, b"a vault document\n");
    let said = String::from_utf8_lossy(&opened.stderr);
    assert!(said.contains("Good signature from \"ecs_authority\""), "{said}");

    // Second start with another signing key: the keyring holds the new one only.
    std::fs::set_permissions(a.path("data/ecs-ca"), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_env(&a, &enc, &new_sign);
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let listed = gpg1_as_app(&home)
        .args(["--with-colons", "--fingerprint", "--list-secret-keys"])
        .run_stdout()
        .unwrap();
    assert_eq!(
        fingerprints(&listed),
        [enc_fpr.clone(), new_fpr.clone()],
        "{listed}"
    );
    assert_eq!(owner_mode(&a.path("data/ecs-ca")), (1000, 1000, 0o700));
    let leftovers: Vec<String> = std::fs::read_dir(a.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A bad key: the step fails as bad config, names the key, shows none of it, and the
    // keyring stays as it was; nothing after the step runs.
    let before = checksums(&home);
    let garbage = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nbm90IGFuIE9wZW5QR1Aga2V5\n-----END PGP PRIVATE KEY BLOCK-----";
    write_env(&a, &enc, garbage);
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let (state, msg) = a.step_state("app-dirs");
    assert_eq!(state, "failed", "{msg}");
    assert!(
        msg.contains("(x-ecs.keyrings[0]): ECS_VAULT_SIGN: not a key GnuPG reads"),
        "{msg}"
    );
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    for secret in ["bm90IGFu", &enc[enc.len() / 2..enc.len() / 2 + 40]] {
        assert!(!all.contains(secret), "key material in the output: {all}");
    }
    assert_eq!(a.step_state("tls").0, "pending");
    assert_eq!(checksums(&home), before);
    assert_eq!(owner_mode(&home), (1000, 1000, 0o700));
}
