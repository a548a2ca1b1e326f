//! `ecs-build config print|unprint`: the paper backup of env.yml.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct PrintArgs {
    /// The env.yml to print.
    pub env: PathBuf,
    /// Output PDF.
    #[arg(short, long, value_name = "env.pdf")]
    pub output: PathBuf,
}

impl PrintArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("config print: not implemented yet")
    }
}

#[derive(Debug, Args)]
pub struct UnprintArgs {
    /// Scanned pages (PNG), in any order.
    #[arg(required = true, value_name = "SCAN.png")]
    pub scans: Vec<PathBuf>,
    /// Where to write the restored env.yml.
    #[arg(short, long, value_name = "env.yml")]
    pub output: PathBuf,
}

impl UnprintArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("config unprint: not implemented yet")
    }
}
