//! The env's NoCloud seed ISO, written next to the image: user-data is the env.yml itself (a
//! `#cloud-config` document), meta-data names an instance id derived from its bytes (a new
//! env.yml is a new instance) and the appliance's domain as host name. The ISO carries key
//! material and is written 0600.

use std::path::Path;

use anyhow::Context;

use crate::error::BadInput;

/// The seed ISO bytes for the env.yml at `path`, validated first.
pub fn iso_for_env(path: &Path, timestamp: u64) -> anyhow::Result<Vec<u8>> {
    let (env, warnings) = appliance_env::Env::load(path)
        .map_err(|e| BadInput::new(format!("env: {e}")))
        .with_context(|| format!("checking {}", path.display()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let files = cloud_init::SeedFiles {
        meta_data: cloud_init::meta_data(&appliance_env::instance_id(&bytes), &env.appliance.domain)
            .into_bytes(),
        user_data: bytes,
        network_config: None,
    };
    cloud_init::iso_image(&files, timestamp)
        .with_context(|| format!("packing the seed ISO for {}", path.display()))
}
