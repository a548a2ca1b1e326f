//! Values that used to pass `config check` and fail only at boot or later: a TLS pair that
//! does not fit (made with openssl), damaged base64, a bad compose file, a DOMAIN that is not
//! appliance.domain, option-like git values, a dump path, calendar expressions systemd refuses
//! (systemd-analyze). Every problem of a file is reported, each with its line and key.

use std::path::Path;

use appliance_env::{Env, EnvError};
use host_util::{CommandExt, Tool};

const ORIGINAL: &str = include_str!("fixtures/original-env.yml");
const OPENSSL: Tool = Tool::new("openssl", "openssl");

fn load(text: &str) -> Result<Env, EnvError> {
    Env::from_yaml_str(text, "env.yml").map(|(env, _)| env)
}

/// Every problem as `file:line:col: key: message`.
fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("loaded although it should fail:\n{text}"),
        Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
    }
}

/// The one problem of `text`, which must be about `key`.
fn problem(text: &str, key: &str) -> String {
    let all = problems(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].contains(&format!(": {key}: ")), "{key}: {}", all[0]);
    all[0].clone()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

fn indent(text: &str, by: usize) -> String {
    text.lines().map(|l| format!("{}{l}\n", " ".repeat(by))).collect()
}

/// The fixture with ssl.key and ssl.cert set.
fn with_tls(key: &str, cert: &str) -> String {
    ORIGINAL.replace(
        "    client_certs_mandatory: false\n",
        &format!(
            "    client_certs_mandatory: false\n    key: |\n{}    cert: |\n{}",
            indent(key, 6),
            indent(cert, 6)
        ),
    )
}

fn openssl(dir: &Path, args: &[&str]) {
    OPENSSL
        .command()
        .unwrap()
        .current_dir(dir)
        .args(args)
        .run_checked()
        .unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// A self-signed certificate for `san` (a subjectAltName value, or none) over `key.pem`, valid
/// from `start` to `end` (openssl ca's YYYYMMDDHHMMSSZ), as `name`.
fn self_signed(dir: &Path, name: &str, san: Option<&str>, start: &str, end: &str) -> String {
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let conf = format!(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\nnew_certs_dir = {0}\nserial = {0}/serial\n\
         default_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n[p]\ncommonName = supplied\n",
        dir.display()
    );
    std::fs::write(dir.join("ca.cnf"), conf).unwrap();
    let mut req = vec![
        "req",
        "-new",
        "-key",
        "key.pem",
        "-subj",
        "/CN=ecs.example.org",
        "-out",
        "r.csr",
    ];
    let ext;
    if let Some(san) = san {
        ext = format!("subjectAltName={san}");
        req.extend(["-addext", &ext]);
    }
    openssl(dir, &req);
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            "key.pem",
            "-in",
            "r.csr",
            "-out",
            name,
            "-notext",
            "-startdate",
            start,
            "-enddate",
            end,
        ],
    );
    read(dir, name)
}

const NOW_TO_2099: (&str, &str) = ("20200101000000Z", "20991231000000Z");

#[test]
fn tls_pair_made_by_openssl_passes_and_each_misfit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
    );
    let key = read(d, "key.pem");
    let (from, to) = NOW_TO_2099;
    let good = self_signed(d, "good.pem", Some("DNS:ecs.example.org"), from, to);
    let env = load(&with_tls(&key, &good)).unwrap();
    assert_eq!(env.appliance.ssl.cert.as_deref(), Some(good.as_str()));
    // A wildcard for the domain's parent covers it too.
    let wild = self_signed(d, "wild.pem", Some("DNS:*.example.org"), from, to);
    load(&with_tls(&key, &wild)).unwrap();

    // Another key than the certificate's.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.pem",
        ],
    );
    let other = read(d, "other.pem");
    let text = with_tls(&other, &good);
    let m = problem(&text, "appliance.ssl.key");
    assert!(
        m.starts_with(&format!("env.yml:{}:", line_of(&text, "    key: |"))),
        "{m}"
    );
    assert!(
        m.contains("is not the key of the certificate 'CN=ecs.example.org'"),
        "{m}"
    );
    // The key's PKCS#1 form is the same key.
    openssl(d, &["rsa", "-in", "key.pem", "-traditional", "-out", "pkcs1.pem"]);
    let pkcs1 = read(d, "pkcs1.pem");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pkcs1}");
    load(&with_tls(&pkcs1, &good)).unwrap();

    // Expired, and not yet valid.
    let expired = self_signed(
        d,
        "expired.pem",
        Some("DNS:ecs.example.org"),
        "20200101000000Z",
        "20210101000000Z",
    );
    let m = problem(&with_tls(&key, &expired), "appliance.ssl.cert");
    assert!(m.contains("expired on Jan  1 00:00:00 2021"), "{m}");
    let future = self_signed(
        d,
        "future.pem",
        Some("DNS:ecs.example.org"),
        "20980101000000Z",
        "20990101000000Z",
    );
    let m = problem(&with_tls(&key, &future), "appliance.ssl.cert");
    assert!(m.contains("is valid only from"), "{m}");

    // Names that do not cover appliance.domain; a CN alone does not count.
    let elsewhere = self_signed(
        d,
        "else.pem",
        Some("DNS:www.example.org,DNS:*.ecs.example.org"),
        from,
        to,
    );
    let m = problem(&with_tls(&key, &elsewhere), "appliance.ssl.cert");
    assert!(
        m.contains("does not cover appliance.domain `ecs.example.org`: its subjectAltName names www.example.org, *.ecs.example.org"),
        "{m}"
    );
    let cn_only = self_signed(d, "cn.pem", None, from, to);
    let m = problem(&with_tls(&key, &cn_only), "appliance.ssl.cert");
    assert!(m.contains("it has no DNS names in subjectAltName"), "{m}");

    // All three at once: each named, and no key material in any message.
    let text = with_tls(
        &other,
        &self_signed(
            d,
            "all.pem",
            Some("DNS:x.example.org"),
            "20200101000000Z",
            "20210101000000Z",
        ),
    );
    let all = problems(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    let body: Vec<&str> = other.lines().filter(|l| !l.starts_with("-----")).collect();
    for m in &all {
        assert!(body.iter().all(|b| !m.contains(b)), "{m}");
    }
}

#[test]
fn damaged_base64_is_refused_in_every_pem_and_armored_block() {
    // One base64 character dropped from a line: `config dns` could not read this key.
    let dkim_line = "        dGVzdCBmaXh0dXJlIHBsYWNlaG9sZGVyIGZvciBSU0EgUFJJVkFURSBLRVksIG5v\n";
    let text = ORIGINAL.replace(dkim_line, &dkim_line.replacen("dGVz", "dGV", 1));
    let m = problem(&text, "appliance.dkim.key");
    assert!(
        m.contains("the base64 inside `RSA PRIVATE KEY` does not decode"),
        "{m}"
    );
    assert!(!m.contains("dGV"), "{m}");
    // The same in the three OpenPGP keys.
    let pgp_line = "dCBmaXh0dXJlIHBsYWNlaG9sZGVyIGZvciBwZ3AsIG5vdCBhIGtleS4gdGVzdCBm\n";
    let text = ORIGINAL.replace(
        pgp_line,
        "dCBmaXh0dXJlIHBsYWNlaG9sZGVyIGZvciBwZ3AsIG5vdCBhIGtleS4gdGVzdCB\n",
    );
    let all = problems(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
    for (m, key) in all
        .iter()
        .zip(["appliance.backup.encrypt", "ecs.vault_encrypt", "ecs.vault_sign"])
    {
        assert!(
            m.contains(&format!(": {key}: the base64 inside `PGP PRIVATE KEY BLOCK`")),
            "{m}"
        );
    }
}

#[test]
fn compose_is_checked_against_the_x_ecs_definition() {
    let with = |compose: &str| {
        ORIGINAL.replace(
            "  dkim:\n",
            &format!("  compose: |\n{}  dkim:\n", indent(compose, 4)),
        )
    };
    let good = "services:\n  db: {image: postgres}\n  web: {image: app}\nx-ecs:\n  database: {service: db, owner: app, dump-dir: /dump}\n  hooks: {service: web, migrate: [migrate]}\n  app: [web]\n";
    load(&with(good)).unwrap();
    let m = problem(&with("services: [db\n"), "appliance.compose");
    assert!(m.contains("not a compose file the agent can read"), "{m}");
    let m = problem(&with("version: '3'\n"), "appliance.compose");
    assert!(m.contains("services: missing"), "{m}");
    let m = problem(&with("services:\n  db: {}\n"), "appliance.compose");
    assert!(m.contains("x-ecs: missing"), "{m}");
    let text = with(
        &good
            .replace("service: web,", "service: wbe,")
            .replace("app: [web]", "app: [web, worker]"),
    );
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(
        all[0].contains("appliance.compose: x-ecs.hooks.service: service 'wbe' is not defined"),
        "{all:#?}"
    );
    assert!(
        all[1].contains("appliance.compose: x-ecs.app[1]: service 'worker' is not defined"),
        "{all:#?}"
    );
}

#[test]
fn ecs_domain_setting_must_be_appliance_domain() {
    let text = ORIGINAL.replace("DOMAIN = 'ecs.example.org'", "DOMAIN = 'old.example.org'");
    let m = problem(&text, "ecs.settings");
    assert!(
        m.contains("line 1 of the settings sets DOMAIN = 'old.example.org', but appliance.domain is 'ecs.example.org'"),
        "{m}"
    );
    let text = ORIGINAL.replace(
        "DOMAIN = 'ecs.example.org'",
        "DOMAIN = \"ecs.example.org\"  # ours",
    );
    load(&text).unwrap();
}

#[test]
fn git_sources_and_branches_that_run_commands_or_read_local_files_are_refused() {
    let ecs = "    source: https://github.com/ecs-org/ecs.git\n";
    for bad in [
        "--upload-pack=touch /tmp/pwned",
        "-uevil",
        "ext::sh -c touch% /tmp/pwned",
        "fd::17",
        "file:///srv/ecs.git",
        "/srv/ecs.git",
    ] {
        let text = ORIGINAL.replace(ecs, &format!("    source: '{bad}'\n"));
        let m = problem(&text, "ecs.git.source");
        assert!(
            m.contains("expected an https://, http://, ssh:// or git:// URL"),
            "{m}"
        );
    }
    // A token in a refused URL is not shown.
    let text = ORIGINAL.replace(
        ecs,
        "    source: 'ftp://ops:s3cr3t-token@git.example.org/ecs.git'\n",
    );
    let m = problem(&text, "ecs.git.source");
    assert!(m.contains("the `ftp://` transport is not allowed"), "{m}");
    assert!(!m.contains("s3cr3t"), "{m}");
    for good in [
        "https://github.com/ecs-org/ecs.git",
        "ssh://git@example.org/ecs.git",
        "git@github.com:ecs-org/ecs.git",
    ] {
        load(&ORIGINAL.replace(ecs, &format!("    source: '{good}'\n"))).unwrap();
    }
    for bad in ["--upload-pack=x", "-b", "a..b", "a b", "x.lock", ""] {
        let text = ORIGINAL.replace("    branch: stable\n", &format!("    branch: '{bad}'\n"));
        let m = problem(&text, "ecs.git.branch");
        assert!(m.contains("expected a git branch name"), "{m}");
    }
    let text = ORIGINAL
        .replace("    branch: master\n", "    branch: '--orphan'\n")
        .replace(
            "    source: https://github.com/ecs-org/ecs-appliance.git\n",
            "    source: 'ext::sh'\n",
        );
    let all = problems(&text);
    assert!(all[0].contains("appliance.git.branch"), "{all:#?}");
    assert!(all[1].contains("appliance.git.source"), "{all:#?}");
}

#[test]
fn dump_filename_is_a_file_name() {
    let with = |name: &str| {
        ORIGINAL.replace(
            "  userswitcher:\n",
            &format!("  recover:\n    dump_filename: '{name}'\n  userswitcher:\n"),
        )
    };
    assert_eq!(
        load(&with("ecs.pgdump.gz"))
            .unwrap()
            .ecs
            .recover
            .dump_filename
            .as_deref(),
        Some("ecs.pgdump.gz")
    );
    for bad in [
        "../../etc/shadow",
        "/data/dump/x.pgdump",
        "sub/x.pgdump",
        "--clean",
        "..",
    ] {
        let m = problem(&with(bad), "ecs.recover.dump_filename");
        assert!(m.contains("expected a file name in the dump directory"), "{m}");
    }
}

#[test]
fn oncalendar_is_parsed_by_systemd_analyze() {
    let with = |value: &str| {
        ORIGINAL.replace(
            "    oncalendar: Sun *-*-* 06:30:00\n",
            &format!("    oncalendar: '{value}'\n"),
        )
    };
    for good in ["Sun *-*-* 06:30:00", "daily", "Mon..Fri 04:00"] {
        load(&with(good)).unwrap();
    }
    let text = with("Sunn 25:00");
    let m = problem(&text, "appliance.update.oncalendar");
    assert!(
        m.starts_with(&format!("env.yml:{}:", line_of(&text, "oncalendar:"))),
        "{m}"
    );
    assert!(
        m.contains("`Sunn 25:00` is not a calendar expression systemd can parse"),
        "{m}"
    );
    let m = problem(&with("2001-01-01"), "appliance.update.oncalendar");
    assert!(m.contains("never elapses"), "{m}");
    let m = problem(&with("--help"), "appliance.update.oncalendar");
    assert!(m.contains("systemd can parse"), "{m}");
}

#[test]
fn every_value_problem_of_a_file_is_reported_in_file_order() {
    let dkim_line = "        dGVzdCBmaXh0dXJlIHBsYWNlaG9sZGVyIGZvciBSU0EgUFJJVkFURSBLRVksIG5v\n";
    let text = ORIGINAL
        .replace("    branch: master\n", "    branch: '-x'\n")
        .replace(
            "    oncalendar: Sun *-*-* 06:30:00",
            "    oncalendar: 'Sunn 25:00'",
        )
        .replace(dkim_line, &dkim_line.replacen("dGVz", "dGV", 1))
        .replace("    url: file:///volatile/ecs-backup-test/", "    url: nowhere")
        .replace(
            "    source: https://github.com/ecs-org/ecs.git\n",
            "    source: 'ext::sh'\n",
        )
        .replace("DOMAIN = 'ecs.example.org'", "DOMAIN = 'old.example.org'")
        .replace("  database: ecs\n", "  database: ECS\n");
    let err = load(&text).unwrap_err();
    let all: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    let expected = [
        ("appliance.git.branch", "branch: '-x'"),
        ("appliance.update.oncalendar", "oncalendar:"),
        ("appliance.dkim.key", "    key: |"),
        ("appliance.backup.url", "url: nowhere"),
        ("ecs.git.source", "source: 'ext::sh'"),
        ("ecs.database", "database: ECS"),
        ("ecs.settings", "settings: |"),
    ];
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    for (m, (key, needle)) in all.iter().zip(expected) {
        let line = line_of(&text, needle);
        assert!(m.starts_with(&format!("env.yml:{line}:")), "{key} at {line}: {m}");
        assert!(m.contains(&format!(": {key}: ")), "{key}: {m}");
    }
    let shown = err.to_string();
    assert!(shown.starts_with("7 problems:\n  env.yml:"), "{shown}");
    assert_eq!(shown.lines().count(), 8, "{shown}");
}

#[test]
fn backup_schedule_interval_and_retention_are_checked() {
    let with = |lines: &str| {
        ORIGINAL.replace(
            "    url: file:///volatile/ecs-backup-test/\n",
            &format!("    url: file:///volatile/ecs-backup-test/\n{lines}"),
        )
    };
    let env = load(&with("")).unwrap();
    assert_eq!(env.appliance.backup.schedule, "*-*-* 00:30:00");
    assert_eq!(env.appliance.backup.full_if_older_than, "1M");
    assert_eq!(env.appliance.backup.keep_full, 3);
    let env = load(&with(
        "    schedule: 'Sun *-*-* 02:00'\n    full_if_older_than: 2W3D\n    keep_full: 1\n",
    ))
    .unwrap();
    assert_eq!(env.appliance.backup.full_if_older_than, "2W3D");
    for bad in ["1 month", "M", "12", "1x", "-1M"] {
        let text = with(&format!("    full_if_older_than: '{bad}'\n"));
        let m = problem(&text, "appliance.backup.full_if_older_than");
        assert!(m.contains("expected a duplicity interval"), "{m}");
        assert!(
            m.starts_with(&format!("env.yml:{}:", line_of(&text, "full_if_older_than:"))),
            "{m}"
        );
    }
    let m = problem(&with("    keep_full: 0\n"), "appliance.backup.keep_full");
    assert!(m.contains("expected at least 1"), "{m}");
    let m = problem(&with("    schedule: 'Sunn 25:00'\n"), "appliance.backup.schedule");
    assert!(m.contains("systemd can parse"), "{m}");
}
