//! `ecs-build config check|seed|dns` on hand-written files: the original appliance's structure,
//! and mistakes that must exit 2 with file, line and key.

mod config_common;

use config_common::*;
use host_util::CommandExt;

fn check(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.yml");
    std::fs::write(&path, text).unwrap();
    run(ecs_build()
        .current_dir(dir.path())
        .args(["config", "check", "env.yml"]))
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

#[test]
fn original_env_passes_with_a_warning_per_key_read_differently() {
    let r = run(ecs_build().args(["config", "check"]).arg(original_fixture()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 6, "{}", r.stderr);
    for key in [
        "ssh_deprecated_keys",
        "appliance.allowed_hosts",
        "appliance.extra.states",
        "appliance.extra.files[1].content",
        "appliance.storage.setup",
        "ecs.migrate",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(&format!(": {key}: "))),
            "{key}: {}",
            r.stderr
        );
    }
    assert!(r.stdout.contains("valid (6 warnings)"), "{}", r.stdout);
}

#[test]
fn mistakes_name_file_line_and_key() {
    let original = std::fs::read_to_string(original_fixture()).unwrap();

    let text = original.replace("    exporter: true", "    exportr: true");
    let line = line_of(&text, "exportr");
    assert_bad_input(
        &check(&text),
        &format!(
            "env.yml:{line}:5: appliance.metric.exportr: unknown key; did you mean `appliance.metric.exporter`?"
        ),
    );

    let text = original.replace("      enabled: true", "      enabled: 42");
    let line = line_of(&text, "enabled: 42");
    assert_bad_input(
        &check(&text),
        &format!("env.yml:{line}:7: appliance.ssl.letsencrypt.enabled: expected true or false"),
    );

    let text = original.replace("    url: file:///volatile/ecs-backup-test/\n", "");
    let line = line_of(&text, "  backup:");
    assert_bad_input(
        &check(&text),
        &format!("env.yml:{line}:3: appliance.backup.url: missing; this key is required"),
    );

    let text = original.replace("    url: file:///volatile/ecs-backup-test/", "    url: on");
    assert_bad_input(
        &check(&text),
        "appliance.backup.url: `on` is not a string to cloud-init's YAML 1.1 parser",
    );

    let r = run(ecs_build().args(["config", "check", "/nonexistent/env.yml"]));
    assert_bad_input(&r, "reading /nonexistent/env.yml");
}

/// Every value problem is printed, one per line under the count, each with line and key.
#[test]
fn every_mistake_of_a_file_is_reported_at_once() {
    let original = std::fs::read_to_string(original_fixture()).unwrap();
    let dkim_line = "        dGVzdCBmaXh0dXJlIHBsYWNlaG9sZGVyIGZvciBSU0EgUFJJVkFURSBLRVksIG5v\n";
    let text = original
        .replace(
            "    oncalendar: Sun *-*-* 06:30:00",
            "    oncalendar: 'Sunn 25:00'",
        )
        .replace(dkim_line, &dkim_line.replacen("dGVz", "dGV", 1))
        .replace(
            "    source: https://github.com/ecs-org/ecs.git\n",
            "    source: '--upload-pack=touch /tmp/x'\n",
        )
        .replace(
            "  userswitcher:\n",
            "  recover:\n    dump_filename: ../../etc/shadow\n  userswitcher:\n",
        )
        .replace("DOMAIN = 'ecs.example.org'", "DOMAIN = 'old.example.org'");
    let r = check(&text);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let errors: Vec<&str> = r.stderr.lines().filter(|l| !l.contains("WARN")).collect();
    assert_eq!(errors[0], "error: 5 problems:", "{}", r.stderr);
    let expected = [
        ("appliance.update.oncalendar", "oncalendar:"),
        ("appliance.dkim.key", "    key: |"),
        ("ecs.git.source", "--upload-pack"),
        ("ecs.recover.dump_filename", "dump_filename:"),
        ("ecs.settings", "settings: |"),
    ];
    assert_eq!(errors.len(), 1 + expected.len(), "{}", r.stderr);
    for (line, (key, needle)) in errors[1..].iter().zip(expected) {
        let prefix = format!("  env.yml:{}:", line_of(&text, needle));
        assert!(line.starts_with(&prefix), "{key}: {line}");
        assert!(line.contains(&format!(": {key}: ")), "{key}: {line}");
    }
    assert!(!r.stdout.contains("valid"), "{}", r.stdout);
}

/// Without systemd-analyze an oncalendar value cannot be checked: that is said, naming the
/// package, rather than passed silently.
#[test]
fn oncalendar_without_systemd_analyze_names_the_package() {
    let original = std::fs::read_to_string(original_fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("env.yml"), &original).unwrap();
    let r = run(ecs_build()
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .args(["config", "check", "env.yml"]));
    assert_bad_input(
        &r,
        "appliance.update.oncalendar: cannot be checked: systemd-analyze not found: install the Debian package `systemd`",
    );
}

#[test]
fn seed_and_dns_refuse_a_bad_env_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.yml");
    std::fs::write(&env, "#cloud-config\nappliance:\n  domain: ecs.example.org\n").unwrap();
    let r = run(ecs_build()
        .args(["config", "seed"])
        .arg(&env)
        .arg("-o")
        .arg(dir.path().join("seed.iso")));
    assert_bad_input(&r, "appliance.dkim: missing; this key is required");
    assert_eq!(listing(dir.path()), ["env.yml"]);
    let r = run(ecs_build().args(["config", "dns"]).arg(&env));
    assert_bad_input(&r, "appliance.dkim: missing");
    // The fixture's DKIM key is a placeholder: the DNS record cannot be made from it.
    let r = run(ecs_build().args(["config", "dns"]).arg(original_fixture()));
    assert_bad_input(&r, "appliance.dkim.key: expected an RSA private key");
}

#[test]
fn seed_vfat_and_dns_from_a_generated_env() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cfg");
    let r = run(ecs_build()
        .args(["config", "new", "--domain", "mail.example.org", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fat = dir.path().join("seed.img");
    let r = run(ecs_build()
        .args(["config", "seed", "--vfat"])
        .arg(out.join("env.yml"))
        .arg("-o")
        .arg(&fat));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&fat), 0o600);
    let blkid = tool("blkid", "util-linux")
        .arg("-p")
        .arg(&fat)
        .run_stdout()
        .unwrap();
    assert!(
        blkid.contains("LABEL=\"cidata\"") && blkid.contains("TYPE=\"vfat\""),
        "{blkid}"
    );

    let r = run(ecs_build().args(["config", "dns"]).arg(out.join("env.yml")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for record in [
        "mail.example.org. IN A 192.0.2.1",
        "mail.example.org. IN MX 10 mail.example.org.",
        "mail.example.org. IN TXT \"v=spf1 a mx -all\"",
        "_dmarc.mail.example.org. IN TXT \"v=DMARC1",
        "default._domainkey.mail.example.org. IN TXT ( \"v=DKIM1; k=rsa; s=email; p=",
    ] {
        assert!(r.stdout.contains(record), "{record} not in\n{}", r.stdout);
    }
    let dkim = &r.stdout[r.stdout.find("default._domainkey").unwrap()..];
    let strings: Vec<&str> = dkim.split('"').skip(1).step_by(2).collect();
    assert!(
        strings.len() > 1 && strings.iter().all(|s| s.len() <= 255),
        "{dkim}"
    );
}

/// `ecs-build config check PATH` under a 1 GiB address-space cap (util-linux `prlimit`) and a
/// hang guard (`timeout`): a regression fails the test instead of eating the machine.
fn check_capped(path: &std::path::Path) -> Run {
    run(std::process::Command::new("prlimit")
        .arg(format!("--as={}", 1u64 << 30))
        .args([
            "--",
            "timeout",
            "300",
            env!("CARGO_BIN_EXE_ecs-build"),
            "config",
            "check",
        ])
        .arg(path)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("RUST_LOG", "warn"))
}

/// A fresh env.yml from `config new`, with real key material.
fn generated_env(dir: &std::path::Path) -> String {
    let out = dir.join("cfg");
    let r = run(ecs_build()
        .args(["config", "new", "--domain", "ecs.example.org", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::read_to_string(out.join("env.yml")).unwrap()
}

#[test]
fn secrets_pasted_wrongly_are_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let env = generated_env(dir.path());
    // Every private key and OpenPGP key pasted without `|`: the block becomes one folded line.
    let lines: Vec<&str> = env.lines().collect();
    let mut cases = 0;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with('#')
            || !["key: |", "_private: |", "encrypt: |", "vault_sign: |"]
                .iter()
                .any(|k| t.ends_with(k))
        {
            continue;
        }
        let secrets: Vec<&str> = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("-----END"))
            .filter(|l| l.len() >= 40)
            .collect();
        let mut pasted: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        pasted[i] = line.replace(": |", &format!(": {}", lines[i + 1].trim()));
        pasted.remove(i + 1);
        let r = check(&(pasted.join("\n") + "\n"));
        let key = t.split(':').next().unwrap();
        assert_bad_input(&r, &format!("env.yml:{}:", i + 1));
        assert!(r.stderr.contains(&format!("{key}: ")), "{}", r.stderr);
        for s in &secrets {
            assert!(!r.stderr.contains(&s[..20]), "a secret line shown:\n{}", r.stderr);
        }
        cases += 1;
    }
    assert!(cases >= 6, "{cases}");

    let url = env.lines().find(|l| l.trim_start().starts_with("url: ")).unwrap();
    for bad in [
        "backup:hunter2secret@backup.example.org/ecs",
        "s_f_t_p://backup:hunter2secret@host/ecs",
    ] {
        let r = check(&env.replacen(url, &format!("    url: {bad}"), 1));
        assert_bad_input(&r, "appliance.backup.url: expected a duplicity URL");
        assert!(!r.stderr.contains("hunter2secret"), "{}", r.stderr);
    }
}

#[test]
fn hostile_files_are_refused_at_once_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // "Billion laughs" in 1 KB: 9^10 strings once every alias is expanded.
    let mut bomb = String::from("#cloud-config\na0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    for level in 1..10 {
        let items = vec![format!("*a{}", level - 1); 9].join(",");
        bomb.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    assert!(bomb.len() < 1024);
    let bomb_path = dir.path().join("bomb.yml");
    std::fs::write(&bomb_path, &bomb).unwrap();
    let big = dir.path().join("big.yml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(50 * 1024 * 1024)
        .unwrap();
    let fifo = dir.path().join("fifo.yml");
    tool("mkfifo", "coreutils").arg(&fifo).run_checked().unwrap();
    // A writer that never closes: a blocking read would wait for it forever.
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let sub = dir.path().join("env.yml.d");
    std::fs::create_dir(&sub).unwrap();
    for (path, needle) in [
        (
            bomb_path.as_path(),
            "the document grows past the limit of 100000 values",
        ),
        (big.as_path(), "larger than the limit of 4 MiB"),
        (
            std::path::Path::new("/dev/zero"),
            "reading /dev/zero: a character device, not a regular file",
        ),
        (fifo.as_path(), "a FIFO (named pipe), not a regular file"),
        (sub.as_path(), "a directory, not a regular file"),
    ] {
        assert_bad_input(&check_capped(path), needle);
    }
    // The other commands that read an env.yml (or a file merged into one) refuse them too.
    let out = dir.path().join("seed.iso");
    let r = run(ecs_build().args(["config", "seed", "/dev/zero", "-o"]).arg(&out));
    assert_bad_input(&r, "reading /dev/zero: a character device, not a regular file");
    let r = run(ecs_build()
        .args(["config", "new", "--domain", "ecs.example.org", "--extra"])
        .arg(&fifo)
        .arg("--out")
        .arg(dir.path().join("cfg")));
    assert_bad_input(&r, "a FIFO (named pipe), not a regular file");
    let r = run(ecs_build()
        .args(["config", "print", "/dev/zero", "-o"])
        .arg(dir.path().join("p.pdf")));
    assert_bad_input(&r, "a character device, not a regular file");
    assert!(!out.exists() && !dir.path().join("cfg").exists() && !dir.path().join("p.pdf").exists());
}

#[test]
fn booleans_cloud_init_reads_differently_are_refused() {
    let original = std::fs::read_to_string(original_fixture()).unwrap();
    let text = original.replacen("disable_root: false", "disable_root: y", 1);
    assert_ne!(text, original);
    assert_bad_input(
        &check(&text),
        &format!(
            "env.yml:{}:15: disable_root: `y` is not a boolean to cloud-init's YAML 1.1 parser",
            line_of(&text, "disable_root: y")
        ),
    );
    let r = check(&original.replacen("disable_root: false", "disable_root: off", 1));
    assert_eq!(r.code, 0, "{}", r.stderr);
}
