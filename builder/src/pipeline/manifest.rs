//! Stage 6, manifest `<name>-<version>.manifest.json`: what was built from what. sha256 and size
//! of every artifact, machine.yml (path, sha256, text), the rootfs cache key and whether it was
//! reused, the package list with versions, the agent's version and sha256, the units enabled.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::packages::Package;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub source_date_epoch: u64,
    pub ecs_build: String,
    pub machine: MachineRecord,
    pub artifacts: Vec<Artifact>,
    pub rootfs: RootfsRecord,
    pub agent: AgentRecord,
    pub env: Option<EnvRecord>,
    pub images: Vec<Artifact>,
    pub packages: Vec<Package>,
}

#[derive(Debug, Serialize)]
pub struct MachineRecord {
    pub path: String,
    pub sha256: String,
    pub text: String,
}

#[derive(Debug, Serialize, Clone)]
pub struct Artifact {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct RootfsRecord {
    pub cache_key: String,
    pub cache_hit: bool,
    pub suite: String,
    pub mirror: Option<String>,
    pub mmdebstrap: String,
}

#[derive(Debug, Serialize)]
pub struct AgentRecord {
    pub version: String,
    pub sha256: String,
    pub units: Vec<String>,
    pub enabled: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct EnvRecord {
    pub seed_iso: Option<String>,
    pub embedded: bool,
}

/// sha256 (hex) and size of a file, streamed.
pub fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        super::interrupt::check()?;
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An artifact record for `staged` under its final `file` name.
pub fn artifact(file: &str, staged: &Path) -> anyhow::Result<Artifact> {
    let (sha256, size) = hash_file(staged)?;
    Ok(Artifact {
        file: file.to_string(),
        size,
        sha256,
    })
}
