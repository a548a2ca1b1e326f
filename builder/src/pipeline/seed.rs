//! The env's NoCloud seed (ISO 9660, or FAT with `config seed --vfat`): `user-data` is the
//! cloud-init part of env.yml alone (`Env::cloud_config_yaml`), and the whole env.yml rides
//! beside it as the file `env.yml`, where the agent reads it. cloud-init 25.1 checks
//! user-data against its schema and reports `appliance:`/`ecs:` as errors (status `degraded
//! done`); NoCloud reads only its four named files, so the extra file costs no warning. (A MIME
//! multi-part user-data would not do: cloud-init logs a part of a type it has no handler for
//! as a warning, which is degraded too.) meta-data names an instance id derived from the
//! env.yml bytes (a new env.yml is a new instance) and the appliance's domain as host name.
//! The seed carries key material and is written 0600.

use std::path::Path;

use anyhow::Context;
use appliance_env::Env;

use crate::error::BadInput;

/// The seed image for `env` read from `env_bytes`: ISO 9660, or FAT when `vfat`.
pub fn image(
    env: &Env,
    env_bytes: &[u8],
    timestamp: u64,
    vfat: bool,
) -> Result<Vec<u8>, cloud_init::SeedError> {
    let files = cloud_init::SeedFiles {
        user_data: env.cloud_config_yaml().into_bytes(),
        meta_data: cloud_init::meta_data(&appliance_env::instance_id(env_bytes), &env.appliance.domain)
            .into_bytes(),
        network_config: None,
    };
    let extra = [(appliance_env::SEED_ENV_FILE, env_bytes)];
    if vfat {
        cloud_init::fat_image_with(
            &files,
            &extra,
            timestamp,
            appliance_env::seed_volume_id(env_bytes),
        )
    } else {
        cloud_init::iso_image_with(&files, &extra, timestamp)
    }
}

/// The seed ISO bytes for the env.yml at `path`, validated first.
pub fn iso_for_env(path: &Path, timestamp: u64) -> anyhow::Result<Vec<u8>> {
    let (env, warnings) = appliance_env::Env::load(path)
        .map_err(|e| BadInput::new(format!("env: {e}")))
        .with_context(|| format!("checking {}", path.display()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    image(&env, &bytes, timestamp, false)
        .with_context(|| format!("packing the seed ISO for {}", path.display()))
}
