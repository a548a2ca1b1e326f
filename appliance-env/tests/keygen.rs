//! Generated key material, checked with the reference tools: ssh-keygen, openssl, gpg; the
//! generated env.yml with cloud-init's schema check and PyYAML (cloud-init's parser).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use appliance_env::Env;
use appliance_env::keygen::{self, KeyMaterial, OsRng};
use host_util::{CommandExt, Tool};

const DOMAIN: &str = "ecs.example.org";

/// One set of real keys per test binary: RSA generation takes a moment.
fn keys() -> &'static KeyMaterial {
    static KEYS: OnceLock<KeyMaterial> = OnceLock::new();
    KEYS.get_or_init(|| KeyMaterial::generate(DOMAIN, &mut OsRng, SystemTime::now()).unwrap())
}

fn tool(program: &'static str, package: &'static str) -> Command {
    Tool::new(program, package)
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn write_secret(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn ssh_keygen_accepts_every_host_key() {
    let dir = tempfile::tempdir().unwrap();
    let k = &keys().ssh_keys;
    assert_eq!(
        k.keys().collect::<Vec<_>>(),
        ["ed25519_private", "ed25519_public", "rsa_private", "rsa_public"]
    );
    for (name, text) in k {
        let path = write_secret(dir.path(), name, text);
        let out = tool("ssh-keygen", "openssh-client")
            .arg("-l")
            .arg("-f")
            .arg(&path)
            .run_stdout()
            .unwrap();
        let kind = if name.starts_with("rsa") {
            "(RSA)"
        } else {
            "(ED25519)"
        };
        assert!(out.trim_end().ends_with(kind), "{name}: {out}");
        assert!(out.contains("root@ecs.example.org"), "{name}: {out}");
        if name.starts_with("rsa") {
            assert!(out.starts_with("3072 "), "{out}");
        }
    }
    // The private keys derive the public keys we wrote beside them.
    for kind in ["ed25519", "rsa"] {
        let path = dir.path().join(format!("{kind}_private"));
        let derived = tool("ssh-keygen", "openssh-client")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .run_stdout()
            .unwrap();
        let public = &k[&format!("{kind}_public")];
        let strip = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(strip(&derived), strip(public));
        let fp = keygen::parse_authorized_key(public).unwrap().fingerprint;
        let listed = tool("ssh-keygen", "openssh-client")
            .arg("-l")
            .arg("-f")
            .arg(&path)
            .run_stdout()
            .unwrap();
        assert!(listed.contains(&fp), "{fp} not in {listed}");
    }
}

#[test]
fn openssl_shows_a_ten_year_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = &keys().client_ca;
    let cert = write_secret(dir.path(), "ca.pem", &ca.cert);
    let key = write_secret(dir.path(), "ca.key", &ca.key);
    let text = tool("openssl", "openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .run_stdout()
        .unwrap();
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("Subject: CN = ecs.example.org client CA"), "{text}");
    let year = |label: &str| -> i32 {
        let line = text.lines().find(|l| l.trim_start().starts_with(label)).unwrap();
        line.split_whitespace().rev().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(year("Not After") - year("Not Before"), 10, "{text}");
    // The key is the certificate's key.
    let from_cert = tool("openssl", "openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&cert)
        .run_stdout()
        .unwrap();
    let from_key = tool("openssl", "openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .run_stdout()
        .unwrap();
    assert_eq!(from_cert, from_key);
    tool("openssl", "openssl")
        .args(["verify", "-CAfile"])
        .arg(&cert)
        .arg(&cert)
        .run_checked()
        .unwrap();
}

#[test]
fn openssl_accepts_the_dkim_key_and_dns_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_secret(dir.path(), "dkim.pem", &keys().dkim_key);
    let out = tool("openssl", "openssl")
        .args(["rsa", "-check", "-noout", "-in"])
        .arg(&key)
        .run_stdout()
        .unwrap();
    assert_eq!(out.trim(), "RSA key ok");
    let text = tool("openssl", "openssl")
        .args(["rsa", "-noout", "-text", "-in"])
        .arg(&key)
        .run_stdout()
        .unwrap();
    assert!(text.contains("Private-Key: (2048 bit"), "{text}");
    let public = tool("openssl", "openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .run_stdout()
        .unwrap();
    let public: String = public.lines().filter(|l| !l.starts_with("-----")).collect();

    let env = Env::from_keys(DOMAIN, keys());
    let zone = keygen::dns_records(&env).unwrap();
    let dkim_line = zone
        .find("default._domainkey.ecs.example.org. IN TXT (")
        .expect(&zone);
    let strings: Vec<&str> = zone[dkim_line..].split('"').skip(1).step_by(2).collect();
    assert!(strings.len() >= 2, "{zone}");
    assert!(strings.iter().all(|s| s.len() <= 255), "{zone}");
    assert_eq!(strings.concat(), format!("v=DKIM1; k=rsa; s=email; p={public}"));
    for record in [
        "ecs.example.org. IN A 192.0.2.1",
        "ecs.example.org. IN MX 10 ecs.example.org.",
        "ecs.example.org. IN TXT \"v=spf1 a mx -all\"",
        "_dmarc.ecs.example.org. IN TXT \"v=DMARC1; p=quarantine\"",
    ] {
        assert!(zone.contains(record), "{record} missing from\n{zone}");
    }
}

fn gpg(home: &Path) -> Command {
    let mut c = tool("gpg", "gnupg");
    c.arg("--homedir")
        .arg(home)
        .args(["--batch", "--no-tty", "--quiet"]);
    c
}

/// Stops the gpg-agent that importing secret keys started.
struct Agent<'a>(&'a Path);
impl Drop for Agent<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = Tool::new("gpgconf", "gnupg").command() {
            let _ = c
                .arg("--homedir")
                .arg(self.0)
                .args(["--kill", "gpg-agent"])
                .run_checked();
        }
    }
}

#[test]
fn gpg_imports_each_key_and_round_trips_with_the_backup_key() {
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let _agent = Agent(home.path());
    let k = keys();
    for (name, armored) in [
        ("ecs_backup", &k.backup_key),
        ("ecs_mediaserver", &k.vault_encrypt_key),
        ("ecs_authority", &k.vault_sign_key),
    ] {
        let file = write_secret(home.path(), &format!("{name}.asc"), armored);
        gpg(home.path()).arg("--import").arg(&file).run_checked().unwrap();
        let listing = gpg(home.path())
            .args(["--with-colons", "--list-secret-keys", name])
            .run_stdout()
            .unwrap();
        let primary: Vec<&str> = listing
            .lines()
            .find(|l| l.starts_with("sec:"))
            .expect(&listing)
            .split(':')
            .collect();
        if name == "ecs_backup" {
            assert_eq!(primary[3], "22", "EdDSA primary: {listing}");
            assert!(
                listing
                    .lines()
                    .any(|l| l.starts_with("ssb:") && l.split(':').nth(11).unwrap_or("").contains('e')),
                "{listing}"
            );
        } else {
            // The vault keys: one RSA-3072 key that signs and encrypts (ECS's GnuPG 1.4).
            assert_eq!((primary[3], primary[2]), ("1", "3072"), "RSA-3072: {listing}");
            assert!(
                primary[11].contains('e') && primary[11].contains('s'),
                "{listing}"
            );
        }
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("uid:") && l.split(':').nth(9) == Some(name)),
            "{listing}"
        );
        let packets = gpg(home.path())
            .arg("--list-packets")
            .arg(&file)
            .run_stdout()
            .unwrap();
        assert!(packets.contains("version 4"), "{packets}");
        assert!(!packets.contains("protected"), "no passphrase: {packets}");
    }
    let plain = write_secret(home.path(), "plain.txt", "backup payload\n");
    let sealed = home.path().join("plain.txt.gpg");
    gpg(home.path())
        .args(["--trust-model", "always", "--recipient", "ecs_backup", "--output"])
        .arg(&sealed)
        .arg("--encrypt")
        .arg(&plain)
        .run_checked()
        .unwrap();
    let opened = gpg(home.path())
        .arg("--decrypt")
        .arg(&sealed)
        .run_stdout()
        .unwrap();
    assert_eq!(opened, "backup payload\n");
    // The vault signing key signs, and the signature verifies.
    let signed = home.path().join("plain.txt.sig");
    gpg(home.path())
        .args(["--local-user", "ecs_authority", "--output"])
        .arg(&signed)
        .arg("--detach-sign")
        .arg(&plain)
        .run_checked()
        .unwrap();
    gpg(home.path())
        .args(["--trust-model", "always", "--verify"])
        .arg(&signed)
        .arg(&plain)
        .run_checked()
        .unwrap();
}

#[test]
fn application_secrets_are_long_and_distinct() {
    use base64::Engine;
    let k = keys();
    let secrets = [
        &k.secret_key,
        &k.registration_secret,
        &k.password_reset_secret,
        &k.database_password,
    ];
    for s in secrets {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap();
        assert_eq!(raw.len() * 8, 320);
    }
    for (i, a) in secrets.iter().enumerate() {
        assert!(secrets[i + 1..].iter().all(|b| a != b), "secret {i} repeats");
    }
    let env = Env::from_keys(DOMAIN, k);
    assert_eq!(
        env.appliance.database.as_ref().map(|d| &d.password),
        Some(&k.database_password)
    );
    let settings = keygen::ecs_settings(DOMAIN, k);
    assert!(settings.contains(&format!("SECRET_KEY = '{}'", k.secret_key)));
}

#[test]
fn debug_output_carries_no_secret() {
    let env = Env::from_keys(DOMAIN, keys());
    let shown = format!("{env:?} {env:#?}");
    assert!(shown.contains(DOMAIN), "{shown}");
    for secret in [
        &keys().secret_key,
        &keys().registration_secret,
        &keys().database_password,
    ] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
    }
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

/// PyYAML's reading of a file, as JSON.
fn pyyaml(path: &Path) -> serde_json::Value {
    let out = tool("/usr/bin/python3", "python3-yaml")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(path)
        .run_stdout()
        .unwrap();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn cloud_init_and_pyyaml_read_the_generated_env_as_we_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::from_keys(DOMAIN, keys());
    env.ssh_authorized_keys
        .push(keys().ssh_keys["ed25519_public"].clone());
    let yaml = env.to_yaml();
    assert!(yaml.starts_with("#cloud-config\n"));
    let path = write_secret(dir.path(), "env.yml", &yaml);
    let (reread, warnings) = Env::load(&path).unwrap();
    assert_eq!(reread, env);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(pyyaml(&path), serde_json::to_value(&env).unwrap());
    let out = tool("cloud-init", "cloud-init")
        .args(["schema", "--config-file"])
        .arg(&path)
        .run_stdout()
        .unwrap();
    assert!(out.contains("Valid cloud-config"), "{out}");
}

#[test]
fn tricky_strings_survive_pyyaml() {
    let dir = tempfile::tempdir().unwrap();
    let tricky = [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "0644",
        "12:30",
        "~",
        "null",
        "2024-01-01",
        "1e3",
        "0x1F",
        "",
        " lead",
        "a: b",
        "#x",
        "- x",
        "08",
        ".inf",
        "true",
    ];
    let mut env = Env::from_keys(DOMAIN, keys());
    env.ecs.settings = tricky.iter().map(|s| format!("X = '{s}'\n")).collect();
    env.appliance.backup.options = Some("yes".into());
    env.appliance.update.oncalendar = "12:30".into();
    env.ecs.userswitcher.parameter = Some("0644".into());
    env.ecs.git.commitid = None;
    env.ecs.git.branch = "2024-01-01".into();
    env.appliance.extra.packages = vec!["on".into(), "no".into()];
    for (i, s) in tricky.iter().enumerate() {
        env.appliance.extra.files.push(appliance_env::ExtraFile {
            path: format!("/etc/tricky/{i}"),
            contents: s.to_string(),
            owner: None,
            permissions: Some("0644".into()),
        });
        env.cloud_config
            .insert(format!("x_tricky_{i}"), serde_json::json!(s));
    }
    env.appliance.extra.files.push(appliance_env::ExtraFile {
        path: "/etc/tricky/multi".into(),
        contents: "  indented first line\nsecond: line\n\n".into(),
        owner: Some("root:root".into()),
        permissions: None,
    });
    let path = write_secret(dir.path(), "env.yml", &env.to_yaml());
    assert_eq!(pyyaml(&path), serde_json::to_value(&env).unwrap());
    let (reread, _) = Env::load(&path).unwrap();
    assert_eq!(reread, env);
}
