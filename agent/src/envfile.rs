//! The agent's narrow view of env.yml: the few settings it acts on, and the flattened
//! APPLIANCE_*/ECS_* environment the containers get. The model, its validation (errors with
//! file:line and key) and the flattening belong to the appliance-env crate; the rest of the
//! agent depends only on `Settings` and `LoadedEnv`.

use std::collections::BTreeMap;
use std::path::Path;

use appliance_env::Env;

/// env.yml is unusable; the message names the file, line and key, and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// What the agent reads from env.yml.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub domain: String,
    pub standby: bool,
    pub letsencrypt: bool,
    pub tls_key: Option<String>,
    pub tls_cert: Option<String>,
    pub sentry_dsn: Option<String>,
    pub backup_url: Option<String>,
    pub backup_options: Option<String>,
    pub backup_key: Option<String>,
    pub database: String,
    pub recover_from_backup: bool,
    pub recover_from_dump: bool,
    pub dump_filename: Option<String>,
    /// `appliance.compose`: replaces the shipped appliance definition.
    pub compose: Option<String>,
    /// `appliance.storage`: create, adopt, ignore.
    pub storage: appliance_env::Storage,
}

#[derive(Debug, Clone)]
pub struct LoadedEnv {
    pub settings: Settings,
    /// APPLIANCE_* and ECS_* variables, values raw (not shell-quoted).
    pub vars: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

fn settings(env: &Env) -> Settings {
    let a = &env.appliance;
    Settings {
        domain: a.domain.clone(),
        standby: a.standby,
        letsencrypt: a.ssl.letsencrypt.enabled,
        tls_key: a.ssl.key.clone(),
        tls_cert: a.ssl.cert.clone(),
        sentry_dsn: a.sentry.as_ref().map(|s| s.dsn.clone()).filter(|d| !d.is_empty()),
        backup_url: Some(a.backup.url.clone()),
        backup_options: a.backup.options.clone(),
        backup_key: Some(a.backup.encrypt.clone()),
        database: env.ecs.database.clone(),
        recover_from_backup: env.ecs.recover.from_backup,
        recover_from_dump: env.ecs.recover.from_dump,
        dump_filename: env.ecs.recover.dump_filename.clone(),
        compose: a.compose.clone(),
        storage: a.storage.clone(),
    }
}

/// Parses and validates env.yml text; `name` says where it came from in messages.
pub fn parse(name: &str, text: &str) -> Result<LoadedEnv, EnvError> {
    let (env, warnings) = Env::from_yaml_str(text, name).map_err(|e| EnvError(e.to_string()))?;
    Ok(LoadedEnv {
        settings: settings(&env),
        // Only the appliance's and ECS's sections go to the containers; the compose file
        // itself is the agent's business.
        vars: env
            .flatten()
            .into_iter()
            .filter(|(k, _)| k.starts_with("APPLIANCE_") || k.starts_with("ECS_"))
            .filter(|(k, _)| k != "APPLIANCE_COMPOSE")
            .collect(),
        warnings: warnings.into_iter().map(|w| w.to_string()).collect(),
    })
}

pub fn load(path: &Path) -> Result<LoadedEnv, EnvError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| EnvError(format!("reading {}: {e}", path.display())))?;
    parse(&path.display().to_string(), &text)
}
