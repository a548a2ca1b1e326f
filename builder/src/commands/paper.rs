//! `ecs-build config print|unprint`: the paper backup of env.yml. The format and the PDF live in
//! `paper_backup`; this module wires files, flags and exit codes around it (anything wrong with
//! the input file or the scans is `BadInput`, exit 2).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use paper_backup::{PaperError, Scan};

use crate::error::BadInput;
use crate::output::Outputs;

#[derive(Debug, Args)]
pub struct PrintArgs {
    /// The env.yml to print.
    pub env: PathBuf,
    /// Output PDF (written mode 0600: it holds the key material).
    #[arg(short, long, value_name = "env.pdf")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

impl PrintArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut outputs = Outputs::new(self.force);
        let temp = outputs.add(&self.output, true)?;
        // Regular files only, env.yml-sized: a FIFO or /dev/zero must not hang or fill memory.
        let data = host_util::read_regular(&self.env, appliance_env::MAX_ENV_BYTES as u64)
            .map_err(|e| BadInput::new(format!("{}: reading: {e}", self.env.display())))?;
        let title = title_of(&self.env, &data);
        let pdf = paper_backup::print_pdf(&data, &title, crate::epoch::source_date_epoch_or_now()?)
            .map_err(|e| paper_error(e, &self.env))
            .with_context(|| format!("printing {}", self.env.display()))?;
        outputs.write(&temp, &pdf)?;
        outputs.commit()?;
        println!(
            "wrote {} ({} bytes): print it and keep it with the appliance's secrets",
            self.output.display(),
            pdf.len()
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct UnprintArgs {
    /// Scanned pages (PNG), in any order.
    #[arg(required = true, value_name = "SCAN.png")]
    pub scans: Vec<PathBuf>,
    /// Where to write the restored env.yml (mode 0600).
    #[arg(short, long, value_name = "env.yml")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

impl UnprintArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut outputs = Outputs::new(self.force);
        let temp = outputs.add(&self.output, true)?;
        let mut images = Vec::with_capacity(self.scans.len());
        for path in &self.scans {
            let bytes =
                fs::read(path).map_err(|e| BadInput::new(format!("{}: reading: {e}", path.display())))?;
            images.push((path.display().to_string(), bytes));
        }
        let scans: Vec<Scan<'_>> = images.iter().map(|(name, png)| Scan { name, png }).collect();
        let data = paper_backup::decode_scans(&scans)
            .map_err(|e| paper_error(e, Path::new("the scans")))
            .context("restoring from the scans")?;
        outputs.write(&temp, &data)?;
        outputs.commit()?;
        println!(
            "restored {} ({} bytes, sha256 {}); compare it with the printout",
            self.output.display(),
            data.len(),
            sha256_hex(&data)
        );
        Ok(())
    }
}

/// The printout's title: env.yml's domain, or the file name when it does not read as env.yml.
fn title_of(path: &Path, data: &[u8]) -> String {
    let name = path.display().to_string();
    match std::str::from_utf8(data)
        .map_err(|e| e.to_string())
        .and_then(|text| appliance_env::Env::from_yaml_str(text, &name).map_err(|e| e.to_string()))
    {
        Ok((env, _)) => env.appliance.domain.clone(),
        Err(e) => {
            tracing::warn!("{name} does not read as env.yml ({e}); printing it titled by its file name");
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(name)
        }
    }
}

fn paper_error(err: PaperError, input: &Path) -> anyhow::Error {
    if err.is_bad_input() {
        BadInput::new(err.to_string()).into()
    } else {
        anyhow::Error::new(err).context(format!("processing {}", input.display()))
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}
