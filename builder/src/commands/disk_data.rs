//! `ecs-build disk data`: prepared data disks (LVM, optionally on md RAID1) for local VMs and tests.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Size of each data disk (e.g. 20G).
    #[arg(long)]
    pub size: String,
    /// Mirror two disks with md RAID1 (give -o twice).
    #[arg(long)]
    pub raid1: bool,
    /// Seed for UUIDs (reproducible output).
    #[arg(long)]
    pub seed: Option<String>,
    /// Output raw disk image(s).
    #[arg(short, long, required = true)]
    pub output: Vec<PathBuf>,
}

impl DataArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("disk data: not implemented yet")
    }
}
