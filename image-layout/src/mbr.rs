//! The DOS master boot record: disk signature, four primary entries, 0x55AA. Also the
//! protective MBR in front of a GPT. Only the table (bytes 440..512) is ours; the boot code
//! in bytes 0..440 belongs to GRUB (`grub::patch_boot_sector`).

use crate::layout::{Layout, Role, SECTOR};
use crate::plan::TableKind;

pub const SIGNATURE_OFFSET: usize = 0x1B8;
pub const TABLE_OFFSET: usize = 0x1BE;
pub const TYPE_LINUX: u8 = 0x83;
pub const TYPE_GPT_PROTECTIVE: u8 = 0xEE;
pub const TYPE_EFI: u8 = 0xEF;

/// One 16-byte partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub active: bool,
    pub kind: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

/// CHS address as sfdisk writes it: 255 heads, 63 sectors per track, clamped to 1023/254/63.
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SPT: u64 = 63;
    let cyl = lba / (HEADS * SPT);
    if cyl > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / SPT) % HEADS;
    let sector = lba % SPT + 1;
    [head as u8, (sector as u8) | (((cyl >> 8) as u8) << 6), cyl as u8]
}

impl Entry {
    fn encode(&self) -> [u8; 16] {
        let mut e = [0u8; 16];
        e[0] = if self.active { 0x80 } else { 0 };
        let last = u64::from(self.start_lba) + u64::from(self.sectors).max(1) - 1;
        if self.kind == TYPE_GPT_PROTECTIVE {
            // UEFI 2.x §5.2.3: start CHS 0/0/2, end CHS all ones.
            e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
            e[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        } else {
            e[1..4].copy_from_slice(&chs(u64::from(self.start_lba)));
            e[5..8].copy_from_slice(&chs(last));
        }
        e[4] = self.kind;
        e[8..12].copy_from_slice(&self.start_lba.to_le_bytes());
        e[12..16].copy_from_slice(&self.sectors.to_le_bytes());
        e
    }
}

/// Writes the signature, entries and boot marker into `sector0`, leaving bytes 0..440 alone.
pub fn write_table(sector0: &mut [u8; 512], signature: u32, entries: &[Entry]) {
    assert!(entries.len() <= 4, "validated layouts have at most 4 MBR entries");
    sector0[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4].copy_from_slice(&signature.to_le_bytes());
    sector0[0x1BC] = 0;
    sector0[0x1BD] = 0;
    sector0[TABLE_OFFSET..0x1FE].fill(0);
    for (i, e) in entries.iter().enumerate() {
        let at = TABLE_OFFSET + i * 16;
        sector0[at..at + 16].copy_from_slice(&e.encode());
    }
    sector0[0x1FE] = 0x55;
    sector0[0x1FF] = 0xAA;
}

/// The entries of `layout` as they go into sector 0: the partitions for MBR (root active),
/// one protective 0xEE entry for GPT.
pub fn entries(layout: &Layout) -> Vec<Entry> {
    match layout.table {
        TableKind::Mbr => layout
            .parts
            .iter()
            .map(|p| Entry {
                active: p.role == Role::Root,
                kind: if p.role == Role::Esp { TYPE_EFI } else { TYPE_LINUX },
                // Validation guarantees MBR partitions end below 2 TiB.
                start_lba: p.start_lba() as u32,
                sectors: p.sectors() as u32,
            })
            .collect(),
        TableKind::Gpt => vec![Entry {
            active: false,
            kind: TYPE_GPT_PROTECTIVE,
            start_lba: 1,
            sectors: (layout.disk_size / SECTOR - 1).min(u64::from(u32::MAX)) as u32,
        }],
    }
}

/// Reads the four entries back (for tests and checks).
pub fn read_entries(sector0: &[u8; 512]) -> Vec<Entry> {
    (0..4)
        .map(|i| {
            let e = &sector0[TABLE_OFFSET + i * 16..TABLE_OFFSET + i * 16 + 16];
            Entry {
                active: e[0] == 0x80,
                kind: e[4],
                start_lba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
                sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
            }
        })
        .filter(|e| e.kind != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_matches_the_classic_geometry() {
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(100_000_000), [0xFE, 0xFF, 0xFF]);
    }

    #[test]
    fn table_keeps_boot_code_and_round_trips() {
        let mut s = [0x90u8; 512];
        let e = [
            Entry {
                active: true,
                kind: TYPE_LINUX,
                start_lba: 2048,
                sectors: 4096,
            },
            Entry {
                active: false,
                kind: TYPE_LINUX,
                start_lba: 6144,
                sectors: 2048,
            },
        ];
        write_table(&mut s, 0xdeadbeef, &e);
        assert!(s[..440].iter().all(|b| *b == 0x90));
        assert_eq!(&s[0x1B8..0x1BC], &0xdeadbeefu32.to_le_bytes());
        assert_eq!(&s[510..], &[0x55, 0xAA]);
        assert_eq!(read_entries(&s), e);
    }
}
