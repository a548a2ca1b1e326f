//! Fresh key material for a new appliance (builder side only: feature `keygen`).
//!
//! Everything is drawn from one caller-supplied RNG (`rand_core` 0.6, the version ssh-key 0.6,
//! rsa 0.9 and pgp 0.21 share); `config new` passes the OS RNG (`OsRng`). Nothing here logs.
//! The client CA uses ECDSA P-256 through rcgen's ring backend, which builds with a C compiler
//! only (no cmake, no clang); RSA keys come from the pure-Rust rsa crate.

mod dns;
mod openpgp;
mod ssh;
mod x509;

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine;
pub use rand_core::{CryptoRng, OsRng, RngCore};

pub use dns::dns_records;
use openpgp::Kind;
pub use ssh::{AuthorizedKey, parse_authorized_key};

use crate::model::{
    Appliance, Backup, ClientCa, DEFAULT_BACKUP_SCHEDULE, DEFAULT_FULL_IF_OLDER_THAN, DEFAULT_KEEP_FULL,
    Database, Dkim, Ecs, EcsGit, Env, Extra, Metric, Recover, Ssl, Storage, Update, Userswitcher,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    #[error("generating the RSA key for {what}: {message}")]
    Rsa { what: &'static str, message: String },
    #[error("generating the OpenPGP key {name}: {message}")]
    OpenPgp { name: &'static str, message: String },
    #[error("generating the client-certificate CA: {0}")]
    X509(String),
    #[error("generating the SSH host key {name}: {message}")]
    Ssh { name: &'static str, message: String },
    #[error("appliance.dkim.key: {0}")]
    DkimKey(String),
}

/// All secrets of one appliance.
#[derive(Clone)]
pub struct KeyMaterial {
    pub secret_key: String,
    pub registration_secret: String,
    pub password_reset_secret: String,
    /// `appliance.database.password`: the app's database login (URL-safe base64).
    pub database_password: String,
    /// RSA-2048, PKCS#1 PEM (as `openssl genrsa` wrote it for the original).
    pub dkim_key: String,
    /// Armored OpenPGP v4 secret keys, no passphrase: the backup key Ed25519/Curve25519, the
    /// vault keys RSA-3072 (ECS's GnuPG 1.4).
    pub backup_key: String,
    pub vault_encrypt_key: String,
    pub vault_sign_key: String,
    pub client_ca: ClientCa,
    /// cloud-init `ssh_keys`: ed25519 and rsa, private and public.
    pub ssh_keys: BTreeMap<String, String>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial { .. }")
    }
}

/// Bytes of randomness per application secret: 320 bits (at least 256 are required).
pub const SECRET_BYTES: usize = 40;

fn secret<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl KeyMaterial {
    /// Generates everything; `now` dates the certificate and the OpenPGP keys.
    pub fn generate<R: RngCore + CryptoRng>(
        domain: &str,
        rng: &mut R,
        now: SystemTime,
    ) -> Result<Self, KeygenError> {
        let dkim_key = dns::generate_dkim(rng)?;
        Ok(KeyMaterial {
            secret_key: secret(rng),
            registration_secret: secret(rng),
            password_reset_secret: secret(rng),
            dkim_key,
            backup_key: openpgp::generate("ecs_backup", Kind::Curve25519, rng, now)?,
            // ECS's container has GnuPG 1.4, which cannot use Curve25519 keys.
            vault_encrypt_key: openpgp::generate("ecs_mediaserver", Kind::Rsa3072, rng, now)?,
            vault_sign_key: openpgp::generate("ecs_authority", Kind::Rsa3072, rng, now)?,
            client_ca: x509::generate_ca(domain, rng, now)?,
            ssh_keys: ssh::generate_host_keys(domain, rng)?,
            // Drawn last, so the other keys of a seeded RNG stay what they were.
            database_password: secret(rng),
        })
    }
}

/// ECS's local settings for a new appliance, as the original template wrote them.
pub fn ecs_settings(domain: &str, keys: &KeyMaterial) -> String {
    format!(
        "DOMAIN = '{domain}'
ABSOLUTE_URL_PREFIX = 'https://{{}}'.format(DOMAIN)
ALLOWED_HOSTS = [DOMAIN, ]
PDFAS_SERVICE = ABSOLUTE_URL_PREFIX+ '/pdf-as-web/'
SECURE_PROXY_SSL = True
ECS_REQUIRE_CLIENT_CERTS = True
DEBUG = False
# SENTRY_DSN = 'https://url' # set to sentry url if available
ETHICS_COMMISSION_UUID = 'ecececececececececececececececec'

SECRET_KEY = '{secret_key}'
REGISTRATION_SECRET = '{registration_secret}'
PASSWORD_RESET_SECRET = '{password_reset_secret}'

EMAIL_BACKEND = 'django.core.mail.backends.console.EmailBackend'
EMAIL_BACKEND_UNFILTERED = 'django.core.mail.backends.smtp.EmailBackend'
EMAIL_UNFILTERED_DOMAINS = () # = ('example.com',)

SMTPD_CONFIG['listen_addr'] = ('0.0.0.0', 8025)
SMTPD_CONFIG['domain'] = DOMAIN

# EMAIL_BACKEND_UNFILTERED is used for user registration and invitation, password reset,
# client certificates, and all mail to EMAIL_UNFILTERED_DOMAINS; all other mail goes
# through EMAIL_BACKEND. console.EmailBackend only logs mail; smtp.EmailBackend sends it.
",
        secret_key = keys.secret_key,
        registration_secret = keys.registration_secret,
        password_reset_secret = keys.password_reset_secret,
    )
}

impl Env {
    /// A new appliance's env with defaults and fresh key material. The domain is validated.
    pub fn generate<R: RngCore + CryptoRng>(
        domain: &str,
        rng: &mut R,
        now: SystemTime,
    ) -> Result<Env, GenerateError> {
        crate::validate::domain(domain).map_err(GenerateError::Domain)?;
        let keys = KeyMaterial::generate(domain, rng, now)?;
        Ok(Env::from_keys(domain, &keys))
    }

    /// The default env around existing key material.
    pub fn from_keys(domain: &str, keys: &KeyMaterial) -> Env {
        Env {
            ssh_authorized_keys: Vec::new(),
            ssh_keys: keys.ssh_keys.clone(),
            disable_root: Some(false),
            appliance: Appliance {
                standby: false,
                domain: domain.to_string(),
                ssl: Ssl {
                    client_ca: Some(keys.client_ca.clone()),
                    ..Ssl::default()
                },
                sentry: None,
                metric: Metric::default(),
                git: None,
                extra: Extra::default(),
                update: Update::default(),
                storage: Storage::default(),
                firewall: Default::default(),
                compose: None,
                dkim: Dkim {
                    key: keys.dkim_key.clone(),
                },
                mail: Default::default(),
                backup: Backup {
                    url: "file:///volatile/ecs-backup-test/".to_string(),
                    options: None,
                    mount: None,
                    encrypt: keys.backup_key.clone(),
                    schedule: DEFAULT_BACKUP_SCHEDULE.to_string(),
                    full_if_older_than: DEFAULT_FULL_IF_OLDER_THAN.to_string(),
                    keep_full: DEFAULT_KEEP_FULL,
                },
                database: Some(Database {
                    password: keys.database_password.clone(),
                }),
                legacy_allowed_hosts: Default::default(),
            },
            ecs: Ecs {
                git: EcsGit::default(),
                database: "ecs".to_string(),
                userswitcher: Userswitcher::default(),
                recover: Recover::default(),
                first_user: None,
                settings: ecs_settings(domain, keys),
                vault_encrypt: keys.vault_encrypt_key.clone(),
                vault_sign: keys.vault_sign_key.clone(),
                legacy_migrate: Default::default(),
            },
            cloud_config: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("--domain: {0}")]
    Domain(String),
    #[error(transparent)]
    Keygen(#[from] KeygenError),
}
