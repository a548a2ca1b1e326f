//! `appliance.compose` checked at `config check` rather than at boot: a compose file with a
//! `services` mapping and the `x-ecs` block the agent reads (docs/agent.md), every service it
//! names defined. This mirrors the shape agent/src/appdef.rs and appdirs.rs parse; the agent
//! checks again at start.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    #[serde(rename = "x-ecs")]
    x_ecs: Option<XEcs>,
    services: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct XEcs {
    database: Database,
    hooks: Hooks,
    #[serde(default)]
    support: Vec<String>,
    app: Vec<String>,
    #[serde(default)]
    data_dirs: Vec<DataDir>,
    #[serde(default)]
    keyrings: Vec<Keyring>,
    #[serde(default)]
    client_ca: Option<ClientCa>,
}

/// `client-ca: {dir, cert, crl, key?}`: the app's CA for client certificates.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ClientCa {
    dir: String,
    cert: String,
    crl: String,
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Database {
    service: String,
    #[serde(default)]
    #[allow(dead_code)]
    superuser: Option<String>,
    #[allow(dead_code)]
    owner: String,
    #[allow(dead_code)]
    dump_dir: String,
    #[serde(default)]
    extensions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Hooks {
    service: String,
    migrate: Vec<String>,
    #[serde(default)]
    premigrate: Option<Premigrate>,
    #[serde(default)]
    bootstrap: Option<Vec<String>>,
    /// Prints the migrations the code has (update-ecs compares two versions' lists).
    #[serde(default)]
    migrations: Option<Vec<String>>,
    /// create-first-user: creates or reuses the user (EMAIL FIRST LAST GENDER appended).
    #[serde(default)]
    create_user: Option<Vec<String>>,
    /// create-first-user: issues and mails the client certificate (EMAIL DAYS appended).
    #[serde(default)]
    issue_client_certificate: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Premigrate {
    command: Vec<String>,
    if_table_missing: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DataDir {
    path: String,
    owner: String,
    mode: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Format {
    Gnupg1,
    Gnupg2,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Keyring {
    dir: String,
    #[allow(dead_code)]
    format: Format,
    owner: String,
    keys: Vec<String>,
}

/// Every problem with the compose text, each starting with the key inside it.
pub(crate) fn check(text: &str) -> Vec<String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let file: File = match serde_saphyr::from_str_with_options(text, options) {
        Ok(f) => f,
        Err(e) => {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or("").trim();
            return vec![format!(
                "not a compose file the agent can read: {first} (lines counted from the first line of the compose text)"
            )];
        }
    };
    let mut out = Vec::new();
    let Some(services) = file.services else {
        out.push("services: missing; expected a mapping of compose services".to_string());
        return out;
    };
    let Some(def) = file.x_ecs else {
        out.push("x-ecs: missing; expected the appliance definition (docs/agent.md)".to_string());
        return out;
    };
    let mut named = vec![
        ("x-ecs.database.service".to_string(), &def.database.service),
        ("x-ecs.hooks.service".to_string(), &def.hooks.service),
    ];
    named.extend(
        def.support
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("x-ecs.support[{i}]"), s)),
    );
    named.extend(
        def.app
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("x-ecs.app[{i}]"), s)),
    );
    for (key, svc) in named {
        if !services.contains_key(svc) {
            // Single quotes: a service name is no secret, and `redact` hides the backtick
            // quotations of appliance.compose (a compose file may carry credentials).
            out.push(format!(
                "{key}: service '{svc}' is not defined under services (expected one of {})",
                services.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if def.app.is_empty() {
        out.push("x-ecs.app: expected at least one application service".to_string());
    }
    let mut commands = vec![("x-ecs.hooks.migrate", &def.hooks.migrate)];
    commands.extend(def.hooks.bootstrap.iter().map(|c| ("x-ecs.hooks.bootstrap", c)));
    commands.extend(def.hooks.migrations.iter().map(|c| ("x-ecs.hooks.migrations", c)));
    commands.extend(
        def.hooks
            .create_user
            .iter()
            .map(|c| ("x-ecs.hooks.create-user", c)),
    );
    commands.extend(
        def.hooks
            .issue_client_certificate
            .iter()
            .map(|c| ("x-ecs.hooks.issue-client-certificate", c)),
    );
    if let Some(pre) = &def.hooks.premigrate {
        commands.push(("x-ecs.hooks.premigrate.command", &pre.command));
        if !is_name(&pre.if_table_missing, false) {
            out.push(format!(
                "x-ecs.hooks.premigrate.if-table-missing: expected a table name of lowercase letters, digits and _, found `{}`",
                pre.if_table_missing
            ));
        }
    }
    for (key, argv) in commands {
        if argv.is_empty() {
            out.push(format!("{key}: expected a command, found an empty list"));
        }
    }
    for (i, ext) in def.database.extensions.iter().enumerate() {
        if !is_name(ext, true) {
            out.push(format!(
                "x-ecs.database.extensions[{i}]: expected an extension name of lowercase letters, digits, _ and -, found `{ext}`"
            ));
        }
    }
    for (i, d) in def.data_dirs.iter().enumerate() {
        let key = format!("x-ecs.data-dirs[{i}]");
        out.extend(rel_path(&format!("{key}.path"), &d.path));
        out.extend(owner(&format!("{key}.owner"), &d.owner));
        let octal = (1..=4).contains(&d.mode.len()) && d.mode.chars().all(|c| ('0'..='7').contains(&c));
        if !octal {
            out.push(format!(
                "{key}.mode: expected an octal mode (e.g. \"0700\"), found `{}`",
                d.mode
            ));
        }
    }
    if let Some(ca) = &def.client_ca {
        out.extend(rel_path("x-ecs.client-ca.dir", &ca.dir));
        out.extend(rel_path("x-ecs.client-ca.cert", &ca.cert));
        out.extend(rel_path("x-ecs.client-ca.crl", &ca.crl));
        if let Some(k) = &ca.key {
            out.extend(rel_path("x-ecs.client-ca.key", k));
        }
    }
    for (i, r) in def.keyrings.iter().enumerate() {
        let key = format!("x-ecs.keyrings[{i}]");
        out.extend(rel_path(&format!("{key}.dir"), &r.dir));
        out.extend(owner(&format!("{key}.owner"), &r.owner));
        if r.keys.is_empty() {
            out.push(format!(
                "{key}.keys: expected at least one env.yml key name, found an empty list"
            ));
        }
        for (j, k) in r.keys.iter().enumerate() {
            let ok = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                out.push(format!(
                    "{key}.keys[{j}]: expected a flattened env.yml name (e.g. ECS_VAULT_ENCRYPT), found `{k}`"
                ));
            }
        }
    }
    out
}

/// A plain lowercase SQL name (extensions may also have `-`, as uuid-ossp does).
fn is_name(s: &str, dash: bool) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (dash && b == b'-'))
}

fn rel_path(key: &str, value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && !value.starts_with('/')
        && value.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    (!ok).then(|| {
        format!("{key}: expected a path relative to the data dir without `..` (e.g. ecs-ca), found `{value}`")
    })
}

fn owner(key: &str, value: &str) -> Option<String> {
    let ok = value
        .split_once(':')
        .is_some_and(|(u, g)| u.parse::<u32>().is_ok() && g.parse::<u32>().is_ok());
    (!ok).then(|| format!("{key}: expected `uid:gid` as numbers (e.g. \"1000:1000\"), found `{value}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_default_template_passes() {
        let text = include_str!("../../agent/compose/docker-compose.yml");
        assert_eq!(check(text), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_named() {
        assert!(check("services: [\n")[0].starts_with("not a compose file"));
        assert!(check("version: '3'\n")[0].starts_with("services: missing"));
        assert!(check("services: {db: {image: x}}\n")[0].starts_with("x-ecs: missing"));
        let text = "services:\n  db: {image: x}\nx-ecs:\n  database: {service: db, owner: app, dump-dir: /d, extensions: [Bad]}\n  \
                    hooks: {service: web, migrate: []}\n  app: [db, worker]\n  data-dirs: [{path: ../x, owner: app, mode: '0999'}]\n";
        let all = check(text);
        for key in [
            "x-ecs.hooks.service: service 'web'",
            "x-ecs.app[1]: service 'worker'",
            "x-ecs.hooks.migrate: expected a command",
            "x-ecs.database.extensions[0]",
            "x-ecs.data-dirs[0].path",
            "x-ecs.data-dirs[0].owner",
            "x-ecs.data-dirs[0].mode",
        ] {
            assert!(all.iter().any(|m| m.starts_with(key)), "{key}: {all:?}");
        }
        assert_eq!(all.len(), 7, "{all:?}");
        let unknown = check("services: {db: {}}\nx-ecs:\n  databse: {}\n");
        assert!(unknown[0].contains("databse"), "{unknown:?}");
    }
}
