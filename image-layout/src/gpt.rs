//! The GUID partition table (UEFI 2.10 §5.3): primary header at LBA 1 with 128 entries of 128
//! bytes from LBA 2, the same mirrored at the end of the disk, CRC32s over header and entries.
//! GUIDs come from the plan's seed; partition names are UTF-16LE.

use crate::layout::{GPT_ENTRIES_SECTORS, Layout, Role, SECTOR};
use crate::plan::Seed;

pub const ENTRY_COUNT: usize = 128;
pub const ENTRY_SIZE: usize = 128;
pub const HEADER_SIZE: usize = 92;

pub const TYPE_BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
pub const TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// "Linux root (x86-64)" from the Discoverable Partitions Specification.
pub const TYPE_ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
pub const TYPE_LINUX_DATA: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// IEEE CRC32 (reflected, polynomial 0xEDB88320), as GPT uses it.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, b| {
        table[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// A GUID in text order (as printed) to its on-disk form: the first three fields little-endian.
pub fn guid_bytes(text_order: &[u8; 16]) -> [u8; 16] {
    let mut g = *text_order;
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}

/// Parses `xxxxxxxx-xxxx-...` into text-order bytes.
pub fn parse_guid(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("GUID constants are hex");
    }
    out
}

pub fn type_guid(role: Role) -> &'static str {
    match role {
        Role::BiosBoot => TYPE_BIOS_BOOT,
        Role::Esp => TYPE_ESP,
        Role::Root => TYPE_ROOT_X86_64,
        Role::Volatile => TYPE_LINUX_DATA,
    }
}

/// The unique GUID of partition `number` (text order), derived from the seed.
pub fn partition_guid(seed: &Seed, number: u32) -> [u8; 16] {
    seed.uuid(&format!("gpt-partition-{number}"))
}

pub fn disk_guid(seed: &Seed) -> [u8; 16] {
    seed.uuid("gpt-disk-guid")
}

/// The entry array (128 x 128 bytes) for `layout`.
pub fn entry_array(layout: &Layout, seed: &Seed) -> Vec<u8> {
    let mut buf = vec![0u8; ENTRY_COUNT * ENTRY_SIZE];
    for (i, p) in layout.parts.iter().enumerate() {
        let e = &mut buf[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE];
        e[0..16].copy_from_slice(&guid_bytes(&parse_guid(type_guid(p.role))));
        e[16..32].copy_from_slice(&guid_bytes(&partition_guid(seed, p.number)));
        e[32..40].copy_from_slice(&p.start_lba().to_le_bytes());
        e[40..48].copy_from_slice(&(p.end() / SECTOR - 1).to_le_bytes());
        // Attribute bit 2 (legacy BIOS bootable) on root, as sgdisk's --attributes would set it.
        let attrs: u64 = if p.role == Role::Root { 1 << 2 } else { 0 };
        e[48..56].copy_from_slice(&attrs.to_le_bytes());
        for (j, unit) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    buf
}

/// One header sector. `primary` selects LBA 1 (entries at 2) or the last LBA (entries before it).
pub fn header(layout: &Layout, seed: &Seed, entries: &[u8], primary: bool) -> [u8; 512] {
    let last = layout.sectors() - 1;
    let (my_lba, alt_lba, entries_lba) = if primary {
        (1, last, 2)
    } else {
        (last, 1, last - GPT_ENTRIES_SECTORS)
    };
    let (first_usable, last_usable) = layout.gpt_usable();
    let mut h = [0u8; 512];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
    h[40..48].copy_from_slice(&first_usable.to_le_bytes());
    h[48..56].copy_from_slice(&last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&guid_bytes(&disk_guid(seed)));
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRY_COUNT as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&crc32(entries).to_le_bytes());
    let crc = crc32(&h[..HEADER_SIZE]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The writes a GPT consists of, as (byte offset, bytes): primary header and entries,
/// backup entries and header. The protective MBR is written by `mbr`.
pub fn writes(layout: &Layout, seed: &Seed) -> Vec<(u64, Vec<u8>)> {
    let entries = entry_array(layout, seed);
    let last = layout.sectors() - 1;
    let primary = header(layout, seed, &entries, true).to_vec();
    let backup = header(layout, seed, &entries, false).to_vec();
    vec![
        (SECTOR, primary),
        (2 * SECTOR, entries.clone()),
        ((last - GPT_ENTRIES_SECTORS) * SECTOR, entries),
        (last * SECTOR, backup),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn guid_mixed_endian() {
        let g = guid_bytes(&parse_guid(TYPE_ESP));
        assert_eq!(&g[..4], &[0x28, 0x73, 0x2A, 0xC1]);
        assert_eq!(&g[8..], &[0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);
    }
}
