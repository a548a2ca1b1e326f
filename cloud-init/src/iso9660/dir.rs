//! Directory records (ECMA-119 9.1), their packing into sectors, and the names each tree uses:
//! ISO 9660 level 1 (`USER_DAT.;1`) in the primary tree, UCS-2 big-endian in the Joliet tree.

use super::{SECTOR, both_u16, both_u32};

/// Directory record flag: the entry is a directory.
const FLAG_DIRECTORY: u8 = 0x02;

/// One directory record before serialisation.
pub(crate) struct Record<'a> {
    /// File identifier bytes: `[0]` for `.`, `[1]` for `..`, else the tree's name form.
    pub id: &'a [u8],
    pub lba: u32,
    pub size: u32,
    pub directory: bool,
    pub date: [u8; 7],
    /// System Use area (Rock Ridge), empty in the Joliet tree.
    pub system_use: &'a [u8],
}

impl Record<'_> {
    /// The serialised length (see `record_len`).
    pub fn len(&self) -> usize {
        record_len(self.id.len(), self.system_use.len())
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let len = self.len();
        debug_assert!(len <= 255, "directory record of {len} bytes");
        let start = out.len();
        out.push(len as u8);
        out.push(0); // extended attribute record length
        out.extend_from_slice(&both_u32(self.lba));
        out.extend_from_slice(&both_u32(self.size));
        out.extend_from_slice(&self.date);
        out.push(if self.directory { FLAG_DIRECTORY } else { 0 });
        out.push(0); // file unit size
        out.push(0); // interleave gap
        out.extend_from_slice(&both_u16(1)); // volume sequence number
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id);
        if self.id.len().is_multiple_of(2) {
            out.push(0);
        }
        out.extend_from_slice(self.system_use);
        out.resize(start + len, 0);
    }
}

/// The serialised length of a record: 33 fixed bytes, the identifier, a pad byte so that the
/// identifier ends on an even offset, the System Use area, and a pad to an even total.
pub(crate) fn record_len(id_len: usize, system_use_len: usize) -> usize {
    let total = 33 + id_len + usize::from(id_len.is_multiple_of(2)) + system_use_len;
    total + total % 2
}

/// Bytes a directory occupies when its records have these lengths: a record never straddles
/// a sector boundary (ECMA-119 6.8.1.1), and the total is whole sectors.
pub(crate) fn directory_size(lengths: impl IntoIterator<Item = usize>) -> u32 {
    let mut at = 0usize;
    for len in lengths {
        if at % SECTOR + len > SECTOR {
            at = at.next_multiple_of(SECTOR);
        }
        at += len;
    }
    at.next_multiple_of(SECTOR).max(SECTOR) as u32
}

/// Serialises records (already in directory order) with the same packing as `directory_size`.
pub(crate) fn directory_bytes(records: &[Record<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        if out.len() % SECTOR + record.len() > SECTOR {
            out.resize(out.len().next_multiple_of(SECTOR), 0);
        }
        record.write(&mut out);
    }
    out.resize(out.len().next_multiple_of(SECTOR).max(SECTOR), 0);
    out
}

/// The level 1 identifier for `name`: d-characters only (A-Z, 0-9, _), an 8-character base,
/// a 3-character extension split at the last dot, and version `;1`, as genisoimage writes
/// them without `-l`. `user-data` becomes `USER_DAT.;1`. Rock Ridge NM carries the real name.
pub(crate) fn level1_name(name: &str) -> String {
    let (base, ext) = match name.rsplit_once('.') {
        Some((b, e)) if !b.is_empty() => (b, e),
        _ => (name, ""),
    };
    let d_chars = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| match c.to_ascii_uppercase() {
                u @ ('A'..='Z' | '0'..='9') => u,
                _ => '_',
            })
            .take(max)
            .collect()
    };
    format!("{}.{};1", d_chars(base, 8), d_chars(ext, 3))
}

/// The Joliet identifier for `name`: UCS-2 big-endian, no version suffix (as genisoimage).
/// Characters outside the Basic Multilingual Plane or forbidden by Joliet (`* / : ; ? \` and
/// controls) are replaced by `_`; names are cut at Joliet's 64 characters.
pub(crate) fn joliet_name(name: &str) -> Vec<u8> {
    name.chars()
        .map(|c| match c {
            '*' | '/' | ':' | ';' | '?' | '\\' => '_',
            c if c.is_control() || u32::from(c) > 0xFFFF => '_',
            c => c,
        })
        .take(64)
        .flat_map(|c| (u32::from(c) as u16).to_be_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level1_names_match_genisoimage() {
        assert_eq!(level1_name("user-data"), "USER_DAT.;1");
        assert_eq!(level1_name("meta-data"), "META_DAT.;1");
        assert_eq!(level1_name("network-config"), "NETWORK_.;1");
        assert_eq!(level1_name("vendor-data"), "VENDOR_D.;1");
        assert_eq!(level1_name("env.yml"), "ENV.YML;1");
        assert_eq!(level1_name(".hidden"), "_HIDDEN.;1");
    }

    #[test]
    fn joliet_names_are_ucs2_big_endian() {
        assert_eq!(joliet_name("a-b"), [0, b'a', 0, b'-', 0, b'b']);
        assert_eq!(joliet_name("x;1"), [0, b'x', 0, b'_', 0, b'1']);
        assert_eq!(joliet_name("ä"), [0, 0xE4]);
        assert_eq!(joliet_name(&"n".repeat(100)).len(), 128);
    }

    #[test]
    fn records_do_not_straddle_sectors() {
        // 20 records of 100 bytes: 20 fit in a sector (2000), the 21st moves to the next.
        assert_eq!(directory_size([100; 20]), 2048);
        assert_eq!(directory_size([100; 21]), 4096);
        assert_eq!(directory_size([]), 2048);
        let su = [0u8; 66];
        let rec = Record {
            id: b"ABCDEFGH.;1",
            lba: 7,
            size: 9,
            directory: false,
            date: [0; 7],
            system_use: &su,
        };
        assert_eq!(rec.len(), 33 + 11 + 66);
        let recs: Vec<Record<'_>> = (0..19)
            .map(|_| Record {
                id: b"ABCDEFGH.;1",
                lba: 7,
                size: 9,
                directory: false,
                date: [0; 7],
                system_use: &su,
            })
            .collect();
        let bytes = directory_bytes(&recs);
        assert_eq!(bytes.len() as u32, directory_size(recs.iter().map(Record::len)));
        // 18 records of 110 bytes fill 1980 bytes; the 19th starts the second sector.
        assert_eq!(bytes[1980], 0);
        assert_eq!(bytes[2048] as usize, rec.len());
    }
}
