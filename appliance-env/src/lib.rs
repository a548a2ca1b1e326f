//! The env.yml model: one typed, validated description of an appliance, shared by `ecs-build`
//! (which generates and checks it) and `ecs-agent` (which reads it at boot).
//! It knows nothing of disk images or of how the agent applies the settings.
//!
//! - `model`: the typed sections and their defaults; `schema`: every key documented.
//! - `Env::load` checks header, syntax, key names, types and values, with file:line:col.
//! - `Env::to_yaml` writes the commented file; `Env::cloud_config_yaml` the seed's user-data; `Env::flatten` gives `APPLIANCE_*`/`ECS_*`.
//! - `keygen` (feature `keygen`, builder only): fresh key material, DNS records.

mod calendar;
mod cloud_config;
mod compose;
mod emit;
mod error;
mod flatten;
mod load;
mod model;
mod redact;
pub mod schema;
mod tls;
mod tree;
mod validate;

#[cfg(feature = "keygen")]
pub mod keygen;

pub use calendar::SYSTEMD_ANALYZE;
pub use cloud_config::SEED_ENV_FILE;
pub use error::{EnvError, Location, Warning};
pub use load::{HEADER, MAX_ENV_BYTES, read_file, utf8};
pub use model::*;
pub use validate::domain as check_domain;
pub use validate::email as check_email;

use sha2::{Digest, Sha256};

/// The cloud-init instance-id for a seed carrying these env.yml bytes: a new env.yml is a new
/// instance, so cloud-init applies its keys again.
pub fn instance_id(env_bytes: &[u8]) -> String {
    let digest = Sha256::digest(env_bytes);
    format!("iid-ecs-{}", hex::encode(&digest[..8]))
}

/// A volume serial for seed media carrying these env.yml bytes (the first 4 bytes of sha256).
pub fn seed_volume_id(env_bytes: &[u8]) -> u32 {
    let digest = Sha256::digest(env_bytes);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}
