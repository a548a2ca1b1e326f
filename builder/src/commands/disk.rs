//! `ecs-build disk system`: image-layout's system disk exposed for operators and tests.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use image_layout::{Seed, Size, SystemDiskPlan, TableKind, TreeSource, write_system_disk};

use crate::error::BadInput;
use crate::output::Outputs;
use crate::pipeline::interrupt;

/// The seed when none is given: the same inputs then always give the same disk.
pub const DEFAULT_SEED: &str = "ecs-build";

#[derive(Debug, Args)]
pub struct SystemArgs {
    /// Root filesystem contents: a directory (ownership as it is on disk) or an uncompressed
    /// tar archive (ownership from the archive, e.g. mmdebstrap's output).
    #[arg(long, value_name = "DIR|TARBALL")]
    pub tree: PathBuf,
    /// Size of the root partition (e.g. 10G).
    #[arg(long, default_value = "10G")]
    pub root_size: String,
    /// Size of the volatile partition (e.g. 10G).
    #[arg(long, default_value = "10G")]
    pub volatile_size: String,
    /// Partition table type: mbr (root p1, volatile p2) or gpt (BIOS boot, ESP, root, volatile).
    #[arg(long, default_value = "mbr", value_parser = ["mbr", "gpt"])]
    pub table: String,
    /// Seed for UUIDs, hash seeds and the disk signature (reproducible output).
    #[arg(long, default_value = DEFAULT_SEED)]
    pub seed: String,
    /// Extra kernel command line after `root=LABEL=cloudimg-rootfs ro`.
    #[arg(long, default_value = image_layout::system::DEFAULT_KERNEL_CMDLINE)]
    pub kernel_cmdline: String,
    /// Output raw disk image (sparse). Every timestamp written is SOURCE_DATE_EPOCH from the
    /// environment, or 0 when it is unset.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

fn size(flag: &str, value: &str) -> anyhow::Result<Size> {
    value
        .parse()
        .map_err(|e| BadInput::new(format!("--{flag}: {e}")).into())
}

impl SystemArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut outputs = Outputs::new(self.force);
        let temp = outputs.add(&self.output, false)?;
        let table = match self.table.as_str() {
            "gpt" => TableKind::Gpt,
            _ => TableKind::Mbr,
        };
        let mut plan = SystemDiskPlan::new(
            table,
            Seed(self.seed.clone()),
            crate::epoch::source_date_epoch().map(|t| t.unwrap_or(0))?,
        );
        plan.root_size = size("root-size", &self.root_size)?;
        plan.volatile_size = size("volatile-size", &self.volatile_size)?;
        plan.kernel_cmdline = self.kernel_cmdline.clone();
        let tree = if self.tree.is_dir() {
            TreeSource::Dir(self.tree.clone())
        } else if self.tree.is_file() {
            TreeSource::Tarball(self.tree.clone())
        } else {
            return Err(BadInput::new(format!(
                "--tree {}: no such directory or file (expected a directory or a tar archive)",
                self.tree.display()
            ))
            .into());
        };
        tracing::info!(tree = %self.tree.display(), output = %self.output.display(), "writing system disk");
        let written = write_system_disk(&plan, &tree, &[], &temp);
        interrupt::check()?;
        let report = written.map_err(|e| {
            let bad = e.is_bad_input();
            let err = anyhow::Error::new(e);
            if bad {
                BadInput::new(format!("{err:#}")).into()
            } else {
                err
            }
        });
        let report = report.with_context(|| format!("writing system disk {}", self.output.display()))?;
        outputs.commit()?;
        for p in &report.partitions {
            println!(
                "p{} {:<16} start {:>12} size {:>8} fs {}",
                p.number,
                p.label,
                p.start,
                Size(p.size).to_string(),
                p.fs_uuid.as_deref().unwrap_or("-")
            );
        }
        println!(
            "{}: {} apparent, {} MiB used on disk",
            self.output.display(),
            Size(report.total_bytes),
            report.used_bytes.div_ceil(Size::MIB)
        );
        Ok(())
    }
}
