//! GRUB for BIOS (i386-pc) written into a disk file without grub-install or a loop device:
//! core.img from `grub-mkimage` with every module the boot needs built in and an early config
//! that finds the root filesystem by label; boot.img's code copied into sector 0 around the
//! partition table; KERNEL_SECTOR and core.img's first blocklist entry pointing at where
//! core.img lies (the MBR gap, or the GPT BIOS boot partition). Also the grub.cfg the root
//! filesystem carries. Offsets are GRUB's `include/grub/i386/pc/boot.h` and `offsets.h`.

use std::path::{Path, PathBuf};

use host_util::{CommandError, CommandExt, MissingTool, Tool};

pub const GRUB_MKIMAGE: Tool = Tool::new("grub-mkimage", "grub-common");
/// Where Debian's grub-pc-bin installs the i386-pc modules and boot.img.
pub const I386_PC_DIR: &str = "/usr/lib/grub/i386-pc";
pub const I386_PC_PACKAGE: &str = "grub-pc-bin";

/// boot.img's code: everything before the disk signature.
pub const BOOT_CODE_LEN: usize = 440;
/// u64 LBA of core.img's first sector, inside boot.img.
pub const KERNEL_SECTOR_OFFSET: usize = 0x5C;
/// The first blocklist entry of diskboot.img (core.img's first sector): u64 start, u16 len, u16 segment.
pub const BLOCKLIST_OFFSET: usize = 0x1F4;
/// grub-bios-setup's limit for what diskboot loads: (0x78000 - 0x9000) / 512 sectors.
pub const MAX_CORE_SECTORS: u64 = 888;

/// Modules built into core.img: disk access, both table types, ext4, finding the root by
/// label, the config language, serial console and the Linux loader. Nothing is loaded from
/// the root filesystem later, so the tree need not carry GRUB's module directory.
pub const I386_PC_MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "part_gpt",
    "ext2",
    "search",
    "search_label",
    "search_fs_uuid",
    "normal",
    "configfile",
    "echo",
    "test",
    "linux",
    "serial",
    "terminal",
    "sleep",
    "halt",
    "reboot",
    "ls",
    "cat",
];

/// Modules built into the x86_64-efi image (the ESP's BOOTX64.EFI).
pub const X86_64_EFI_MODULES: &[&str] = &[
    "part_msdos",
    "part_gpt",
    "ext2",
    "fat",
    "search",
    "search_label",
    "search_fs_uuid",
    "normal",
    "configfile",
    "echo",
    "test",
    "linux",
    "serial",
    "terminal",
    "efi_gop",
    "sleep",
    "halt",
    "reboot",
    "ls",
    "cat",
];

#[derive(Debug, thiserror::Error)]
pub enum GrubError {
    #[error(transparent)]
    Missing(#[from] MissingTool),
    #[error("{dir} not found: install the Debian package `{package}` (or run `make deps`)")]
    MissingPlatform { dir: PathBuf, package: &'static str },
    #[error("making GRUB's core image: {0}")]
    Mkimage(#[source] CommandError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Layout(String),
}

/// The early config built into core.img: set `root` to the filesystem labelled `root_label`
/// and `prefix` to its /boot/grub, where `normal` then reads grub.cfg.
pub fn early_config(root_label: &str) -> String {
    format!(
        "search --no-floppy --set=root --label {label}\nset prefix=($root)/boot/grub\n",
        label = quote(root_label)
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The grub.cfg for the root filesystem: serial and VGA console, no menu delay worth
/// noticing, and one entry booting Debian's `/vmlinuz` (falling back to `/boot/vmlinuz`)
/// with `root=LABEL=<root_label> ro` plus `kernel_cmdline`, and `/initrd.img` when present.
pub fn grub_cfg(root_label: &str, kernel_cmdline: &str) -> String {
    let args = format!("root=LABEL={root_label} ro {kernel_cmdline}");
    let args = args.trim_end();
    format!(
        "# Written by image-layout: boots the kernel of this root filesystem.
set default=0
set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry 'Linux' {{
\tsearch --no-floppy --set=root --label {label}
\tif [ -e /vmlinuz ]; then
\t\tlinux /vmlinuz {args}
\telse
\t\tlinux /boot/vmlinuz {args}
\tfi
\tif [ -e /initrd.img ]; then
\t\tinitrd /initrd.img
\telif [ -e /boot/initrd.img ]; then
\t\tinitrd /boot/initrd.img
\tfi
}}
",
        label = quote(root_label)
    )
}

fn platform_dir(dir: &str, package: &'static str) -> Result<PathBuf, GrubError> {
    let p = PathBuf::from(dir);
    if p.join("moddep.lst").is_file() {
        Ok(p)
    } else {
        Err(GrubError::MissingPlatform { dir: p, package })
    }
}

/// Runs grub-mkimage for `format` with `modules` and the early config; returns the image bytes.
fn mkimage(format: &str, dir: &Path, modules: &[&str], root_label: &str) -> Result<Vec<u8>, GrubError> {
    let work = tempfile::tempdir().map_err(|source| GrubError::Io {
        what: "making a temporary directory".into(),
        source,
    })?;
    let cfg = work.path().join("early.cfg");
    let out = work.path().join("core.img");
    std::fs::write(&cfg, early_config(root_label)).map_err(|source| GrubError::Io {
        what: format!("writing {}", cfg.display()),
        source,
    })?;
    GRUB_MKIMAGE
        .command()?
        .args(["-O", format, "-d"])
        .arg(dir)
        .arg("-c")
        .arg(&cfg)
        .args(["-p", "/boot/grub", "-o"])
        .arg(&out)
        .args(modules)
        .run_checked()
        .map_err(GrubError::Mkimage)?;
    std::fs::read(&out).map_err(|source| GrubError::Io {
        what: format!("reading {}", out.display()),
        source,
    })
}

/// GRUB's i386-pc boot.img and core.img, ready to be placed.
pub struct BiosBoot {
    pub boot_img: Vec<u8>,
    pub core_img: Vec<u8>,
}

impl BiosBoot {
    /// Builds core.img with the host's GRUB (grub-common's grub-mkimage, grub-pc-bin's modules).
    pub fn build(root_label: &str) -> Result<BiosBoot, GrubError> {
        let dir = platform_dir(I386_PC_DIR, I386_PC_PACKAGE)?;
        let boot = dir.join("boot.img");
        let boot_img = std::fs::read(&boot).map_err(|source| GrubError::Io {
            what: format!("reading {}", boot.display()),
            source,
        })?;
        if boot_img.len() != 512 {
            return Err(GrubError::Layout(format!(
                "{}: {} bytes, expected 512",
                boot.display(),
                boot_img.len()
            )));
        }
        let core_img = mkimage("i386-pc", &dir, I386_PC_MODULES, root_label)?;
        Ok(BiosBoot { boot_img, core_img })
    }

    pub fn core_sectors(&self) -> u64 {
        (self.core_img.len() as u64).div_ceil(512)
    }

    /// core.img patched to be loaded from LBA `at`: its first blocklist entry points at the
    /// sector after `at` and covers the rest, which lies contiguously behind it. `room` is
    /// how many sectors are free there.
    pub fn placed_core(&self, at: u64, room: u64) -> Result<Vec<u8>, GrubError> {
        let sectors = self.core_sectors();
        if sectors > room || sectors > MAX_CORE_SECTORS {
            return Err(GrubError::Layout(format!(
                "GRUB core.img is {sectors} sectors; room for {} at LBA {at}",
                room.min(MAX_CORE_SECTORS)
            )));
        }
        let mut core = self.core_img.clone();
        core.resize((sectors * 512) as usize, 0);
        let b = BLOCKLIST_OFFSET;
        let len = u16::from_le_bytes([core[b + 8], core[b + 9]]);
        if u64::from(len) != sectors - 1 {
            return Err(GrubError::Layout(format!(
                "core.img blocklist length {len}: expected {} (core.img sectors after the first)",
                sectors - 1
            )));
        }
        core[b..b + 8].copy_from_slice(&(at + 1).to_le_bytes());
        Ok(core)
    }

    /// Sector 0 with boot.img's code (bytes 0..440) over it and KERNEL_SECTOR = `core_at`;
    /// the disk signature and partition table in `sector0` are kept.
    pub fn patch_boot_sector(&self, sector0: &mut [u8; 512], core_at: u64) {
        sector0[..BOOT_CODE_LEN].copy_from_slice(&self.boot_img[..BOOT_CODE_LEN]);
        sector0[KERNEL_SECTOR_OFFSET..KERNEL_SECTOR_OFFSET + 8].copy_from_slice(&core_at.to_le_bytes());
    }
}

pub const X86_64_EFI_DIR: &str = "/usr/lib/grub/x86_64-efi";
pub const X86_64_EFI_PACKAGE: &str = "grub-efi-amd64-bin";

/// GRUB as a UEFI application (BOOTX64.EFI) with the same early config.
pub fn efi_image(root_label: &str) -> Result<Vec<u8>, GrubError> {
    let dir = platform_dir(X86_64_EFI_DIR, X86_64_EFI_PACKAGE)?;
    mkimage("x86_64-efi", &dir, X86_64_EFI_MODULES, root_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_by_label_with_cmdline() {
        let c = grub_cfg("cloudimg-rootfs", "console=ttyS0,115200");
        assert!(
            c.contains("linux /vmlinuz root=LABEL=cloudimg-rootfs ro console=ttyS0,115200\n"),
            "{c}"
        );
        assert!(c.contains("--label 'cloudimg-rootfs'"), "{c}");
        assert!(early_config("a'b").contains(r"'a'\''b'"));
    }

    #[test]
    fn core_image_is_placed_and_boot_sector_keeps_the_table() {
        let g = BiosBoot::build("root").unwrap();
        assert!(
            g.core_sectors() > 1 && g.core_sectors() < MAX_CORE_SECTORS,
            "{}",
            g.core_sectors()
        );
        let core = g.placed_core(2048, 2048).unwrap();
        assert_eq!(u64::from_le_bytes(core[0x1F4..0x1FC].try_into().unwrap()), 2049);
        assert!(
            g.placed_core(1, 3)
                .unwrap_err()
                .to_string()
                .contains("room for 3")
        );
        let mut s = [0u8; 512];
        s[440..].fill(0xAB);
        g.patch_boot_sector(&mut s, 2048);
        assert!(s[440..].iter().all(|b| *b == 0xAB));
        assert_eq!(u64::from_le_bytes(s[0x5C..0x64].try_into().unwrap()), 2048);
        assert_eq!(s[..0x5C], g.boot_img[..0x5C]);
    }
}
