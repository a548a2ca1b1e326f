//! Loading env.yml: the original appliance's structure with warnings, and errors that name
//! file, line, column and key for each kind of mistake.

use appliance_env::{Env, EnvError};

const ORIGINAL: &str = include_str!("fixtures/original-env.yml");

fn load(text: &str) -> Result<(Env, Vec<appliance_env::Warning>), EnvError> {
    Env::from_yaml_str(text, "env.yml")
}

fn error(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("loaded although it should fail:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

#[test]
fn original_structure_loads_with_one_warning_per_key_read_differently() {
    let (env, warnings) = load(ORIGINAL).unwrap();
    assert_eq!(env.appliance.domain, "ecs.example.org");
    assert_eq!(
        env.appliance.extra.files[1].contents,
        "written with the deprecated key\n"
    );
    assert_eq!(env.appliance.update.oncalendar, "Sun *-*-* 06:30:00");
    assert_eq!(env.appliance.backup.mount.as_ref().unwrap().fstype, "cifs");
    // The original's `storage.ignore` is obeyed: both directories on the root filesystem.
    assert!(env.appliance.storage.ignore.volatile && env.appliance.storage.ignore.data);
    let got: Vec<(String, usize)> = warnings.iter().map(|w| (w.key.clone(), w.at.line)).collect();
    let expected = [
        ("ssh_deprecated_keys", "ssh_deprecated_keys:"),
        ("appliance.allowed_hosts", "allowed_hosts:"),
        ("appliance.extra.files[1].content", "content: |"),
        ("appliance.extra.states", "states: |"),
        ("appliance.storage.setup", "setup: |"),
        ("ecs.migrate", "migrate:"),
    ];
    let expected: Vec<(String, usize)> = expected
        .iter()
        .map(|(k, needle)| (k.to_string(), line_of(ORIGINAL, needle)))
        .collect();
    assert_eq!(got, expected);
    for w in &warnings {
        assert!(
            w.to_string().starts_with(&format!("env.yml:{}:", w.at.line)),
            "{w}"
        );
    }
}

#[test]
fn misspelt_key_names_it_its_line_and_the_closest_key() {
    let text = ORIGINAL.replace("  domain: ecs.example.org", "  domian: ecs.example.org");
    let line = line_of(&text, "domian:");
    assert_eq!(
        error(&text),
        format!("env.yml:{line}:3: appliance.domian: unknown key; did you mean `appliance.domain`?")
    );
    let text = ORIGINAL.replace("    letsencrypt:", "    letsencrpyt:");
    let err = error(&text);
    assert!(
        err.contains("appliance.ssl.letsencrpyt: unknown key; did you mean `appliance.ssl.letsencrypt`?"),
        "{err}"
    );
    let text = ORIGINAL.replace("appliance:\n", "applianse:\n");
    let err = error(&text);
    assert!(
        err.contains(&format!(
            "env.yml:{}:1: applianse: unknown key; did you mean `appliance`?",
            line_of(&text, "applianse:")
        )),
        "{err}"
    );
}

#[test]
fn unknown_key_far_from_any_lists_the_valid_ones() {
    let text = ORIGINAL.replace("    exporter: true", "    grafana: true");
    let err = error(&text);
    assert!(
        err.contains("appliance.metric.grafana: unknown key; expected one of: exporter, server, gui, pghero"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_key_line_and_expectation() {
    let text = ORIGINAL.replace("client_certs_mandatory: false", "client_certs_mandatory: maybe");
    let line = line_of(&text, "client_certs_mandatory: maybe");
    assert_eq!(
        error(&text),
        format!("env.yml:{line}:5: appliance.ssl.client_certs_mandatory: expected true or false")
    );
    let text = ORIGINAL.replace("    packages:\n      - qrencode", "    packages: qrencode");
    let err = error(&text);
    assert!(
        err.starts_with(&format!("env.yml:{}:", line_of(&text, "packages: qrencode"))),
        "{err}"
    );
    assert!(
        err.contains("appliance.extra.packages: ") && err.contains("sequence"),
        "{err}"
    );
}

#[test]
fn missing_required_key_names_it() {
    let cut = ORIGINAL.find("\n  vault_sign: |").unwrap();
    let text = &ORIGINAL[..cut + 1];
    let line = text.lines().position(|l| l == "ecs:").unwrap() + 1;
    assert_eq!(
        error(text),
        format!("env.yml:{line}:1: ecs.vault_sign: missing; this key is required")
    );
    let text = ORIGINAL.replace("  domain: ecs.example.org\n", "");
    let err = error(&text);
    assert!(
        err.contains("appliance.domain: missing; this key is required"),
        "{err}"
    );
}

#[test]
fn scalars_yaml_1_1_reads_differently_must_be_quoted() {
    for (from, to) in [
        ("url: file:///volatile/ecs-backup-test/", "url: yes"),
        ("oncalendar: Sun *-*-* 06:30:00", "oncalendar: 12:30"),
        ("permissions: \"0600\"", "permissions: 0600"),
        ("branch: stable", "branch: 2024-01-01"),
    ] {
        let text = ORIGINAL.replace(from, to);
        let err = error(&text);
        let value = to.split(": ").nth(1).unwrap();
        assert!(
            err.contains(&format!("expected a quoted string: '{value}'")),
            "{to}: {err}"
        );
        assert!(
            err.starts_with(&format!("env.yml:{}:", line_of(&text, to))),
            "{to}: {err}"
        );
    }
}

#[test]
fn values_are_validated_with_their_line() {
    let text = ORIGINAL.replace("  domain: ecs.example.org", "  domain: not a domain");
    let line = line_of(&text, "not a domain");
    let err = error(&text);
    assert!(
        err.starts_with(&format!(
            "env.yml:{line}:3: appliance.domain: expected a domain name"
        )),
        "{err}"
    );
    let text = ORIGINAL.replace("path: /etc/example.conf", "path: etc/example.conf");
    let err = error(&text);
    assert!(
        err.contains("appliance.extra.files[0].path: expected an absolute path"),
        "{err}"
    );
    let text = ORIGINAL.replacen("-----END RSA PRIVATE KEY-----", "", 1);
    let err = error(&text);
    assert!(
        err.contains("appliance.dkim.key: expected `-----END RSA PRIVATE KEY-----`"),
        "{err}"
    );
}

#[test]
fn header_and_syntax_errors_have_positions() {
    let err = error(ORIGINAL.trim_start_matches("#cloud-config\n"));
    assert!(
        err.starts_with("env.yml:1:1: expected `#cloud-config` as the first line"),
        "{err}"
    );
    let err = error("#cloud-config\nappliance:\n  domain: 'unterminated\n");
    assert!(err.starts_with("env.yml:3:"), "{err}");
    let err = error("#cloud-config\n- a list\n");
    assert!(err.contains("expected a mapping"), "{err}");
}

#[test]
fn other_cloud_config_keys_pass_through() {
    let text = ORIGINAL.replace(
        "disable_root: false\n",
        "disable_root: false\ntimezone: Europe/Vienna\nruncmd:\n  - [echo, hi]\n",
    );
    let (env, warnings) = load(&text).unwrap();
    assert_eq!(warnings.len(), 6);
    assert_eq!(env.cloud_config["timezone"], serde_json::json!("Europe/Vienna"));
    assert_eq!(env.cloud_config["runcmd"], serde_json::json!([["echo", "hi"]]));
    let (again, _) = load(&env.to_yaml()).unwrap();
    assert_eq!(again, env);
}

#[test]
fn flatten_gives_the_original_variable_names() {
    let (env, _) = load(ORIGINAL).unwrap();
    let vars: std::collections::HashMap<String, String> = env.flatten().into_iter().collect();
    let get = |k: &str| vars.get(k).unwrap_or_else(|| panic!("{k} missing")).as_str();
    assert_eq!(get("APPLIANCE_DOMAIN"), "ecs.example.org");
    assert_eq!(get("APPLIANCE_BACKUP_URL"), "file:///volatile/ecs-backup-test/");
    assert_eq!(get("APPLIANCE_BACKUP_MOUNT_TYPE"), "cifs");
    assert_eq!(get("APPLIANCE_SSL_LETSENCRYPT_ENABLED"), "true");
    assert_eq!(get("APPLIANCE_UPDATE_AUTOMATIC"), "true");
    assert_eq!(get("APPLIANCE_EXTRA_FILES_LEN"), "2");
    assert_eq!(get("APPLIANCE_EXTRA_FILES_0_PERMISSIONS"), "0600");
    assert_eq!(get("APPLIANCE_EXTRA_PACKAGES_0"), "qrencode");
    assert_eq!(get("APPLIANCE_EXTRA_PACKAGES_LEN"), "1");
    assert_eq!(get("ECS_RECOVER_FROM_BACKUP"), "false");
    assert_eq!(get("ECS_GIT_BRANCH"), "stable");
    assert_eq!(get("SSH_AUTHORIZED_KEYS_LEN"), "1");
    assert!(get("ECS_SETTINGS").contains("DOMAIN = 'ecs.example.org'"));
    assert!(!vars.contains_key("APPLIANCE_ALLOWED_HOSTS"));
    assert!(!vars.contains_key("APPLIANCE_SENTRY"));
}

#[test]
fn merge_reports_lines_in_the_extra_file() {
    let (env, _) = load(ORIGINAL).unwrap();
    let extra = "appliance:\n  update:\n    automatic: false\n  metric:\n    gui: true\necs:\n  first_user:\n    email: office@example.org\n    first_name: Jane\n    last_name: Doe\n    gender: f\n";
    let (merged, _) = env.merge_yaml_str(extra, "extra.yml").unwrap();
    assert!(!merged.appliance.update.automatic);
    assert!(merged.appliance.metric.gui && merged.appliance.metric.exporter);
    assert_eq!(
        merged.ecs.first_user.unwrap().gender,
        appliance_env::Gender::Female
    );
    let err = env
        .merge_yaml_str("appliance:\n  update:\n    automatik: false\n", "extra.yml")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "extra.yml:3:5: appliance.update.automatik: unknown key; did you mean `appliance.update.automatic`?"
    );
    let err = env
        .merge_yaml_str("ecs:\n  first_user:\n    email: x@example.org\n", "extra.yml")
        .unwrap_err();
    assert!(
        err.to_string().starts_with("extra.yml:2:3: ecs.first_user"),
        "{err}"
    );
    let err = env
        .merge_yaml_str("ecs:\n  database: 12\n", "extra.yml")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("extra.yml:2:3: ecs.database: invalid type"),
        "{err}"
    );
}

#[test]
fn docs_name_every_key() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/env.md")).unwrap();
    for key in appliance_env::schema::KEYS {
        assert!(
            docs.contains(&format!("`{}`", key.path)),
            "docs/env.md does not describe `{}`",
            key.path
        );
    }
    for (path, _) in appliance_env::schema::LEGACY {
        assert!(
            docs.contains(&format!("`{path}`")),
            "docs/env.md does not mention `{path}`"
        );
    }
}

/// Every key the model writes is in the schema table (which drives checks, comments and docs).
#[test]
fn schema_covers_the_model() {
    let text = ORIGINAL.replace(
        "  userswitcher:\n    enabled: false\n",
        "  userswitcher:\n    enabled: false\n    parameter: x\n  recover:\n    from_backup: true\n    from_dump: true\n    dump_filename: x.pgdump\n  first_user:\n    email: a@example.org\n    first_name: A\n    last_name: B\n    gender: m\n",
    );
    let (env, _) = load(&text).unwrap();
    let mut value = serde_json::to_value(&env).unwrap();
    for passed_through in env.cloud_config.keys() {
        value.as_object_mut().unwrap().remove(passed_through);
    }
    fn walk(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    out.push(p.clone());
                    walk(v, p, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items.iter().filter(|i| i.is_object()) {
                    walk(item, format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut paths = Vec::new();
    walk(&value, String::new(), &mut paths);
    for p in paths.iter().filter(|p| !p.starts_with("ssh_keys.")) {
        assert!(
            appliance_env::schema::key(p).is_some(),
            "{p} is not in schema::KEYS"
        );
    }
}
