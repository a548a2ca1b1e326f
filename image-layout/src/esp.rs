//! The EFI system partition: FAT made by `mkfs.vfat --offset` in the partition's byte range,
//! then `\EFI\BOOT\BOOTX64.EFI` (GRUB x86_64-efi) copied in with mtools. Volume id from the
//! seed; `--invariant`, SOURCE_DATE_EPOCH and TZ=UTC keep the bytes the same on every run.

use std::path::Path;

use host_util::{CommandError, CommandExt, MissingTool, Tool};

pub const MKFS_VFAT: Tool = Tool::new("mkfs.vfat", "dosfstools");
pub const MMD: Tool = Tool::new("mmd", "mtools");
pub const MCOPY: Tool = Tool::new("mcopy", "mtools");

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error(transparent)]
    Missing(#[from] MissingTool),
    #[error("making the ESP at offset {offset}: {source}")]
    Command {
        offset: u64,
        #[source]
        source: CommandError,
    },
    #[error("writing a temporary BOOTX64.EFI: {0}")]
    Io(#[source] std::io::Error),
}

/// Formats `size` bytes at `offset` of `image` as FAT labelled `EFI` and installs `bootx64`.
pub fn make_esp(
    image: &Path,
    offset: u64,
    size: u64,
    volume_id: u32,
    timestamp: u64,
    bootx64: &[u8],
) -> Result<(), EspError> {
    let err = |source| EspError::Command { offset, source };
    let epoch = timestamp.to_string();
    MKFS_VFAT
        .command()?
        .env("SOURCE_DATE_EPOCH", &epoch)
        .env("TZ", "UTC")
        // FAT32 as UEFI asks for; 1-sector clusters keep a 64 MiB ESP above FAT32's cluster minimum.
        .args([
            "--invariant",
            "-F",
            "32",
            "-s",
            "1",
            "-i",
            &format!("{volume_id:08X}"),
            "-n",
            "EFI",
        ])
        .arg(format!("--offset={}", offset / 512))
        .arg(image)
        .arg((size / 1024).to_string())
        .run_checked()
        .map_err(err)?;
    let target = format!("{}@@{offset}", image.display());
    let mut efi = tempfile::NamedTempFile::new().map_err(EspError::Io)?;
    std::io::Write::write_all(&mut efi, bootx64).map_err(EspError::Io)?;
    efi.as_file()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(timestamp))
        .map_err(EspError::Io)?;
    MMD.command()?
        .env("SOURCE_DATE_EPOCH", &epoch)
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &target, "::/EFI", "::/EFI/BOOT"])
        .run_checked()
        .map_err(err)?;
    MCOPY
        .command()?
        .env("SOURCE_DATE_EPOCH", &epoch)
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-m", "-i", &target])
        .arg(efi.path())
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .run_checked()
        .map_err(err)?;
    Ok(())
}
