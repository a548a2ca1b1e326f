//! `ecs-build image` (build the appliance image from machine.yml) and `ecs-build packer` (write
//! the packer templates for it). The work is in `crate::pipeline`; this file maps flags to it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::error::BadInput;
use crate::machine::{self, LoadedMachine, MachineError};
use crate::output::Outputs;
use crate::pipeline::{self, manifest, template};

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The machine description.
    #[arg(
        long,
        value_name = "machine.yml",
        required_unless_present = "print_default_config"
    )]
    pub config: Option<PathBuf>,
    /// Image version (default: `git describe --always --dirty` where machine.yml is).
    #[arg(long = "image-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Output directory (default: machine.yml's `outputs.dir`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Rebuild the cached Debian base even if an entry for the same inputs exists.
    #[arg(long)]
    pub refresh_base: bool,
    /// Replace existing artifacts of this name and version in the output directory.
    #[arg(long)]
    pub force: bool,
    /// Print a commented default machine.yml and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

/// machine.yml problems are the user's (exit 2); an unreadable file is too.
pub fn load_machine(path: &std::path::Path) -> anyhow::Result<LoadedMachine> {
    machine::load(path).map_err(|e| match e {
        MachineError::Read { .. }
        | MachineError::Parse { .. }
        | MachineError::Invalid { .. }
        | MachineError::Several { .. } => anyhow::Error::new(BadInput::new(e.to_string())),
    })
}

impl ImageArgs {
    pub fn run(self) -> anyhow::Result<()> {
        if self.print_default_config {
            print!("{}", machine::DEFAULT_CONFIG);
            return Ok(());
        }
        let path = self.config.context("--config is required")?;
        let loaded = load_machine(&path)?;
        let opts = pipeline::Options {
            version: self.version,
            out: self.out,
            refresh_base: self.refresh_base,
            force: self.force,
            json: crate::logging::json_enabled(),
        };
        let report = pipeline::build(&loaded, &opts)?;
        println!("{}", report.manifest.display());
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct PackerArgs {
    /// The machine description.
    #[arg(long, value_name = "machine.yml")]
    pub config: PathBuf,
    /// Image version the template refers to (default: `git describe --always --dirty`).
    #[arg(long = "image-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Output directory (default: machine.yml's `outputs.dir`); run packer from there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace existing templates of this name and version.
    #[arg(long)]
    pub force: bool,
}

impl PackerArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let loaded = load_machine(&self.config)?;
        let m = &loaded.machine;
        let dir = loaded
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        let version = pipeline::version(self.version.as_deref(), &dir)?;
        let base = format!("{}-{version}", m.name);
        let out = self.out.unwrap_or_else(|| m.outputs.dir.clone());
        pipeline::staging::prepare_dir(&out)?;
        let mut outputs = Outputs::new(self.force);
        let names = [format!("{base}.pkr.hcl"), format!("{base}.json")];
        let mut temps = Vec::new();
        for name in &names {
            temps.push(outputs.add(&out.join(name), false)?);
        }
        // Pin the raw image's checksum when it is already built; otherwise packer checks nothing.
        let raw = out.join(format!("{base}.raw"));
        let raw_sha = if raw.is_file() {
            Some(manifest::hash_file(&raw)?.0)
        } else {
            tracing::warn!(
                "{} not built yet: the template does not pin its checksum",
                raw.display()
            );
            None
        };
        let seed_name = format!("{base}.seed.iso");
        let inputs = template::TemplateInputs {
            machine: m,
            base: &base,
            raw_sha256: raw_sha.as_deref(),
            seed_iso: m.env.as_ref().map(|_| seed_name.as_str()),
        };
        let t = template::template(&inputs);
        for (temp, text) in temps.iter().zip([t.to_hcl()?, t.to_json()?]) {
            outputs.write(temp, text.as_bytes())?;
        }
        for path in outputs.commit()? {
            println!("{}", path.display());
        }
        Ok(())
    }
}
