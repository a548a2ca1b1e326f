//! env.yml from careless and hostile hands: secrets pasted wrongly are never echoed, alias bombs,
//! deep nesting, huge and special files cost nothing, YAML 1.1 booleans cloud-init reads
//! differently are refused, and no mutation of a real env.yml panics or names a line outside it.

mod common;

use std::sync::OnceLock;
use std::time::SystemTime;

use appliance_env::{Env, EnvError, keygen::OsRng};
use common::mutate::{self, Edit};
use proptest::prelude::*;

const GENERATED: &str = "ECS_TEST_GENERATED_ENV";

/// A `config new`-style env.yml with real key material, made once per test binary and handed
/// to the capped children (key generation is the slow part).
fn generated() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        std::env::var(GENERATED).unwrap_or_else(|_| {
            Env::generate("ecs.example.org", &mut OsRng, SystemTime::now())
                .unwrap()
                .to_yaml()
        })
    })
}

/// `mutate::in_capped_child` with the generated env passed on.
fn in_capped_child(name: &str) -> bool {
    mutate::in_capped_child(name, 2 << 30, &[(GENERATED, generated())])
}

fn error(text: &str) -> EnvError {
    match Env::from_yaml_str(text, "env.yml") {
        Ok(_) => panic!("loaded although it should fail"),
        Err(e) => e,
    }
}

fn assert_hidden(message: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!message.contains(s.as_str()), "secret `{s}` shown in:\n{message}");
        // Not even a part of a line.
        assert!(
            !message.contains(&s[..16.min(s.len())]),
            "part of `{s}` shown in:\n{message}"
        );
    }
}

/// The lines of every block scalar under a secret key (`key: |`, `*_private: |`, `encrypt: |`,
/// `vault_*: |`): where it starts and its body lines.
fn secret_blocks(text: &str) -> Vec<(usize, Vec<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let secret = ["key: |", "_private: |", "encrypt: |", "vault_sign: |"]
            .iter()
            .any(|k| t.ends_with(k))
            && !t.starts_with('#');
        if secret {
            let body: Vec<String> = lines[i + 1..]
                .iter()
                .take_while(|b| b.len() - b.trim_start().len() > l.len() - t.len() || b.trim().is_empty())
                .map(|b| b.trim().to_string())
                .filter(|b| b.len() >= 40)
                .collect();
            blocks.push((i, body));
        }
    }
    blocks
}

#[test]
fn a_pem_pasted_without_a_block_marker_is_not_echoed() {
    let text = generated();
    let blocks = secret_blocks(text);
    assert!(blocks.len() >= 6, "{}", blocks.len());
    for (at, secrets) in blocks {
        assert!(secrets.len() > 2);
        // `key: -----BEGIN ...` with the body as a plain multi-line scalar.
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let first = lines[at + 1].trim().to_string();
        let first = if first.is_empty() {
            lines[at + 2].trim().to_string()
        } else {
            first
        };
        lines[at] = lines[at].replace(": |", &format!(": {first}"));
        let pasted = lines.join("\n") + "\n";
        let e = error(&pasted);
        let message = e.to_string();
        assert_hidden(&message, &secrets);
        let key = lines[at].trim_start().split(':').next().unwrap().to_string();
        assert!(message.contains(&format!("{key}: ")), "{message}");
        assert!(message.starts_with(&format!("env.yml:{}:", at + 1)), "{message}");
    }
}

#[test]
fn a_pem_one_level_too_high_or_folded_into_a_mapping_is_not_echoed() {
    let text = generated();
    let start = text.find("  dkim:\n").unwrap();
    let dkim_line = text[..start].lines().count();
    let secrets = secret_blocks(text)
        .into_iter()
        .find(|(at, _)| *at > dkim_line)
        .unwrap()
        .1;
    let body_start = text[start..].find("-----BEGIN").unwrap() + start;
    let body_end = text[body_start..].find("-----END RSA PRIVATE KEY-----").unwrap() + body_start + 29;
    let pem = text[body_start..body_end].replace('\n', " ");
    let (head, tail) = (
        &text[..start],
        &text[text[body_end..].find('\n').unwrap() + body_end + 1..],
    );
    for dkim in [
        format!("  dkim: \"{pem}\"\n"),
        format!("  dkim:\n    key: [\"{pem}\"]\n"),
        format!("  dkim:\n    key: {{\"{pem}\": 1}}\n"),
    ] {
        let e = error(&format!("{head}{dkim}{tail}"));
        assert_hidden(&e.to_string(), &secrets);
    }
    // The same through `config new --extra`, where serde quotes strings it cannot use.
    let env = Env::from_yaml_str(text, "env.yml").unwrap().0;
    for extra in [
        format!("appliance:\n  dkim: \"{pem}\"\n"),
        format!("appliance:\n  standby: \"{pem}\"\n"),
        format!("ecs:\n  vault_sign: [\"{pem}\"]\n"),
    ] {
        let e = env.merge_yaml_str(&extra, "extra.yml").unwrap_err();
        assert_hidden(&e.to_string(), &secrets);
        assert!(e.to_string().starts_with("extra.yml:"), "{e}");
    }
}

#[test]
fn a_backup_url_password_is_not_echoed() {
    let text = generated();
    let url_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("url: "))
        .unwrap();
    for (bad, shown) in [
        // Not a URL at all: nothing of it is shown.
        ("backup:hunter2secret@backup.example.org/ecs", None),
        // A bad scheme: the URL is shown with its password hidden.
        (
            "s_f_t_p://backup:hunter2secret@backup.example.org/ecs",
            Some("backup:***@"),
        ),
    ] {
        let e = error(&text.replacen(url_line, &format!("    url: {bad}"), 1));
        let message = e.to_string();
        assert!(!message.contains("hunter2secret"), "{message}");
        assert!(message.contains("appliance.backup.url: expected"), "{message}");
        if let Some(shown) = shown {
            assert!(message.contains(shown), "{message}");
        }
    }
    let env = Env::from_yaml_str(text, "env.yml").unwrap().0;
    let e = env
        .merge_yaml_str(
            "appliance:\n  backup:\n    url: [\"sftp://backup:hunter2secret@host/x\"]\n",
            "extra.yml",
        )
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2secret"), "{e}");
}

#[test]
fn a_settings_secret_in_a_bad_value_is_not_echoed() {
    let text = generated();
    let e = error(&text.replacen("  settings: |\n", "  settings: 12:30\n  settingz: |\n", 1));
    let message = e.to_string();
    assert!(!message.contains("12:30"), "{message}");
}

#[test]
fn an_alias_bomb_is_refused_naming_the_limit() {
    if !in_capped_child("an_alias_bomb_is_refused_naming_the_limit") {
        return;
    }
    let bomb = mutate::alias_bomb("#cloud-config\n");
    assert!(bomb.len() < 1100, "{}", bomb.len());
    let e = error(&bomb);
    let message = e.to_string();
    assert!(
        message.contains("the document grows past the limit of 100000 values")
            && message.contains("alias bomb"),
        "{message}"
    );
    assert!(message.starts_with("env.yml:"), "{message}");
    // Merged as `--extra`, the same.
    let env = Env::from_yaml_str(generated(), "env.yml").unwrap().0;
    let e = env.merge_yaml_str(&bomb, "extra.yml").unwrap_err();
    assert!(e.to_string().contains("limit of 100000 values"), "{e}");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for n in [65, 1000, 1_000_000] {
        let flow = format!("#cloud-config\ndeep: {}{}\n", "[".repeat(n), "]".repeat(n));
        let message = error(&flow).to_string();
        assert!(
            message.contains("nest deeper than the limit of 32 levels"),
            "{message}"
        );
    }
    // Up to the limit, the document reaches serde, whose recursion (debug build, a test
    // thread's 2 MiB stack) must fit: an unknown key's value is deserialized whole. Once took
    // more than 2 MiB at 64 levels, hence the limit of 32.
    for n in 1..=40 {
        let flow = format!("#cloud-config\ndeep: {}{}\n", "[".repeat(n), "]".repeat(n));
        let block: String = (0..n).map(|d| format!("{}k{d}:\n", "  ".repeat(d))).collect();
        for text in [flow, format!("#cloud-config\n{block}")] {
            let _ = Env::from_yaml_str(&text, "env.yml");
        }
    }
    let block: String = (0..200).map(|d| format!("{}k{d}:\n", "  ".repeat(d))).collect();
    let message = error(&format!("#cloud-config\n{block}")).to_string();
    assert!(
        message.contains("nest deeper than the limit of 32 levels"),
        "{message}"
    );
}

#[test]
fn a_50_mb_text_is_refused_naming_the_limit() {
    let mut text = generated().to_string();
    let filler = format!("# {}\n", "x".repeat(1000));
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(&filler);
    }
    let message = error(&text).to_string();
    assert!(
        message.contains("more than the limit of 4 MiB for env.yml"),
        "{message}"
    );
    let line = message.split(':').nth(1).unwrap().parse::<usize>().unwrap();
    assert!(line > 1 && line < text.lines().count(), "{message}");
}

#[test]
fn files_that_are_not_regular_or_too_big_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(50 * 1024 * 1024).unwrap();
    for (path, expected) in [
        (big.as_path(), "larger than the limit of 4 MiB"),
        (
            std::path::Path::new("/dev/zero"),
            "a character device, not a regular file",
        ),
        (dir.path(), "a directory, not a regular file"),
    ] {
        let e = Env::load(path).unwrap_err();
        assert_eq!(e.to_string(), format!("reading {}: {expected}", path.display()));
    }
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A writer that never closes: reading would wait for it forever.
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let e = Env::load(&fifo).unwrap_err();
    assert!(
        e.to_string().ends_with("a FIFO (named pipe), not a regular file"),
        "{e}"
    );
    // Not UTF-8: the line and column of the first bad byte.
    let path = dir.path().join("latin1.yml");
    std::fs::write(
        &path,
        b"#cloud-config\nappliance:\n  domain: caf\xe9.example.org\n",
    )
    .unwrap();
    let e = Env::load(&path).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3:14: expected UTF-8", path.display())),
        "{e}"
    );
}

/// What PyYAML, cloud-init's parser, makes of `key: <value>`, as Python's repr.
fn pyyaml(value: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, yaml; print(repr(yaml.safe_load(sys.stdin)['k']))",
        ])
        .stdin_bytes(format!("k: {value}\n"))
        .unwrap();
    out.trim().to_string()
}

trait StdinBytes {
    fn stdin_bytes(&mut self, input: String) -> std::io::Result<String>;
}

impl StdinBytes for std::process::Command {
    fn stdin_bytes(&mut self, input: String) -> std::io::Result<String> {
        use std::io::Write;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().unwrap().write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        assert!(out.status.success());
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[test]
fn booleans_are_read_as_pyyaml_reads_them_or_refused() {
    let text = generated();
    assert!(text.contains("\ndisable_root: false\n"));
    for value in [
        "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "false", "False", "FALSE", "no", "No",
        "NO", "off", "Off", "OFF", "y", "Y", "n", "N", "'y'", "\"n\"",
    ] {
        let python = pyyaml(value);
        let changed = text.replacen(
            "\ndisable_root: false\n",
            &format!("\ndisable_root: {value}\n"),
            1,
        );
        match Env::from_yaml_str(&changed, "env.yml") {
            Ok((env, _)) => {
                // Accepted only where PyYAML reads the same boolean.
                let ours = if env.disable_root == Some(true) {
                    "True"
                } else {
                    "False"
                };
                assert_eq!(python, ours, "disable_root: {value}");
            }
            Err(e) => {
                // Refused only where PyYAML reads no boolean at all.
                assert!(python != "True" && python != "False", "{value}: {python}: {e}");
                let message = e.to_string();
                assert!(
                    message.contains("disable_root: `") && message.contains("expected true or false"),
                    "{message}"
                );
            }
        }
    }
    // The same for our own booleans and for cloud-init's keys passed through.
    let changed = text.replacen("    automatic: true\n", "    automatic: y\n", 1);
    assert!(
        error(&changed)
            .to_string()
            .contains("appliance.update.automatic: `y` is not a boolean")
    );
    let e = error(&format!("{text}ssh_pwauth: n\n"));
    assert!(e.to_string().contains("ssh_pwauth: `n` is not a boolean"), "{e}");
    let e = error(&format!("{text}users:\n  - name: x\n    lock_passwd: Y\n"));
    assert!(
        e.to_string()
            .contains("users[0].lock_passwd: `Y` is not a boolean"),
        "{e}"
    );
}

fn assert_located(text: &str, result: Result<(Env, Vec<appliance_env::Warning>), EnvError>) {
    match result {
        Ok(_) => {}
        Err(EnvError::Syntax { at, .. }) | Err(EnvError::Invalid { at, .. }) => {
            assert!(
                at.line >= 1 && at.line <= mutate::last_line(text),
                "line {} outside 1..={}",
                at.line,
                mutate::last_line(text)
            );
        }
        Err(EnvError::Several(all)) => {
            for e in all {
                assert_located(text, Err(e));
            }
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// Any few careless edits of a generated env.yml load or fail with an error naming a line in
/// the file; none panics. In a child whose address space is capped at 2 GiB, so an unbounded
/// allocation fails the test (an alias bomb once took 24 GB).
#[test]
fn mutated_env_never_panics_and_errors_name_a_line() {
    if !in_capped_child("mutated_env_never_panics_and_errors_name_a_line") {
        return;
    }
    let base = Env::from_yaml_str(generated(), "env.yml").unwrap().0;
    let config = ProptestConfig {
        cases: 96,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&prop::collection::vec(mutate::edit(), 1..5), |edits| {
            let mut text = generated().to_string();
            for e in &edits {
                text = mutate::apply(&text, e);
            }
            assert_located(&text, Env::from_yaml_str(&text, "env.yml"));
            let body = text.strip_prefix("#cloud-config\n").unwrap_or(&text);
            match base.merge_yaml_str(body, "extra.yml") {
                Ok(_) => {}
                Err(e) => assert_located(body, Err(e)),
            }
            Ok(())
        })
        .unwrap();
}

/// The worst cases, fixed, under the same cap.
#[test]
fn mutations_are_bounded() {
    if !in_capped_child("mutations_are_bounded") {
        return;
    }
    for text in [
        mutate::alias_bomb("#cloud-config\n"),
        format!("#cloud-config\n{}", "x: y\n".repeat(11 * 1024 * 1024)),
        format!("#cloud-config\nk: {}\n", "[".repeat(5_000_000)),
    ] {
        assert_located(&text, Env::from_yaml_str(&text, "env.yml"));
    }
    for edit in [Edit::Nest(100_000, true), Edit::HugeScalar(3, 3_000_000)] {
        let text = mutate::apply(generated(), &edit);
        assert_located(&text, Env::from_yaml_str(&text, "env.yml"));
    }
}
