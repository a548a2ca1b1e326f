//! Where each partition of the system disk sits, in 512-byte sectors, and the checks every
//! layout passes before a byte is written: alignment, minimum sizes, overlap, the limits of
//! the table type. The MBR and GPT writers take a validated `Layout`; they never decide sizes.

use crate::plan::{PlanError, Size, SystemDiskPlan, TableKind};

pub const SECTOR: u64 = 512;
/// Partitions start on 1 MiB boundaries (2048 sectors), as fdisk and sgdisk align them.
pub const ALIGN: u64 = Size::MIB;
/// GPT: LBA 0 protective MBR, LBA 1 header, LBA 2..33 the 128 entries; mirrored at the end.
pub const GPT_ENTRIES_SECTORS: u64 = 32;
/// The size of the BIOS boot partition on GPT; it holds GRUB's core.img.
pub const BIOS_BOOT_SIZE: u64 = Size::MIB;
/// The size of the EFI system partition on GPT.
pub const ESP_SIZE: u64 = 64 * Size::MIB;
/// The smallest ext4 partition we make: a 4 MiB journal plus room for a tree.
pub const MIN_EXT4: u64 = 16 * Size::MIB;
/// MBR stores LBAs as u32: nothing may end beyond 2 TiB.
pub const MBR_LIMIT: u64 = (u32::MAX as u64 + 1) * SECTOR;

/// What a partition is for; decides its MBR type byte or GPT type GUID and its filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// GRUB's core.img on GPT (no filesystem).
    BiosBoot,
    /// EFI system partition (FAT).
    Esp,
    /// The root filesystem (ext4), active on MBR.
    Root,
    /// The volatile filesystem (ext4).
    Volatile,
}

impl Role {
    /// The smallest size this role accepts.
    pub fn min_size(self) -> u64 {
        match self {
            Role::BiosBoot => 64 * Size::KIB,
            Role::Esp => 32 * Size::MIB,
            Role::Root | Role::Volatile => MIN_EXT4,
        }
    }
}

/// One partition: `number` is what the kernel calls it (sda<number>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub role: Role,
    /// GPT partition name and filesystem label.
    pub name: String,
    pub start: u64,
    pub size: u64,
}

impl Part {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
    pub fn start_lba(&self) -> u64 {
        self.start / SECTOR
    }
    pub fn sectors(&self) -> u64 {
        self.size / SECTOR
    }
}

/// A whole disk: table type, total size in bytes, partitions in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: TableKind,
    pub disk_size: u64,
    pub parts: Vec<Part>,
}

impl Layout {
    /// The system disk for `plan`: MBR root (p1, active) + volatile (p2) from 1 MiB on; GPT
    /// BIOS boot (p1), ESP (p2), root (p3), volatile (p4), with 1 MiB at the end for the
    /// backup GPT.
    pub fn system(plan: &SystemDiskPlan) -> Result<Layout, PlanError> {
        for (key, size) in [
            ("root_size", plan.root_size),
            ("volatile_size", plan.volatile_size),
        ] {
            if !size.bytes().is_multiple_of(4096) {
                return Err(PlanError(format!(
                    "{key} {size}: expected a multiple of 4096 bytes (the ext4 block size)"
                )));
            }
            if size.bytes() < MIN_EXT4 {
                return Err(PlanError(format!(
                    "{key} {size} is too small, expected at least {}",
                    Size(MIN_EXT4)
                )));
            }
        }
        for (key, label) in [
            ("root_label", &plan.root_label),
            ("volatile_label", &plan.volatile_label),
        ] {
            if label.is_empty() || label.len() > 16 || !label.is_ascii() {
                return Err(PlanError(format!(
                    "{key} {label:?}: expected 1 to 16 ASCII characters (an ext4 label)"
                )));
            }
        }
        let mut parts = Vec::new();
        let mut at = ALIGN;
        let mut push = |role: Role, name: &str, size: u64| {
            parts.push(Part {
                number: parts.len() as u32 + 1,
                role,
                name: name.to_string(),
                start: at,
                size,
            });
            at = at.saturating_add(size.div_ceil(ALIGN).saturating_mul(ALIGN));
        };
        if plan.table == TableKind::Gpt {
            push(Role::BiosBoot, "BIOS boot", BIOS_BOOT_SIZE);
            push(Role::Esp, "EFI System", ESP_SIZE);
        }
        push(Role::Root, &plan.root_label, plan.root_size.bytes());
        push(Role::Volatile, &plan.volatile_label, plan.volatile_size.bytes());
        let disk_size = match plan.table {
            TableKind::Mbr => at,
            TableKind::Gpt => at.saturating_add(ALIGN),
        };
        let layout = Layout {
            table: plan.table,
            disk_size,
            parts,
        };
        layout.validate()?;
        Ok(layout)
    }

    pub fn part(&self, role: Role) -> Option<&Part> {
        self.parts.iter().find(|p| p.role == role)
    }

    pub fn sectors(&self) -> u64 {
        self.disk_size / SECTOR
    }

    /// First and last LBA a GPT partition may use.
    pub fn gpt_usable(&self) -> (u64, u64) {
        (
            2 + GPT_ENTRIES_SECTORS,
            self.sectors().saturating_sub(2 + GPT_ENTRIES_SECTORS),
        )
    }

    /// Everything a partition table writer relies on; the message names the value and what was expected.
    pub fn validate(&self) -> Result<(), PlanError> {
        let kind = match self.table {
            TableKind::Mbr => "MBR",
            TableKind::Gpt => "GPT",
        };
        if self.disk_size == 0 || !self.disk_size.is_multiple_of(SECTOR) {
            return Err(PlanError(format!(
                "disk size {} bytes: expected a positive multiple of 512",
                self.disk_size
            )));
        }
        if self.table == TableKind::Mbr && self.parts.len() > 4 {
            return Err(PlanError(format!(
                "{} partitions on an MBR disk: expected at most 4 primary partitions (use GPT)",
                self.parts.len()
            )));
        }
        if self.table == TableKind::Mbr && self.disk_size > MBR_LIMIT {
            return Err(PlanError(format!(
                "disk size {}: an MBR disk can address at most 2T (use GPT)",
                Size(self.disk_size)
            )));
        }
        let (first, last) = match self.table {
            TableKind::Mbr => (1, self.sectors().saturating_sub(1)),
            TableKind::Gpt => self.gpt_usable(),
        };
        for p in &self.parts {
            let what = format!("partition {} ({})", p.number, p.name);
            if !p.start.is_multiple_of(SECTOR) || !p.size.is_multiple_of(SECTOR) {
                return Err(PlanError(format!(
                    "{what}: start {} and size {} must be multiples of 512",
                    p.start, p.size
                )));
            }
            if p.size < p.role.min_size() {
                return Err(PlanError(format!(
                    "{what}: size {} is too small, expected at least {}",
                    Size(p.size),
                    Size(p.role.min_size())
                )));
            }
            if p.start_lba() < first || p.end() / SECTOR - 1 > last || p.end() > self.disk_size {
                return Err(PlanError(format!(
                    "{what}: sectors {}..{} lie outside the usable {kind} area {first}..={last}",
                    p.start_lba(),
                    p.end() / SECTOR
                )));
            }
            if self.table == TableKind::Mbr && p.end() > MBR_LIMIT {
                return Err(PlanError(format!(
                    "{what}: ends beyond 2T, which MBR cannot address (use GPT)"
                )));
            }
        }
        for (i, a) in self.parts.iter().enumerate() {
            for b in &self.parts[i + 1..] {
                if a.start < b.end() && b.start < a.end() {
                    return Err(PlanError(format!(
                        "partition {} ({}) at {}..{} overlaps partition {} ({}) at {}..{}",
                        a.number,
                        a.name,
                        a.start,
                        a.end(),
                        b.number,
                        b.name,
                        b.start,
                        b.end()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Seed;

    fn plan(table: TableKind) -> SystemDiskPlan {
        SystemDiskPlan::new(table, Seed("t".into()), 0)
    }

    #[test]
    fn mbr_system_layout_starts_at_1mib() {
        let l = Layout::system(&plan(TableKind::Mbr)).unwrap();
        assert_eq!(l.parts.len(), 2);
        assert_eq!(l.parts[0].start, Size::MIB);
        assert_eq!(l.parts[1].start, Size::MIB + 10 * Size::GIB);
        assert_eq!(l.disk_size, Size::MIB + 20 * Size::GIB);
    }

    #[test]
    fn gpt_layout_keeps_room_for_the_backup() {
        let l = Layout::system(&plan(TableKind::Gpt)).unwrap();
        let roles: Vec<Role> = l.parts.iter().map(|p| p.role).collect();
        assert_eq!(roles, [Role::BiosBoot, Role::Esp, Role::Root, Role::Volatile]);
        assert!(l.parts[3].end() / SECTOR <= l.gpt_usable().1);
    }

    #[test]
    fn rejects_bad_layouts_naming_the_value() {
        let good = Layout::system(&plan(TableKind::Mbr)).unwrap();
        let mut l = good.clone();
        l.disk_size += 100;
        assert!(l.validate().unwrap_err().0.contains("multiple of 512"));
        let mut l = good.clone();
        l.parts[1].start -= Size::MIB;
        let e = l.validate().unwrap_err().0;
        assert!(e.contains("overlaps"), "{e}");
        let mut l = good.clone();
        l.parts[1].size = Size::MIB;
        assert!(l.validate().unwrap_err().0.contains("too small"));
        let mut l = good.clone();
        for n in 3..=5 {
            let mut p = l.parts[1].clone();
            p.number = n;
            l.parts.push(p);
        }
        assert!(l.validate().unwrap_err().0.contains("at most 4 primary"));
        let mut p = plan(TableKind::Mbr);
        p.root_size = Size(3 * 1024 * Size::GIB);
        assert!(Layout::system(&p).unwrap_err().0.contains("at most 2T"));
        p.table = TableKind::Gpt;
        assert!(Layout::system(&p).is_ok());
        let mut p = plan(TableKind::Mbr);
        p.volatile_size = Size(10_000_001);
        assert!(Layout::system(&p).unwrap_err().0.contains("volatile_size"));
    }
}
