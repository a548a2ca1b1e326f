//! The typed env.yml: what each section holds and its defaults. Key names follow the original
//! appliance's template, so existing files keep working; `schema` documents every key.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// A key of the original appliance that is accepted, ignored and warned about.
pub(crate) type Legacy = IgnoredAny;

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One appliance's env.yml: cloud-init's keys at the top, the appliance and ECS below.
/// `Debug` is written by hand: env.yml holds every secret, and a `{:?}` must never print one.
#[derive(Clone, PartialEq, Serialize)]
pub struct Env {
    /// Operators' SSH public keys (cloud-init installs them; the agent too).
    pub ssh_authorized_keys: Vec<String>,
    /// The appliance's SSH host keys in cloud-init's `ssh_keys` form
    /// (`ed25519_private`, `ed25519_public`, `rsa_private`, `rsa_public`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ssh_keys: BTreeMap<String, String>,
    /// cloud-init's `disable_root`; the appliance expects root to be usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_root: Option<bool>,
    pub appliance: Appliance,
    pub ecs: Ecs,
    /// Any other top-level cloud-config key: legal cloud-init, passed through untouched.
    #[serde(flatten)]
    pub cloud_config: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("domain", &self.appliance.domain)
            .field("ssh_authorized_keys", &self.ssh_authorized_keys.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appliance {
    #[serde(default, skip_serializing_if = "is_false")]
    pub standby: bool,
    pub domain: String,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub ssl: Ssl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentry: Option<Sentry>,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub extra: Extra,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub update: Update,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub storage: Storage,
    #[serde(
        default,
        deserialize_with = "crate::load::nullable",
        skip_serializing_if = "Firewall::is_default"
    )]
    pub firewall: Firewall,
    /// A whole compose file (with its `x-ecs` block) replacing the appliance definition the
    /// agent ships: for sites that run other images, and for tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<String>,
    pub dkim: Dkim,
    /// The outgoing mail relay's options (DKIM signing is `dkim`).
    #[serde(
        default,
        skip_serializing_if = "Mail::is_default",
        deserialize_with = "crate::load::nullable"
    )]
    pub mail: Mail,
    pub backup: Backup,
    /// The application's database login; optional so the original appliance's files still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    #[serde(default, rename = "allowed_hosts", skip_serializing)]
    pub(crate) legacy_allowed_hosts: Legacy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssl {
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub letsencrypt: Letsencrypt,
    #[serde(default)]
    pub client_certs_mandatory: bool,
    /// TLS private key (PEM contents, not a file name); with `cert`, replaces ACME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// TLS certificate chain (PEM contents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The CA that issues the users' client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<ClientCa>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Letsencrypt {
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for Letsencrypt {
    fn default() -> Self {
        Letsencrypt { enabled: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCa {
    /// CA certificate (PEM).
    pub cert: String,
    /// CA private key (PEM, PKCS#8).
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sentry {
    pub dsn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    #[serde(default)]
    pub exporter: bool,
    #[serde(default)]
    pub server: bool,
    #[serde(default)]
    pub gui: bool,
    #[serde(default)]
    pub pghero: bool,
}

/// A git checkout: repository URL, branch, optionally pinned to a commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extra {
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub files: Vec<ExtraFile>,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub packages: Vec<String>,
    #[serde(default, rename = "states", skip_serializing)]
    pub(crate) legacy_states: Legacy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraFile {
    pub path: String,
    /// The file's text (the original's deprecated `content` is read too, with a warning).
    #[serde(alias = "content")]
    pub contents: String,
    /// `user` or `user:group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Octal mode as a string, e.g. "0644".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

pub const DEFAULT_ONCALENDAR: &str = "*-*-* 06:30:00";

fn default_oncalendar() -> String {
    DEFAULT_ONCALENDAR.to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    #[serde(default = "yes")]
    pub automatic: bool,
    /// systemd OnCalendar= expression.
    #[serde(default = "default_oncalendar")]
    pub oncalendar: String,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            automatic: true,
            oncalendar: default_oncalendar(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Create the volatile and data filesystems on blank disks when they are not found.
    #[serde(default = "yes")]
    pub create: bool,
    /// Take over a data volume group tagged for another appliance, or untagged (a disk moved
    /// here from another appliance): it is re-tagged for this one. Off: such a disk is refused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adopt: bool,
    /// The original's switches: no filesystem is expected, the directory is on root.
    #[serde(
        default,
        deserialize_with = "crate::load::nullable",
        skip_serializing_if = "StorageIgnore::is_default"
    )]
    pub ignore: StorageIgnore,
    #[serde(default, rename = "setup", skip_serializing)]
    pub(crate) legacy_setup: Legacy,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            create: true,
            adopt: false,
            ignore: StorageIgnore::default(),
            legacy_setup: IgnoredAny,
        }
    }
}

/// `appliance.storage.ignore`: true means /volatile or /data is a plain directory on the
/// root filesystem, as on the original appliance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageIgnore {
    #[serde(default)]
    pub volatile: bool,
    #[serde(default)]
    pub data: bool,
}

impl StorageIgnore {
    fn is_default(&self) -> bool {
        *self == StorageIgnore::default()
    }
}

/// `appliance.firewall`: what the host firewall opens beyond the appliance's own ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// Extra ports open to everyone: `tcp/N` or `udp/N` (checked by `firewall_port`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

impl Firewall {
    fn is_default(&self) -> bool {
        self.allow.is_empty()
    }
}

/// A port `appliance.firewall.allow` opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FirewallPort {
    /// "tcp" or "udp".
    pub proto: &'static str,
    pub port: u16,
}

/// Parses one `appliance.firewall.allow` entry: `tcp/N` or `udp/N`, N in 1..=65535.
pub fn firewall_port(entry: &str) -> Result<FirewallPort, String> {
    let expected = "expected tcp/PORT or udp/PORT with PORT 1-65535, e.g. tcp/8443";
    let (proto, port) = entry
        .split_once('/')
        .ok_or_else(|| format!("{expected}; found {entry:?}"))?;
    let proto = match proto {
        "tcp" => "tcp",
        "udp" => "udp",
        _ => return Err(format!("{expected}; found protocol {proto:?}")),
    };
    match port.parse::<u16>() {
        Ok(n) if n > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(FirewallPort { proto, port: n }),
        _ => Err(format!("{expected}; found port {port:?}")),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    /// RSA private key (PEM) for selector `default`.
    pub key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    /// A smarthost for all outgoing mail (`[host]:port` or `host[:port]`, postfix's
    /// relayhost syntax); unset: delivered directly to each domain's MX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_host: Option<String>,
}

impl Mail {
    fn is_default(&self) -> bool {
        *self == Mail::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// duplicity target URL.
    pub url: String,
    /// Extra duplicity options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<BackupMount>,
    /// ASCII-armored OpenPGP secret key `ecs_backup`.
    pub encrypt: String,
    /// systemd OnCalendar= expression of the backup timer.
    #[serde(default = "default_backup_schedule")]
    pub schedule: String,
    /// duplicity time interval: a new full backup when the last full one is older.
    #[serde(default = "default_full_if_older_than")]
    pub full_if_older_than: String,
    /// How many full backups (with their incrementals) are kept.
    #[serde(default = "default_keep_full")]
    pub keep_full: u32,
}

pub const DEFAULT_BACKUP_SCHEDULE: &str = "*-*-* 00:30:00";
pub const DEFAULT_FULL_IF_OLDER_THAN: &str = "1M";
pub const DEFAULT_KEEP_FULL: u32 = 3;

fn default_backup_schedule() -> String {
    DEFAULT_BACKUP_SCHEDULE.to_string()
}

fn default_full_if_older_than() -> String {
    DEFAULT_FULL_IF_OLDER_THAN.to_string()
}

fn default_keep_full() -> u32 {
    DEFAULT_KEEP_FULL
}

/// The database role the application logs in as over the compose network.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// The password (URL-safe characters: it goes into the app's DATABASE_URL).
    pub password: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupMount {
    #[serde(rename = "type")]
    pub fstype: String,
    pub source: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

pub const DEFAULT_ECS_GIT_SOURCE: &str = "https://github.com/ecs-org/ecs.git";
pub const DEFAULT_ECS_GIT_BRANCH: &str = "master";

fn default_ecs_git_source() -> String {
    DEFAULT_ECS_GIT_SOURCE.to_string()
}

fn default_ecs_git_branch() -> String {
    DEFAULT_ECS_GIT_BRANCH.to_string()
}

fn default_database() -> String {
    "ecs".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ecs {
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub git: EcsGit,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub userswitcher: Userswitcher,
    #[serde(default, deserialize_with = "crate::load::nullable")]
    pub recover: Recover,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_user: Option<FirstUser>,
    /// Python code ECS executes as its local settings (`ECS_SETTINGS`).
    pub settings: String,
    /// ASCII-armored OpenPGP secret key `ecs_mediaserver`.
    pub vault_encrypt: String,
    /// ASCII-armored OpenPGP secret key `ecs_authority`.
    pub vault_sign: String,
    #[serde(default, rename = "migrate", skip_serializing)]
    pub(crate) legacy_migrate: Legacy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsGit {
    #[serde(default = "default_ecs_git_source")]
    pub source: String,
    #[serde(default = "default_ecs_git_branch")]
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitid: Option<String>,
}

impl Default for EcsGit {
    fn default() -> Self {
        EcsGit {
            source: default_ecs_git_source(),
            branch: default_ecs_git_branch(),
            commitid: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Userswitcher {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// What to do when the database is missing or empty at boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    #[serde(default)]
    pub from_backup: bool,
    #[serde(default)]
    pub from_dump: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    #[serde(rename = "f")]
    Female,
    #[serde(rename = "m")]
    Male,
}

/// The first (office) user, created with a client certificate after the first start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub gender: Gender,
}
