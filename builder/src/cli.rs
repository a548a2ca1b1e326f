//! The command line: one enum per level, one struct per leaf (defined beside its `run`).

use clap::{Parser, Subcommand};

use crate::commands::{config, disk, disk_data, image, paper};

/// Build ECS appliance configs, cloud-init seeds, disks and bootable images.
#[derive(Debug, Parser)]
#[command(name = "ecs-build", version, help_expected = true)]
pub struct Cli {
    /// Log JSON event lines instead of plain text (for CI).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, check and package an appliance's env.yml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write appliance disks (system, data) as sparse raw files.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Build a versioned, bootable appliance image from machine.yml.
    Image(image::ImageArgs),
    /// Write the packer template for machine.yml.
    Packer(image::PackerArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Generate a new env.yml with fresh key material, its seed ISO and its paper backup.
    New(config::NewArgs),
    /// Validate an env.yml against the model.
    Check(config::CheckArgs),
    /// Write the cloud-init NoCloud seed (ISO 9660, or FAT with --vfat) for an env.yml.
    Seed(config::SeedArgs),
    /// Print the DNS records to publish for an env.yml.
    Dns(config::DnsArgs),
    /// Print env.yml as a PDF with QR codes, for the safe.
    Print(paper::PrintArgs),
    /// Restore env.yml from scans of its printed QR codes.
    Unprint(paper::UnprintArgs),
}

#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Write a bootable system disk (root + volatile) from a tree or tarball.
    System(disk::SystemArgs),
    /// Write prepared data disk(s): LVM `permanent`/`data`, optionally on md RAID1.
    Data(disk_data::DataArgs),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Config(c) => match c {
                ConfigCommand::New(a) => a.run(),
                ConfigCommand::Check(a) => a.run(),
                ConfigCommand::Seed(a) => a.run(),
                ConfigCommand::Dns(a) => a.run(),
                ConfigCommand::Print(a) => a.run(),
                ConfigCommand::Unprint(a) => a.run(),
            },
            Command::Disk(d) => match d {
                DiskCommand::System(a) => a.run(),
                DiskCommand::Data(a) => a.run(),
            },
            Command::Image(a) => a.run(),
            Command::Packer(a) => a.run(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
