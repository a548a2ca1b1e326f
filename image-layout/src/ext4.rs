//! ext4 filesystems made by `mke2fs` straight into a byte range of the disk file.
//!
//! mke2fs writes only the blocks it uses, so the disk stays sparse. Contents come from
//! `mke2fs -d`: a directory, or a tarball (e2fsprogs >= 1.47.1 with libarchive), whose
//! ownership is taken from the archive; that is how a rootless build gets root-owned files.
//! UUID and hash seed come from the plan's seed, and every timestamp mke2fs makes itself
//! from `SOURCE_DATE_EPOCH`/`E2FSPROGS_FAKE_TIME`, so the same inputs give the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use host_util::{CommandError, CommandExt, MissingTool, Tool};

pub const MKE2FS: Tool = Tool::new("mke2fs", "e2fsprogs");

#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error(transparent)]
    Missing(#[from] MissingTool),
    #[error("making ext4 {label:?} at offset {offset}: {source}")]
    Mke2fs {
        label: String,
        offset: u64,
        #[source]
        source: CommandError,
    },
}

/// One ext4 filesystem inside a disk image file.
#[derive(Debug, Clone)]
pub struct Ext4Spec {
    /// Byte offset of the partition (or LV) in the image file.
    pub offset: u64,
    /// Filesystem size in bytes; a multiple of 4096.
    pub size: u64,
    pub label: String,
    pub uuid: String,
    pub hash_seed: String,
    /// Seconds since the epoch for the times mke2fs stamps itself.
    pub timestamp: u64,
}

/// What `mke2fs -d` reads: a directory, a tarball path, or `-` for a tarball on stdin.
#[derive(Debug, Clone)]
pub enum Ext4Contents {
    Empty,
    Dir(PathBuf),
    Tarball(PathBuf),
}

/// The mke2fs command for `spec` writing into `image`; the caller may attach stdin (for `-d -`).
pub fn mke2fs_command(image: &Path, spec: &Ext4Spec, contents: &Ext4Contents) -> Result<Command, Ext4Error> {
    let mut cmd = MKE2FS.command()?;
    cmd.env("SOURCE_DATE_EPOCH", spec.timestamp.to_string())
        .env("E2FSPROGS_FAKE_TIME", spec.timestamp.to_string())
        // Never read the host's /etc/mke2fs.conf: builds must not depend on the build machine.
        .env("MKE2FS_CONFIG", "/dev/null")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-m", "0"])
        .args(["-O", "^metadata_csum_seed,^orphan_file"])
        .args(["-L", &spec.label, "-U", &spec.uuid])
        .arg("-E")
        .arg(format!(
            "offset={},hash_seed={},root_owner=0:0,nodiscard,lazy_itable_init=0,lazy_journal_init=0",
            spec.offset, spec.hash_seed
        ));
    match contents {
        Ext4Contents::Empty => {}
        Ext4Contents::Dir(p) | Ext4Contents::Tarball(p) => {
            cmd.arg("-d").arg(p);
        }
    }
    cmd.arg(image).arg(format!("{}k", spec.size / 1024));
    Ok(cmd)
}

/// Makes the filesystem and fills it from `contents`.
pub fn make_ext4(image: &Path, spec: &Ext4Spec, contents: &Ext4Contents) -> Result<(), Ext4Error> {
    mke2fs_command(image, spec, contents)?
        .run_checked()
        .map_err(|source| Ext4Error::Mke2fs {
            label: spec.label.clone(),
            offset: spec.offset,
            source,
        })?;
    Ok(())
}
