//! The FAT variant of the seed, made the way cloud-localds makes it: `mkfs.fat` (dosfstools)
//! formats an image labelled `cidata`, `mcopy` (mtools) puts the files in its root.
//!
//! Both tools are pinned down so that equal inputs give equal bytes: `mkfs.fat --invariant`
//! replaces its clock and random values by constants (then `-i` sets the serial we want), and
//! `mcopy -m` takes each file's time from its source, which we set to `timestamp`, read in UTC.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use host_util::{CommandExt, Tool};

use crate::SeedError;

const MKFS_FAT: Tool = Tool::new("mkfs.fat", "dosfstools");
const MCOPY: Tool = Tool::new("mcopy", "mtools");

/// FAT directory dates run from 1980-01-01 to 2107-12-31; mtools wraps times outside that,
/// so timestamps are clamped into it.
const FAT_FIRST: u64 = 315_532_800;
const FAT_LAST: u64 = 4_354_819_198;

/// Room for the boot sector, two FATs and the root directory of a small volume.
const OVERHEAD_KIB: u64 = 64;
/// Each file is counted as whole units of the largest cluster mkfs.fat picks for these sizes.
const CLUSTER_KIB: u64 = 16;

/// A FAT image with `files` in the root, labelled `label`, with volume serial `volume_id`.
pub(crate) fn write(
    files: &[(&'static str, &[u8])],
    label: &str,
    timestamp: u64,
    volume_id: u32,
) -> Result<Vec<u8>, SeedError> {
    let mut mkfs = MKFS_FAT.command()?;
    let mut mcopy = MCOPY.command()?;
    let dir = tempfile::tempdir().map_err(|source| SeedError::Io {
        context: "creating a temporary directory for the FAT seed".into(),
        source,
    })?;
    let mtime = UNIX_EPOCH + Duration::from_secs(timestamp.clamp(FAT_FIRST, FAT_LAST));
    let mut sources = Vec::with_capacity(files.len());
    let mut kib = OVERHEAD_KIB;
    for (name, data) in files {
        let path = dir.path().join(name);
        write_with_mtime(&path, data, mtime)?;
        sources.push(path);
        kib += (data.len() as u64).div_ceil(CLUSTER_KIB * 1024) * CLUSTER_KIB;
    }
    // Spare a sixteenth for FAT growth on larger volumes; mkfs.fat counts in KiB blocks.
    kib += kib / 16;

    let image = dir.path().join("seed.img");
    run(mkfs
        .env("TZ", "UTC")
        .args(["-C", "-n", label, "--invariant", "-i"])
        .arg(format!("{volume_id:08x}"))
        .arg(&image)
        .arg(kib.to_string()))?;
    run(mcopy
        .env("TZ", "UTC")
        .env("MTOOLSRC", "/dev/null")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-m")
        .arg("-i")
        .arg(&image)
        .args(&sources)
        .arg("::"))?;
    std::fs::read(&image).map_err(|source| SeedError::Io {
        context: format!("reading {}", image.display()),
        source,
    })
}

fn run(cmd: &mut std::process::Command) -> Result<(), SeedError> {
    cmd.run_checked()?;
    Ok(())
}

fn write_with_mtime(path: &Path, data: &[u8], mtime: std::time::SystemTime) -> Result<(), SeedError> {
    let io = |source| SeedError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    std::fs::write(path, data).map_err(io)?;
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(mtime))
        .map_err(io)
}
