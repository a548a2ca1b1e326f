//! `ecs-build disk data`: prepared data disks (LVM, optionally on md RAID1) for local VMs and tests.
//!
//! A thin shell over `image_layout::write_data_disks`: it parses the size, picks the seed and
//! the timestamp (SOURCE_DATE_EPOCH), maps plan errors to exit code 2 and prints what it wrote.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use image_layout::{DataDiskError, DataDiskPlan, DataDiskReport, Seed, Size, write_data_disks};

use crate::error::BadInput;
use crate::output::Outputs;
use crate::pipeline::interrupt;

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
    /// The appliance (its appliance.domain) that owns the disk: recorded as the VG tag
    /// `ecs-appliance:DOMAIN`. The agent refuses a disk owned by another appliance, or by none.
    #[arg(long, value_name = "DOMAIN")]
    pub owner: Option<String>,
    /// Output raw disk image(s).
    #[arg(short, long, required = true)]
    pub output: Vec<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
}

impl DataArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let size: Size = self
            .size
            .parse()
            .map_err(|e: image_layout::PlanError| BadInput::new(format!("--size: {e}")))?;
        let seed = match self.seed {
            Some(s) => s,
            None => {
                let s = random_seed().context("making a seed")?;
                tracing::info!(seed = %s, "no --seed given: using a random one (pass --seed to reproduce)");
                s
            }
        };
        let mut outputs = Outputs::new(self.force);
        let mut temps = Vec::new();
        for path in &self.output {
            temps.push(outputs.add(path, false)?);
        }
        let mut plan = DataDiskPlan::new(
            size,
            self.raid1,
            Seed(seed),
            crate::epoch::source_date_epoch_or_now()?,
        );
        match &self.owner {
            Some(domain) => {
                appliance_env::check_domain(domain)
                    .map_err(|e| BadInput::new(format!("--owner {domain:?}: {e}")))?;
                plan.vg_tags
                    .push(format!("ecs-appliance:{}", domain.to_ascii_lowercase()));
            }
            None => tracing::warn!(
                "no --owner: the disk carries no owner tag, and an appliance takes it only with appliance.storage.adopt: true"
            ),
        }
        let written = write_data_disks(&plan, &temps);
        interrupt::check()?;
        let report = match written {
            Ok(r) => r,
            Err(DataDiskError::Plan(e)) => return Err(BadInput::new(e.0).into()),
            Err(e) => {
                let names: Vec<String> = self.output.iter().map(|p| p.display().to_string()).collect();
                return Err(e).with_context(|| format!("writing {}", names.join(" and ")));
            }
        };
        outputs.commit()?;
        for path in &self.output {
            println!("{}", summary(path, size, &report));
        }
        Ok(())
    }
}

fn summary(path: &std::path::Path, size: Size, r: &DataDiskReport) -> String {
    let mib = |b: u64| Size(b / Size::MIB * Size::MIB);
    let mut s = format!(
        "{}: {size}, VG {} ({} extents of {}), LV {} {} extents ({}) at byte {}, {} extents ({}) free for snapshots, ext4 LABEL={}",
        path.display(),
        r.vg_name,
        r.extents,
        Size(r.extent_size),
        r.lv_name,
        r.lv_extents,
        mib(r.lv_size),
        r.lv_offset,
        r.free_extents,
        mib(r.free_bytes),
        r.fs_label,
    );
    if let Some(a) = &r.array {
        s.push_str(&format!(
            "; md RAID1 {} UUID {}, data at byte {}",
            a.name, a.uuid, a.data_offset
        ));
    }
    s
}

/// 16 random bytes from the kernel, as hex.
fn random_seed() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_code;

    fn args(size: &str, raid1: bool, outputs: Vec<PathBuf>) -> DataArgs {
        DataArgs {
            size: size.into(),
            raid1,
            seed: Some("cli".into()),
            owner: None,
            output: outputs,
            force: false,
        }
    }

    #[test]
    fn writes_a_disk() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data.raw");
        args("64M", false, vec![out.clone()]).run().unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 64 << 20);
    }

    #[test]
    fn bad_input_exits_2_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.raw");
        for (args, want) in [
            (args("20Q", false, vec![a.clone()]), "--size: size \"20Q\""),
            (args("1000", false, vec![a.clone()]), "multiple of 512"),
            (
                args("64M", true, vec![a.clone()]),
                "raid1 needs exactly 2 outputs",
            ),
            (
                args("64M", false, vec![a.clone(), dir.path().join("b.raw")]),
                "exactly 1 output",
            ),
            (
                DataArgs {
                    owner: Some("not a domain!".into()),
                    ..args("64M", false, vec![a.clone()])
                },
                "--owner \"not a domain!\"",
            ),
        ] {
            let err = args.run().unwrap_err();
            assert_eq!(exit_code(&err), 2, "{err:#}");
            assert!(format!("{err:#}").contains(want), "{err:#}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn failed_writes_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let err = args("64M", false, vec![dir.path().join("no/such/dir/d.raw")])
            .run()
            .unwrap_err();
        assert_eq!(exit_code(&err), 1, "{err:#}");
        assert!(format!("{err:#}").contains("no/such/dir/d.raw"), "{err:#}");
    }
}
