//! `ecs-build image` and `ecs-build packer`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The machine description.
    #[arg(
        long,
        value_name = "machine.yml",
        required_unless_present = "print_default_config"
    )]
    pub config: Option<PathBuf>,
    /// Image version (default: `git describe`).
    #[arg(long = "image-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Print a commented default machine.yml and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

impl ImageArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("image: not implemented yet")
    }
}

#[derive(Debug, Args)]
pub struct PackerArgs {
    /// The machine description.
    #[arg(long, value_name = "machine.yml")]
    pub config: PathBuf,
}

impl PackerArgs {
    pub fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("packer: not implemented yet")
    }
}
