//! LVM2 physical volumes written byte by byte: the label at sector 1, the PV header, one
//! metadata area with its header and the text metadata of a volume group.
//!
//! No partition table goes on a data disk: the PV is the whole disk, or the whole md device
//! on a RAID1 pair. That is where the appliance agent looks for it. The layout matches what
//! lvm2 2.03 `pvcreate`/`vgcreate` write with their defaults (metadata area at 4 KiB, data
//! from 1 MiB), checked with `pvck`, `pvs`, `vgs` and `lvs` in the tests. Integers are
//! little-endian; sizes in the binary headers are bytes, in the text metadata sectors.

mod read;
mod text;

pub use read::{LvmReadError, PvLabel, VgSummary, read_pv_label};
pub use text::{LvText, VgText, valid_tag};

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::plan::Seed;

pub const SECTOR: u64 = 512;
/// Where `pvcreate` puts the label: sector 1.
pub const LABEL_OFFSET: u64 = SECTOR;
/// The pv_header follows the 32-byte label_header in the same sector.
const PV_HEADER_OFFSET: usize = 32;
/// The (only) metadata area starts at 4 KiB and runs up to the first extent.
pub const MDA_OFFSET: u64 = 4096;
/// First physical extent: 1 MiB, lvm2's default `pe_start`.
pub const PE_START: u64 = 1 << 20;
/// lvm2's default extent size: 4 MiB.
pub const EXTENT_SIZE: u64 = 4 << 20;
/// The metadata text starts one sector into the metadata area (after the mda_header).
const MDA_TEXT_OFFSET: u64 = SECTOR;

pub(crate) const LABEL_ID: &[u8; 8] = b"LABELONE";
pub(crate) const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
pub(crate) const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
pub(crate) const MDA_VERSION: u32 = 1;
/// pv_header_extension version and the PV_EXT_USED flag (the PV belongs to a VG).
const PV_EXT_VERSION: u32 = 2;
const PV_EXT_USED: u32 = 1;

/// lvm2's `calc_crc`: reflected CRC-32 (polynomial 0xEDB88320) with the initial value
/// 0xf597a6cf and no final XOR. crc32fast implements the standard CRC-32, which inverts the
/// register on the way in and out; inverting around it gives lvm2's variant.
pub fn crc(bytes: &[u8]) -> u32 {
    const INITIAL: u32 = 0xf597_a6cf;
    let mut h = crc32fast::Hasher::new_with_initial(!INITIAL);
    h.update(bytes);
    !h.finalize()
}

/// A 32-character LVM UUID (`[0-9a-zA-Z]`, as lvm2's `id_create` makes them) derived from
/// the seed for `purpose`.
pub fn lvm_uuid(seed: &Seed, purpose: &str) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    seed.bytes(purpose, 32)
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The dashed form lvm2 uses in text metadata and reports: 6-4-4-4-4-4-6.
pub fn format_lvm_uuid(id: &str) -> String {
    let mut out = String::with_capacity(38);
    let mut at = 0;
    for (i, n) in [6, 4, 4, 4, 4, 4, 6].into_iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(id.get(at..at + n).unwrap_or(""));
        at += n;
    }
    out
}

/// Number of whole extents a PV of `device_size` bytes holds after `PE_START`.
pub fn pe_count(device_size: u64) -> u64 {
    device_size.saturating_sub(PE_START) / EXTENT_SIZE
}

/// Size of the metadata area: from `MDA_OFFSET` up to the first extent.
pub const fn mda_size() -> u64 {
    PE_START - MDA_OFFSET
}

/// A physical volume to write: its UUID (32 characters, no dashes), the size of the device it
/// spans in bytes, and the volume group text metadata (without the trailing NUL).
#[derive(Debug, Clone)]
pub struct PvSpec {
    pub pv_uuid: String,
    pub device_size: u64,
    pub metadata: String,
}

/// The label sector (sector 1): label_header and pv_header with its extension.
pub fn label_sector(pv: &PvSpec) -> [u8; SECTOR as usize] {
    let mut s = [0u8; SECTOR as usize];
    s[0..8].copy_from_slice(LABEL_ID);
    put_u64(&mut s, 8, LABEL_OFFSET / SECTOR);
    // crc_xl at 16, filled in last.
    put_u32(&mut s, 20, PV_HEADER_OFFSET as u32);
    s[24..32].copy_from_slice(LABEL_TYPE);

    let h = PV_HEADER_OFFSET;
    s[h..h + 32].copy_from_slice(pv.pv_uuid.as_bytes());
    put_u64(&mut s, h + 32, pv.device_size);
    // Data areas: one, starting at pe_start, size 0 meaning "to the end"; then a terminator.
    let mut at = h + 40;
    for (offset, size) in [(PE_START, 0), (0, 0), (MDA_OFFSET, mda_size()), (0, 0)] {
        put_u64(&mut s, at, offset);
        put_u64(&mut s, at + 8, size);
        at += 16;
    }
    put_u32(&mut s, at, PV_EXT_VERSION);
    put_u32(&mut s, at + 4, PV_EXT_USED);
    // An empty bootloader-area list (its terminator is already zero).
    let crc = crc(&s[20..]);
    put_u32(&mut s, 16, crc);
    s
}

/// The metadata area header (one sector at `MDA_OFFSET`) describing `text` (without its NUL)
/// committed at the start of the circular buffer.
pub fn mda_header(text: &[u8]) -> [u8; SECTOR as usize] {
    let mut s = [0u8; SECTOR as usize];
    s[4..20].copy_from_slice(MDA_MAGIC);
    put_u32(&mut s, 20, MDA_VERSION);
    put_u64(&mut s, 24, MDA_OFFSET);
    put_u64(&mut s, 32, mda_size());
    // raw_locn[0]: the committed metadata. Its size and checksum include the trailing NUL.
    put_u64(&mut s, 40, MDA_TEXT_OFFSET);
    put_u64(&mut s, 48, text.len() as u64 + 1);
    put_u32(&mut s, 56, text_crc(text));
    // raw_locn[1] (precommitted) stays zero.
    let crc = crc(&s[4..]);
    put_u32(&mut s, 0, crc);
    s
}

/// CRC of the metadata text as stored: followed by one NUL byte.
fn text_crc(text: &[u8]) -> u32 {
    let mut with_nul = Vec::with_capacity(text.len() + 1);
    with_nul.extend_from_slice(text);
    with_nul.push(0);
    crc(&with_nul)
}

/// The metadata text does not fit the metadata area.
#[derive(Debug, thiserror::Error)]
#[error("LVM metadata of {len} bytes does not fit the {max}-byte metadata area")]
pub struct MetadataTooLarge {
    pub len: usize,
    pub max: u64,
}

/// Checks that the text fits the metadata area (with its NUL, after the header sector).
pub fn check_metadata_fits(text: &str) -> Result<(), MetadataTooLarge> {
    let max = mda_size() - MDA_TEXT_OFFSET;
    if text.len() as u64 + 1 > max {
        return Err(MetadataTooLarge { len: text.len(), max });
    }
    Ok(())
}

/// Writes the PV (label, metadata area header and text) into `file` with the PV starting at
/// byte `base` (0 on a whole disk, the md data offset on a RAID member). The rest of the
/// first MiB is left as it is: a fresh sparse file reads zeros there.
pub fn write_pv(file: &File, base: u64, pv: &PvSpec) -> io::Result<()> {
    check_metadata_fits(&pv.metadata).map_err(io::Error::other)?;
    let text = pv.metadata.as_bytes();
    file.write_all_at(&label_sector(pv), base + LABEL_OFFSET)?;
    file.write_all_at(&mda_header(text), base + MDA_OFFSET)?;
    let mut stored = Vec::with_capacity(text.len() + 1);
    stored.extend_from_slice(text);
    stored.push(0);
    file.write_all_at(&stored, base + MDA_OFFSET + MDA_TEXT_OFFSET)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_lvm2_test_vector() {
        assert_eq!(crc(b"123456789"), 0x4991_cf02);
        assert_eq!(crc(b""), 0xf597_a6cf);
    }

    #[test]
    fn uuids_are_32_alphanumerics_and_format_like_lvm2() {
        let s = Seed("t".into());
        let id = lvm_uuid(&s, "pv");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        assert_eq!(id, lvm_uuid(&s, "pv"));
        assert_ne!(id, lvm_uuid(&s, "vg"));
        assert_eq!(
            format_lvm_uuid("k2gnzbY2829Pj575fUf2fq0JAy7bomze"),
            "k2gnzb-Y282-9Pj5-75fU-f2fq-0JAy-7bomze"
        );
    }

    #[test]
    fn label_sector_has_lvm2_layout() {
        let pv = PvSpec {
            pv_uuid: "k2gnzbY2829Pj575fUf2fq0JAy7bomze".into(),
            device_size: 268_435_456,
            metadata: String::new(),
        };
        let s = label_sector(&pv);
        assert_eq!(&s[0..8], b"LABELONE");
        assert_eq!(&s[24..32], b"LVM2 001");
        assert_eq!(u64::from_le_bytes(s[64..72].try_into().unwrap()), 268_435_456);
        // data area at 584 - 512 = 72, metadata area at 616 - 512 = 104, extension at 136.
        assert_eq!(u64::from_le_bytes(s[72..80].try_into().unwrap()), 1 << 20);
        assert_eq!(u64::from_le_bytes(s[104..112].try_into().unwrap()), 4096);
        assert_eq!(u64::from_le_bytes(s[112..120].try_into().unwrap()), 1_044_480);
        assert_eq!(u32::from_le_bytes(s[136..140].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(s[140..144].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(s[16..20].try_into().unwrap()), crc(&s[20..]));
    }

    #[test]
    fn extents_after_pe_start() {
        assert_eq!(pe_count(256 << 20), 63);
        assert_eq!(pe_count(PE_START + EXTENT_SIZE - 1), 0);
        assert_eq!(pe_count(0), 0);
    }
}
