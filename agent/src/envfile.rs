//! The agent's narrow view of env.yml: the few settings it acts on, and the flattened
//! APPLIANCE_*/ECS_* environment the containers get. The model, its validation (errors with
//! file:line and key) and the flattening belong to the appliance-env crate; the rest of the
//! agent depends only on `Settings` and `LoadedEnv`.

use std::collections::BTreeMap;
use std::path::Path;

use appliance_env::Env;
use sha2::{Digest as _, Sha256};

/// The variable compose gives the database service and the app's DATABASE_URL.
pub const DATABASE_PASSWORD_VAR: &str = "APPLIANCE_DATABASE_PASSWORD";

/// The variable compose gives redis (`--requirepass`) and the app's REDIS_URL: derived from
/// the database password (secret, stable, URL-safe hex), so env.yml needs no key of its own.
pub const REDIS_PASSWORD_VAR: &str = "APPLIANCE_REDIS_PASSWORD";

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
    /// `appliance.backup.schedule` (OnCalendar=), `full_if_older_than`, `keep_full`.
    pub backup_schedule: String,
    pub backup_full_if_older_than: String,
    pub backup_keep_full: u32,
    pub database: String,
    /// `appliance.database.password`, or one derived from the DKIM key when it is absent.
    pub database_password: String,
    pub recover_from_backup: bool,
    pub recover_from_dump: bool,
    pub dump_filename: Option<String>,
    /// `appliance.compose`: replaces the shipped appliance definition.
    pub compose: Option<String>,
    /// `appliance.storage`: create, adopt, ignore.
    pub storage: appliance_env::Storage,
    /// `appliance.firewall.allow`, validated.
    pub firewall_allow: Vec<appliance_env::FirewallPort>,
    /// `ecs.first_user`: whom `ecs-agent create-first-user` creates without arguments.
    pub first_user: Option<appliance_env::FirstUser>,
    /// `appliance.ssl.client_certs_mandatory`: the frontend refuses a TLS client without one.
    pub client_certs_mandatory: bool,
    /// `appliance.ssl.client_ca`: (certificate, key) PEM, seeded into the app's CA dir when the
    /// app has none (step client-ca).
    pub client_ca: Option<(String, String)>,
    /// `appliance.dkim.key` (PEM): the relay signs the app's mail with it.
    pub dkim_key: String,
    /// `appliance.mail.relay_host`: the relay's smarthost, else direct delivery.
    pub mail_relay_host: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoadedEnv {
    pub settings: Settings,
    /// APPLIANCE_* and ECS_* variables, values raw (not shell-quoted).
    pub vars: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

/// A password for a file from before `appliance.database.password` existed: stable for the
/// file (the DKIM key is required and secret), never stored, URL-safe (hex).
/// The redis password: a hash of the database password, never stored.
pub fn redis_password(database_password: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ecs-agent redis password\0");
    h.update(database_password.as_bytes());
    hex::encode(h.finalize())
}

fn derived_password(env: &Env) -> String {
    let mut h = Sha256::new();
    h.update(b"ecs-agent database password\0");
    h.update(env.appliance.dkim.key.as_bytes());
    hex::encode(h.finalize())
}

/// The password goes into a URL unescaped: only RFC 3986's unreserved characters.
fn check_password(name: &str, password: &str) -> Result<(), EnvError> {
    let bad = password
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || "-._~".contains(*c)))
        .count();
    if password.len() < 16 || bad > 0 {
        return Err(EnvError(format!(
            "{name}: appliance.database.password: expected at least 16 characters from A-Z a-z 0-9 - _ . ~ \
             (it goes into the app's DATABASE_URL); found {} characters, {bad} of them others",
            password.chars().count()
        )));
    }
    Ok(())
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
        backup_schedule: a.backup.schedule.clone(),
        backup_full_if_older_than: a.backup.full_if_older_than.clone(),
        backup_keep_full: a.backup.keep_full,
        database: env.ecs.database.clone(),
        database_password: a
            .database
            .as_ref()
            .map(|d| d.password.clone())
            .unwrap_or_else(|| derived_password(env)),
        recover_from_backup: env.ecs.recover.from_backup,
        recover_from_dump: env.ecs.recover.from_dump,
        dump_filename: env.ecs.recover.dump_filename.clone(),
        compose: a.compose.clone(),
        storage: a.storage.clone(),
        // Validated by appliance-env: every entry parses.
        firewall_allow: a
            .firewall
            .allow
            .iter()
            .filter_map(|e| appliance_env::firewall_port(e).ok())
            .collect(),
        first_user: env.ecs.first_user.clone(),
        client_certs_mandatory: a.ssl.client_certs_mandatory,
        client_ca: a.ssl.client_ca.as_ref().map(|c| (c.cert.clone(), c.key.clone())),
        dkim_key: a.dkim.key.clone(),
        mail_relay_host: a.mail.relay_host.clone(),
    }
}

/// Parses and validates env.yml text; `name` says where it came from in messages.
pub fn parse(name: &str, text: &str) -> Result<LoadedEnv, EnvError> {
    let (env, warnings) = Env::from_yaml_str(text, name).map_err(|e| EnvError(e.to_string()))?;
    let settings = settings(&env);
    check_password(name, &settings.database_password)?;
    let mut warnings: Vec<String> = warnings.into_iter().map(|w| w.to_string()).collect();
    if env.appliance.database.is_none() {
        warnings.push(format!(
            "{name}: appliance.database.password is not set: the database password is derived from \
             appliance.dkim.key (add one of 40 random bytes, base64url, as `ecs-build config new` does)"
        ));
    }
    // Only the appliance's and ECS's sections go to the containers; the compose file
    // itself is the agent's business.
    let mut vars: BTreeMap<String, String> = env
        .flatten()
        .into_iter()
        .filter(|(k, _)| k.starts_with("APPLIANCE_") || k.starts_with("ECS_"))
        .filter(|(k, _)| k != "APPLIANCE_COMPOSE")
        .collect();
    vars.insert(DATABASE_PASSWORD_VAR.into(), settings.database_password.clone());
    vars.insert(
        REDIS_PASSWORD_VAR.into(),
        redis_password(&settings.database_password),
    );
    Ok(LoadedEnv {
        settings,
        vars,
        warnings,
    })
}

/// Reads env.yml as `config check` does: a regular file of bounded size (a FIFO or
/// /dev/zero in its place must not hang the boot or fill memory), UTF-8 text.
pub fn load(path: &Path) -> Result<LoadedEnv, EnvError> {
    let file = path.display().to_string();
    let bytes = appliance_env::read_file(path).map_err(|e| EnvError(e.to_string()))?;
    let text = appliance_env::utf8(&bytes, &file).map_err(|e| EnvError(e.to_string()))?;
    parse(&file, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_refuses_what_is_not_a_regular_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("env.yml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let e = load(path)
                .err()
                .unwrap_or_else(|| panic!("{} loaded", path.display()));
            assert!(
                e.to_string().contains("not a regular file"),
                "{}: {e}",
                path.display()
            );
        }
    }

    fn env_with(database: &str) -> String {
        let pgp = "|\n    -----BEGIN PGP PRIVATE KEY BLOCK-----\n\n    Zml4dHVyZQ==\n    -----END PGP PRIVATE KEY BLOCK-----";
        let pem = "|\n      -----BEGIN PRIVATE KEY-----\n      Zml4dHVyZQ==\n      -----END PRIVATE KEY-----";
        format!(
            "#cloud-config\nappliance:\n  domain: a.example.org\n  dkim:\n    key: {pem}\n  backup:\n    url: file:///b\n    encrypt: {p}\n{database}\
             ecs:\n  settings: \"# s\"\n  vault_encrypt: {pgp}\n  vault_sign: {pgp}\n",
            p = pgp.replace("\n    ", "\n      ")
        )
    }

    #[test]
    fn database_password_is_given_derived_or_refused() {
        let given = parse(
            "env.yml",
            &env_with("  database:\n    password: abcdefghij-KLMNOP_0123\n"),
        )
        .unwrap();
        assert_eq!(given.settings.database_password, "abcdefghij-KLMNOP_0123");
        assert_eq!(given.vars[DATABASE_PASSWORD_VAR], "abcdefghij-KLMNOP_0123");
        assert!(given.warnings.iter().all(|w| !w.contains("database")));

        let derived = parse("env.yml", &env_with("")).unwrap();
        assert_eq!(derived.settings.database_password.len(), 64);
        assert_eq!(
            derived.vars[DATABASE_PASSWORD_VAR],
            derived.settings.database_password
        );
        assert_eq!(
            parse("env.yml", &env_with(""))
                .unwrap()
                .settings
                .database_password,
            derived.settings.database_password,
            "stable for the file"
        );
        assert!(
            derived
                .warnings
                .iter()
                .any(|w| w.contains("appliance.database.password is not set"))
        );

        let bad = parse(
            "env.yml",
            &env_with("  database:\n    password: \"p@ss/word:with#url-chars\"\n"),
        )
        .unwrap_err();
        let text = bad.to_string();
        assert!(
            text.contains("appliance.database.password") && text.contains("24 characters, 4 of them others"),
            "{text}"
        );
        assert!(!text.contains("p@ss"), "the value is not echoed: {text}");
    }
}
