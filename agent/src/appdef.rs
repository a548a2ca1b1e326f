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
    /// Run before `migrate` on a restored database (e.g. ECS's premigrate for old dumps).
    #[serde(default)]
    pub premigrate: Option<Vec<String>>,
    /// Run after every `migrate` (new database and restore), as ECS's prepare_database does.
    #[serde(default)]
    pub bootstrap: Option<Vec<String>>,
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
    if def.hooks.migrate.is_empty() {
        anyhow::bail!(
            "{}: key x-ecs.hooks.migrate: expected a command, found an empty list",
            name.display()
        );
    }
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_is_a_valid_definition() {
        let def = parse(Path::new("default"), DEFAULT_TEMPLATE).unwrap();
        assert_eq!(def.database.service, "postgres");
        assert!(def.app.iter().any(|s| s == "ecs.web"));
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
