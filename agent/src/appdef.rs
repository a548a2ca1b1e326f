//! The appliance definition: a compose file with an `x-ecs` block that tells the agent which
//! service is the database, which one runs the app's hooks (migrate, ...), and which services
//! start in which order. The agent names no service itself; everything comes from here.
//!
//! The default template ships with the agent (agent/compose/docker-compose.yml); a context or
//! env.yml may replace it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub const DEFAULT_TEMPLATE: &str = include_str!("../compose/docker-compose.yml");

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AppDef {
    pub database: Database,
    pub hooks: Hooks,
    /// Started (and waited for) after the database step and before `app`.
    #[serde(default)]
    pub support: Vec<String>,
    /// The application services, started last.
    pub app: Vec<String>,
    /// Directories under the data dir the app mounts, with their owner and mode (step app-dirs).
    #[serde(default)]
    pub data_dirs: Vec<crate::appdirs::DataDir>,
    /// GnuPG homes under the data dir, rebuilt from env.yml's keys at every start (step app-dirs).
    #[serde(default)]
    pub keyrings: Vec<crate::appdirs::Keyring>,
    /// Where the app keeps the CA that signs its users' client certificates (ECS: /data/ecs-ca).
    /// The frontend verifies client certificates against it (step client-ca).
    #[serde(default)]
    pub client_ca: Option<ClientCa>,
}

/// `client-ca: {dir, cert, crl, key?}`: file names are relative to `dir`, itself relative to the
/// data directory. `key` is absent when the app keeps its CA key elsewhere (ECS: in its
/// database); then the agent never seeds the CA and uses the app's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientCa {
    pub dir: String,
    pub cert: String,
    pub crl: String,
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Database {
    /// The PostgreSQL service; its tools (psql, pg_restore) run in it with `compose exec`.
    pub service: String,
    /// The PostgreSQL superuser inside that container.
    #[serde(default = "postgres")]
    pub superuser: String,
    /// The role that owns the application database.
    pub owner: String,
    /// Where the host's dump directory (/data/dump/ecs-postgres) is mounted in that container.
    pub dump_dir: String,
    /// Extensions the superuser creates (`CREATE EXTENSION IF NOT EXISTS`) in a new database and
    /// before a restore: the owner may not create them, nor restore a dump's entries for them.
    #[serde(default)]
    pub extensions: Vec<String>,
}

fn postgres() -> String {
    "postgres".into()
}

/// Commands run with `compose run --rm <service> <argv...>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Hooks {
    pub service: String,
    pub migrate: Vec<String>,
    /// Run before `migrate` on a restored database that is old (ECS: legacy_migrate).
    #[serde(default)]
    pub premigrate: Option<Premigrate>,
    /// Run after every `migrate` (new database and restore), as ECS's prepare_database does.
    #[serde(default)]
    pub bootstrap: Option<Vec<String>>,
    /// Prints the migrations the code has (ECS: `manage.py showmigrations --plan`). update-ecs
    /// runs it with the running and the target version's image: the same output means the
    /// target has no new migration, so it starts without migrate and snapshot. Without it,
    /// every update migrates.
    #[serde(default)]
    pub migrations: Option<Vec<String>>,
    /// `create-first-user`: creates or reuses the user EMAIL FIRST LAST GENDER (appended as
    /// arguments), puts it in the office group and marks it internal; the last line it prints
    /// is `created` or `existed`.
    #[serde(default)]
    pub create_user: Option<Vec<String>>,
    /// `create-first-user`: issues a client certificate for EMAIL valid DAYS (appended), signed
    /// by the app's CA, packs it as PKCS#12 under the transport password read from stdin, and
    /// mails it to the user through the appliance's relay.
    #[serde(default)]
    pub issue_client_certificate: Option<Vec<String>>,
}

/// `premigrate: {command: [...], if-table-missing: TABLE}`: what makes a restored database old
/// is that it lacks TABLE in its public schema (ECS: django_migrations, which dumps from before
/// ECS moved to Django's migrations lack, as the original's checkdb.py tested).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Premigrate {
    pub command: Vec<String>,
    pub if_table_missing: String,
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "x-ecs")]
    x_ecs: Option<AppDef>,
    #[serde(default)]
    services: BTreeMap<String, serde_json::Value>,
}

/// The template's `x-ecs` block, checked against its `services`.
pub fn parse(name: &Path, text: &str) -> anyhow::Result<AppDef> {
    let file: File = serde_saphyr::from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: not a compose file: {e}", name.display()))?;
    let def = file.x_ecs.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: key x-ecs: missing (expected the appliance definition)",
            name.display()
        )
    })?;
    crate::appdirs::plan(&def).map_err(|e| anyhow::anyhow!("{}: {e}", name.display()))?;
    if let Some(ca) = &def.client_ca {
        crate::client_ca::check_def(ca).map_err(|e| anyhow::anyhow!("{}: {e}", name.display()))?;
    }
    let mut named = vec![
        ("x-ecs.database.service", &def.database.service),
        ("x-ecs.hooks.service", &def.hooks.service),
    ];
    named.extend(def.support.iter().map(|s| ("x-ecs.support", s)));
    named.extend(def.app.iter().map(|s| ("x-ecs.app", s)));
    for (key, svc) in named {
        if !file.services.contains_key(svc) {
            anyhow::bail!(
                "{}: key {key}: service {svc:?} is not defined under services (expected one of {})",
                name.display(),
                file.services.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
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
            anyhow::bail!(
                "{}: key x-ecs.hooks.premigrate.if-table-missing: expected a table name of lowercase letters, digits and _, found {:?}",
                name.display(),
                pre.if_table_missing
            );
        }
    }
    for (key, argv) in commands {
        if argv.is_empty() {
            anyhow::bail!(
                "{}: key {key}: expected a command, found an empty list",
                name.display()
            );
        }
    }
    for ext in &def.database.extensions {
        if !is_name(ext, true) {
            anyhow::bail!(
                "{}: key x-ecs.database.extensions: expected extension names of lowercase letters, digits, _ and -, found {ext:?}",
                name.display()
            );
        }
    }
    Ok(def)
}

/// A plain lowercase SQL name (extensions may also have `-`, as uuid-ossp does): it goes into
/// SQL and into the restore list as it is.
fn is_name(s: &str, dash: bool) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (dash && b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_is_a_valid_definition() {
        let def = parse(Path::new("default"), DEFAULT_TEMPLATE).unwrap();
        assert_eq!(def.database.service, "postgres");
        assert_eq!(def.database.extensions, ["pg_stat_statements"]);
        assert_eq!(
            def.hooks.premigrate.unwrap().if_table_missing,
            "django_migrations"
        );
        assert!(def.app.iter().any(|s| s == "ecs.web"));
        assert_eq!(
            def.hooks.migrations.unwrap(),
            ["run", "./manage.py", "showmigrations", "--plan"]
        );
    }

    #[test]
    fn premigrate_needs_its_condition_and_names_are_checked() {
        let base = "services:\n  db: {image: x}\nx-ecs:\n  app: [db]\n";
        let def = |database: &str, hooks: &str| {
            parse(
                Path::new("t.yml"),
                &format!(
                    "{base}  database: {{service: db, owner: app, dump-dir: /d{database}}}\n  hooks: {{service: db, migrate: [m]{hooks}}}\n"
                ),
            )
        };
        let ok = def(
            ", extensions: [pg_stat_statements, uuid-ossp]",
            ", premigrate: {command: [p], if-table-missing: django_migrations}",
        )
        .unwrap();
        assert_eq!(ok.hooks.premigrate.unwrap().if_table_missing, "django_migrations");
        assert_eq!(ok.database.extensions, ["pg_stat_statements", "uuid-ossp"]);
        let e = def("", ", premigrate: {command: [p]}").unwrap_err().to_string();
        assert!(e.contains("if-table-missing"), "{e}");
        let e = def("", ", premigrate: [p]").unwrap_err().to_string();
        assert!(e.contains("t.yml"), "{e}");
        let e = def("", ", premigrate: {command: [p], if-table-missing: \"x; DROP\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key x-ecs.hooks.premigrate.if-table-missing"), "{e}");
        let e = def("", ", premigrate: {command: [], if-table-missing: t}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key x-ecs.hooks.premigrate.command: expected a command"),
            "{e}"
        );
        let e = def("", ", migrations: []").unwrap_err().to_string();
        assert!(
            e.contains("key x-ecs.hooks.migrations: expected a command"),
            "{e}"
        );
        let e = def(", extensions: [\"a'b\"]", "").unwrap_err().to_string();
        assert!(e.contains("key x-ecs.database.extensions"), "{e}");
    }

    #[test]
    fn unknown_service_is_named() {
        let text = "services:\n  db: {image: x}\nx-ecs:\n  database: {service: db, owner: app, dump-dir: /d}\n  hooks: {service: web, migrate: [m]}\n  app: [db]\n";
        let e = parse(Path::new("t.yml"), text).unwrap_err().to_string();
        assert!(
            e.contains("key x-ecs.hooks.service: service \"web\" is not defined"),
            "{e}"
        );
    }
}
