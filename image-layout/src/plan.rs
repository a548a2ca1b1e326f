//! The typed layout plans callers build (from the CLI or machine.yml), validated before any
//! byte is written.
//!
//! CONTRACT (shared with the image pipeline in `builder/`): the names and fields below are
//! relied on by `ecs-build image`. Extend them; do not rename without updating callers.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A plan that cannot be written as asked: the message says which value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// A size in bytes, written and parsed as `10G`, `512M`, `1T`, `64K` (binary units) or plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;

    pub const fn bytes(self) -> u64 {
        self.0
    }
    pub const fn mib(n: u64) -> Size {
        Size(n * Self::MIB)
    }
    pub const fn gib(n: u64) -> Size {
        Size(n * Self::GIB)
    }
}

impl FromStr for Size {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let (num, mult) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let m = match c.to_ascii_uppercase() {
                    'K' => Self::KIB,
                    'M' => Self::MIB,
                    'G' => Self::GIB,
                    'T' => Self::GIB * 1024,
                    _ => {
                        return Err(PlanError(format!(
                            "size {s:?}: expected a number with K, M, G or T"
                        )));
                    }
                };
                (&t[..i], m)
            }
            _ => (t, 1),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| PlanError(format!("size {s:?}: expected a number like 10G or 512M")))?;
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| PlanError(format!("size {s:?} is too large")))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, m) in [
            ("T", Self::GIB * 1024),
            ("G", Self::GIB),
            ("M", Self::MIB),
            ("K", Self::KIB),
        ] {
            if b >= m && b.is_multiple_of(m) {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}")
    }
}

/// Where every UUID, hash seed, serial and volume id comes from: the same seed gives the same disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// dos-MBR: root (active) + volatile, as the seed describes. Limited to 2 TiB.
    Mbr,
    /// GPT with a protective MBR, a BIOS boot partition (GRUB core.img) and an ESP, then root + volatile.
    Gpt,
}

/// The system disk: root (`cloudimg-rootfs`) and volatile (`ecs-volatile`) ext4 partitions,
/// bootable through GRUB i386-pc (and UEFI on GPT when an ESP is planned).
#[derive(Debug, Clone)]
pub struct SystemDiskPlan {
    pub table: TableKind,
    pub root_size: Size,
    pub volatile_size: Size,
    /// The root filesystem's label; the kernel command line uses `root=LABEL=<this>`.
    pub root_label: String,
    pub volatile_label: String,
    /// Extra kernel command line, e.g. `console=ttyS0,115200`.
    pub kernel_cmdline: String,
    pub seed: Seed,
    /// Seconds since the epoch for every timestamp written (SOURCE_DATE_EPOCH).
    pub timestamp: u64,
}

/// What fills the root filesystem.
#[derive(Debug, Clone)]
pub enum TreeSource {
    /// A directory; ownership is taken as it is (run as root or in a user namespace for root-owned files).
    Dir(PathBuf),
    /// A tar archive (e.g. mmdebstrap's output); ownership comes from the archive, also when
    /// the build runs as an unprivileged user.
    Tarball(PathBuf),
}

/// A file the caller adds to the root filesystem on top of the tree (agent, units, grub.cfg ...).
/// Parent directories are created (root-owned, 0755) as needed.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    /// Absolute path inside the filesystem, e.g. `/usr/local/bin/ecs-agent`.
    pub path: String,
    pub kind: ExtraKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub enum ExtraKind {
    Bytes(Vec<u8>),
    /// Copied from a host file.
    File(PathBuf),
    Symlink(String),
    Dir,
}

/// A data disk (or a RAID1 pair): LVM PV, VG `permanent`, LV `data` at `data_percent` of the
/// group, the rest free for snapshots; `data` formatted ext4 with `data_label`.
#[derive(Debug, Clone)]
pub struct DataDiskPlan {
    /// Size of each disk.
    pub size: Size,
    /// Mirror across two disks with md RAID1 (superblock 1.2) under the PV.
    pub raid1: bool,
    pub vg_name: String,
    pub lv_name: String,
    /// Percentage of the volume group given to the LV (default 85).
    pub data_percent: u8,
    pub data_label: String,
    /// Tags of the volume group, e.g. `ecs-appliance:<domain>` naming the appliance that owns
    /// the disk (the agent refuses a VG tagged for another one).
    pub vg_tags: Vec<String>,
    pub seed: Seed,
    pub timestamp: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("10G".parse::<Size>().unwrap(), Size::gib(10));
        assert_eq!("512M".parse::<Size>().unwrap(), Size::mib(512));
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert_eq!(Size::gib(10).to_string(), "10G");
        assert_eq!(Size(1536 * Size::MIB).to_string(), "1536M");
        assert!("ten".parse::<Size>().is_err());
        assert!("5X".parse::<Size>().is_err());
    }
}
