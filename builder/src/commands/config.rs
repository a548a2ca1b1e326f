//! `ecs-build config new|check|seed|dns`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The appliance's domain, e.g. ecs.example.org.
    #[arg(long)]
    pub domain: String,
    /// An operator's SSH public key file to authorize (repeatable).
    #[arg(long = "ssh-key", value_name = "FILE.pub")]
    pub ssh_keys: Vec<PathBuf>,
    /// YAML whose values are merged over the generated defaults.
    #[arg(long, value_name = "extra.yml")]
    pub extra: Option<PathBuf>,
    /// Output folder (default: a folder named after the domain).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
}

impl NewArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("config new: not implemented yet")
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The env.yml to validate.
    pub env: PathBuf,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("config check: not implemented yet")
    }
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The env.yml to package.
    pub env: PathBuf,
    /// Output file.
    #[arg(short, long, value_name = "seed.iso")]
    pub output: PathBuf,
    /// Write a FAT image labelled cidata instead of ISO 9660.
    #[arg(long)]
    pub vfat: bool,
}

impl SeedArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("config seed: not implemented yet")
    }
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The env.yml whose domain and DKIM key to use.
    pub env: PathBuf,
}

impl DnsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("config dns: not implemented yet")
    }
}
