//! `ecs-build disk system`: image-layout's system disk exposed for operators and tests.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct SystemArgs {
    /// Root filesystem contents: a directory or a tarball.
    #[arg(long, value_name = "DIR|TARBALL")]
    pub tree: PathBuf,
    /// Size of the root partition (e.g. 10G).
    #[arg(long, default_value = "10G")]
    pub root_size: String,
    /// Size of the volatile partition (e.g. 10G).
    #[arg(long, default_value = "10G")]
    pub volatile_size: String,
    /// Partition table type.
    #[arg(long, default_value = "mbr", value_parser = ["mbr", "gpt"])]
    pub table: String,
    /// Seed for UUIDs and hash seeds (reproducible output).
    #[arg(long)]
    pub seed: Option<String>,
    /// Output raw disk image.
    #[arg(short, long)]
    pub output: PathBuf,
}

impl SystemArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("disk system: not implemented yet")
    }
}
