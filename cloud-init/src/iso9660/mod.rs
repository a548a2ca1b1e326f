//! An ISO 9660 writer for one flat root directory of small files, with a Joliet tree and Rock
//! Ridge on the primary tree. This is the whole format the NoCloud seed needs, written so that
//! the same files and timestamp always give the same bytes.
//!
//! Layout, in 2048-byte sectors:
//!
//! ```text
//! 0-15   system area (zero)
//! 16     primary volume descriptor      17  Joliet supplementary descriptor (UCS-2 level 3)
//! 18     descriptor set terminator      19-22  L and M path tables: primary, then Joliet
//! 23..   primary root directory, Joliet root directory, Rock Ridge continuation area (ER)
//! then   one extent per non-empty file, shared by both trees
//! ```

mod dir;
pub mod read;
mod rockridge;

use crate::SeedError;
use crate::time::{UNSET_VOLUME_DATE, Utc};
use dir::Record;
use rockridge::Posix;

pub(crate) const SECTOR: usize = 2048;

const PVD_LBA: u32 = 16;
const SVD_LBA: u32 = 17;
const TERMINATOR_LBA: u32 = 18;
const PRIMARY_L_PATH_LBA: u32 = 19;
const PRIMARY_M_PATH_LBA: u32 = 20;
const JOLIET_L_PATH_LBA: u32 = 21;
const JOLIET_M_PATH_LBA: u32 = 22;
const FIRST_DIRECTORY_LBA: u32 = 23;

/// A path table holding only the root: one 10-byte entry.
const PATH_TABLE_SIZE: u32 = 10;

/// Root directory mode and link count (`.` and `..`).
const ROOT_POSIX: Posix = Posix {
    mode: 0o040555,
    nlink: 2,
};

/// A file in the image's root directory.
pub(crate) struct IsoFile<'a> {
    pub name: &'static str,
    pub data: &'a [u8],
    /// Permission bits for Rock Ridge (the regular-file type bits are added).
    pub mode: u32,
}

/// Both-endian 32-bit field (ECMA-119 7.3.3).
pub(crate) fn both_u32(v: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&v.to_le_bytes());
    out[4..].copy_from_slice(&v.to_be_bytes());
    out
}

/// Both-endian 16-bit field (ECMA-119 7.2.3).
pub(crate) fn both_u16(v: u16) -> [u8; 4] {
    let [a, b] = v.to_le_bytes();
    [a, b, b, a]
}

struct Placed<'a> {
    file: &'a IsoFile<'a>,
    primary_id: String,
    joliet_id: Vec<u8>,
    lba: u32,
    size: u32,
    system_use: Vec<u8>,
}

/// Writes the image. `volume_id` goes, unvalidated and as given (genisoimage writes `cidata`
/// lowercase too), into both volume descriptors.
pub(crate) fn write(files: &[IsoFile<'_>], volume_id: &str, timestamp: u64) -> Result<Vec<u8>, SeedError> {
    let utc = Utc::from_timestamp(timestamp)?;
    let date = utc.record_date();
    let mut placed = Vec::with_capacity(files.len());
    for file in files {
        let size = u32::try_from(file.data.len()).map_err(|_| SeedError::TooLarge {
            name: file.name,
            size: file.data.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        let posix = Posix {
            mode: 0o100000 | (file.mode & 0o7777),
            nlink: 1,
        };
        placed.push(Placed {
            file,
            primary_id: dir::level1_name(file.name),
            joliet_id: dir::joliet_name(file.name),
            lba: 0,
            size,
            system_use: rockridge::file_entry(file.name, posix, date),
        });
    }
    placed.sort_by(|a, b| a.primary_id.cmp(&b.primary_id));
    if let Some(w) = placed.windows(2).find(|w| w[0].primary_id == w[1].primary_id) {
        return Err(SeedError::NameClash {
            first: w[0].file.name,
            second: w[1].file.name,
            iso_name: w[0].primary_id.clone(),
        });
    }

    // Sizes first (record lengths do not depend on where things land), then addresses.
    let dot_su = rockridge::root_dot(ROOT_POSIX, date, 0);
    let dotdot_su = rockridge::dir_entry(ROOT_POSIX, date);
    let primary_size = dir::directory_size(
        [
            dir::record_len(1, dot_su.len()),
            dir::record_len(1, dotdot_su.len()),
        ]
        .into_iter()
        .chain(
            placed
                .iter()
                .map(|p| dir::record_len(p.primary_id.len(), p.system_use.len())),
        ),
    );
    let joliet_size = dir::directory_size(
        [dir::record_len(1, 0), dir::record_len(1, 0)]
            .into_iter()
            .chain(placed.iter().map(|p| dir::record_len(p.joliet_id.len(), 0))),
    );
    let primary_lba = FIRST_DIRECTORY_LBA;
    let joliet_lba = primary_lba + primary_size / SECTOR as u32;
    let continuation_lba = joliet_lba + joliet_size / SECTOR as u32;
    let mut next = continuation_lba + 1;
    for p in &mut placed {
        // An empty file has no extent; it points at sector 0, which no reader touches.
        if p.size > 0 {
            p.lba = next;
            let sectors = p.size.div_ceil(SECTOR as u32);
            next = next.checked_add(sectors).ok_or(SeedError::TooLarge {
                name: p.file.name,
                size: u64::from(p.size),
                max: u64::from(u32::MAX),
            })?;
        }
    }
    let total_sectors = next;

    let mut image = vec![0u8; total_sectors as usize * SECTOR];
    let dot_su = rockridge::root_dot(ROOT_POSIX, date, continuation_lba);
    let root = |lba: u32, size: u32, id: &'static [u8]| Record {
        id,
        lba,
        size,
        directory: true,
        date,
        system_use: &[],
    };

    // Primary tree.
    let mut records = vec![
        Record {
            system_use: &dot_su,
            ..root(primary_lba, primary_size, &[0])
        },
        Record {
            system_use: &dotdot_su,
            ..root(primary_lba, primary_size, &[1])
        },
    ];
    records.extend(placed.iter().map(|p| Record {
        id: p.primary_id.as_bytes(),
        lba: p.lba,
        size: p.size,
        directory: false,
        date,
        system_use: &p.system_use,
    }));
    put(&mut image, primary_lba, &dir::directory_bytes(&records));

    // Joliet tree, ordered by its own names.
    let mut joliet_order: Vec<&Placed<'_>> = placed.iter().collect();
    joliet_order.sort_by(|a, b| a.joliet_id.cmp(&b.joliet_id));
    let mut records = vec![
        root(joliet_lba, joliet_size, &[0]),
        root(joliet_lba, joliet_size, &[1]),
    ];
    records.extend(joliet_order.iter().map(|p| Record {
        id: &p.joliet_id,
        lba: p.lba,
        size: p.size,
        directory: false,
        date,
        system_use: &[],
    }));
    put(&mut image, joliet_lba, &dir::directory_bytes(&records));

    put(&mut image, continuation_lba, &rockridge::er());
    for p in &placed {
        put(&mut image, p.lba, p.file.data);
    }

    // Path tables and volume descriptors.
    put(&mut image, PRIMARY_L_PATH_LBA, &path_table(primary_lba, false));
    put(&mut image, PRIMARY_M_PATH_LBA, &path_table(primary_lba, true));
    put(&mut image, JOLIET_L_PATH_LBA, &path_table(joliet_lba, false));
    put(&mut image, JOLIET_M_PATH_LBA, &path_table(joliet_lba, true));
    let volume = Volume {
        volume_id,
        total_sectors,
        dates: utc.volume_date(),
    };
    let primary_root = root(primary_lba, primary_size, &[0]);
    put(&mut image, PVD_LBA, &volume.descriptor(&primary_root, false));
    let joliet_root = root(joliet_lba, joliet_size, &[0]);
    put(&mut image, SVD_LBA, &volume.descriptor(&joliet_root, true));
    let mut terminator = vec![255u8];
    terminator.extend_from_slice(b"CD001\x01");
    put(&mut image, TERMINATOR_LBA, &terminator);
    Ok(image)
}

fn put(image: &mut [u8], lba: u32, bytes: &[u8]) {
    let at = lba as usize * SECTOR;
    image[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A path table with only the root directory (ECMA-119 9.4), little- or big-endian.
fn path_table(root_lba: u32, big_endian: bool) -> Vec<u8> {
    let mut t = vec![1, 0]; // identifier length, extended attribute length
    if big_endian {
        t.extend_from_slice(&root_lba.to_be_bytes());
        t.extend_from_slice(&1u16.to_be_bytes());
    } else {
        t.extend_from_slice(&root_lba.to_le_bytes());
        t.extend_from_slice(&1u16.to_le_bytes());
    }
    t.extend_from_slice(&[0, 0]); // root identifier, pad
    debug_assert_eq!(t.len() as u32, PATH_TABLE_SIZE);
    t
}

struct Volume<'a> {
    volume_id: &'a str,
    total_sectors: u32,
    dates: [u8; 17],
}

impl Volume<'_> {
    /// The primary (ECMA-119 8.4) or Joliet supplementary (8.5, escape `%/E`) descriptor.
    fn descriptor(&self, root: &Record<'_>, joliet: bool) -> Vec<u8> {
        let text = |s: &str, len: usize| {
            if joliet {
                ucs2_field(s, len)
            } else {
                ascii_field(s, len)
            }
        };
        let mut d = Vec::with_capacity(SECTOR);
        d.push(if joliet { 2 } else { 1 });
        d.extend_from_slice(b"CD001\x01\0");
        d.extend(text("", 32)); // system identifier
        d.extend(text(self.volume_id, 32));
        d.extend_from_slice(&[0; 8]);
        d.extend_from_slice(&both_u32(self.total_sectors));
        let mut escapes = [0u8; 32];
        if joliet {
            escapes[..3].copy_from_slice(b"%/E");
        }
        d.extend_from_slice(&escapes);
        d.extend_from_slice(&both_u16(1)); // volume set size
        d.extend_from_slice(&both_u16(1)); // volume sequence number
        d.extend_from_slice(&both_u16(SECTOR as u16));
        d.extend_from_slice(&both_u32(PATH_TABLE_SIZE));
        let (l, m) = if joliet {
            (JOLIET_L_PATH_LBA, JOLIET_M_PATH_LBA)
        } else {
            (PRIMARY_L_PATH_LBA, PRIMARY_M_PATH_LBA)
        };
        d.extend_from_slice(&l.to_le_bytes());
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&m.to_be_bytes());
        d.extend_from_slice(&[0; 4]);
        root.write(&mut d);
        for len in [128, 128, 128, 128, 37, 37, 37] {
            // volume set, publisher, preparer, application; copyright, abstract, bibliography
            d.extend(text("", len));
        }
        d.extend_from_slice(&self.dates); // creation
        d.extend_from_slice(&self.dates); // modification
        d.extend_from_slice(&UNSET_VOLUME_DATE); // expiration
        d.extend_from_slice(&UNSET_VOLUME_DATE); // effective
        d.push(1); // file structure version
        debug_assert_eq!(d.len(), 882);
        d.resize(SECTOR, 0);
        d
    }
}

fn ascii_field(s: &str, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = s.bytes().take(len).collect();
    f.resize(len, b' ');
    f
}

fn ucs2_field(s: &str, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = s
        .encode_utf16()
        .take(len / 2)
        .flat_map(u16::to_be_bytes)
        .collect();
    while f.len() + 2 <= len {
        f.extend_from_slice(&[0, b' ']);
    }
    f.resize(len, 0);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_endian_fields() {
        assert_eq!(both_u32(0x0102_0304), [4, 3, 2, 1, 1, 2, 3, 4]);
        assert_eq!(both_u16(0x0800), [0x00, 0x08, 0x08, 0x00]);
    }

    #[test]
    fn text_fields_pad_to_their_width() {
        assert_eq!(ascii_field("cidata", 8), b"cidata  ");
        assert_eq!(ucs2_field("ci", 7), [0, b'c', 0, b'i', 0, b' ', 0]);
    }

    #[test]
    fn same_name_twice_is_refused() {
        let files = [
            IsoFile {
                name: "user-data",
                data: b"a",
                mode: 0o444,
            },
            IsoFile {
                name: "user-dat",
                data: b"b",
                mode: 0o444,
            },
        ];
        let err = write(&files, "cidata", 0).unwrap_err();
        assert!(err.to_string().contains("USER_DAT.;1"), "{err}");
    }
}
