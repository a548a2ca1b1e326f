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
