//! Reading one file from the root directory of an ISO 9660 image or device without mounting
//! it: what the appliance agent needs to take `user-data` from the `cidata` device.
//!
//! Names are matched as Linux shows them: the Rock Ridge NM name when present, else the Joliet
//! name; a bare ISO 9660 identifier (no `;1`, no trailing dot) matches the name in d-characters
//! (`USER_DATA`, as xorriso writes it) or in its level 1 form (`USER_DAT`, as genisoimage). That covers our own images and those of
//! genisoimage/cloud-localds and xorriso. Only the root
//! directory is searched; NoCloud puts its files nowhere else.

use std::io::{Read, Seek, SeekFrom};

use super::SECTOR;
use crate::SeedError;

/// Larger files are refused rather than read: no seed file comes near this, and a damaged
/// record must not make the agent allocate gigabytes.
const MAX_FILE: u64 = 64 << 20;
/// Root directories of seeds are one sector; this bounds a damaged size field.
const MAX_DIRECTORY: u32 = 1 << 20;
/// How many descriptors after sector 16 are examined for the terminator.
const MAX_DESCRIPTORS: u64 = 32;

/// The contents of the file `name` in the image's root directory, or `None` if there is none.
pub fn read_iso_file<R: Read + Seek>(dev: &mut R, name: &str) -> Result<Option<Vec<u8>>, SeedError> {
    let (primary, joliet) = root_records(dev)?;
    let primary_dir = read_extent(
        dev,
        primary.0,
        primary.1.min(MAX_DIRECTORY),
        "the primary root directory",
    )?;
    let mut found = find(&primary_dir, name, Tree::Primary)?;
    if found.is_none()
        && let Some(joliet) = joliet
    {
        let dir = read_extent(
            dev,
            joliet.0,
            joliet.1.min(MAX_DIRECTORY),
            "the Joliet root directory",
        )?;
        found = find(&dir, name, Tree::Joliet)?;
    }
    let Some((lba, size)) = found else {
        return Ok(None);
    };
    if u64::from(size) > MAX_FILE {
        return Err(SeedError::Malformed(format!(
            "{name} is {size} bytes, more than the {MAX_FILE} a seed file may have"
        )));
    }
    read_extent(dev, lba, size, name).map(Some)
}

/// (extent, size) of the primary root and, if there is a Joliet descriptor, the Joliet root.
type Extent = (u32, u32);

fn root_records<R: Read + Seek>(dev: &mut R) -> Result<(Extent, Option<Extent>), SeedError> {
    let mut primary = None;
    let mut joliet = None;
    for lba in 16..16 + MAX_DESCRIPTORS {
        let mut d = vec![0u8; SECTOR];
        dev.seek(SeekFrom::Start(lba * SECTOR as u64))
            .and_then(|_| dev.read_exact(&mut d))
            .map_err(|source| SeedError::Io {
                context: format!("reading volume descriptor at sector {lba}"),
                source,
            })?;
        if &d[1..6] != b"CD001" {
            break;
        }
        let root = (le32(&d[156 + 2..]), le32(&d[156 + 10..]));
        match d[0] {
            1 if primary.is_none() => primary = Some(root),
            2 if &d[88..90] == b"%/" && matches!(d[90], b'@' | b'C' | b'E') => joliet = Some(root),
            255 => break,
            _ => {}
        }
    }
    match primary {
        Some(p) => Ok((p, joliet)),
        None => Err(SeedError::Malformed(
            "no ISO 9660 primary volume descriptor (\"CD001\" at sector 16)".into(),
        )),
    }
}

fn read_extent<R: Read + Seek>(dev: &mut R, lba: u32, size: u32, what: &str) -> Result<Vec<u8>, SeedError> {
    let io = |source| SeedError::Io {
        context: format!("reading {what} at sector {lba}"),
        source,
    };
    dev.seek(SeekFrom::Start(u64::from(lba) * SECTOR as u64))
        .map_err(io)?;
    let mut out = Vec::new();
    dev.take(u64::from(size)).read_to_end(&mut out).map_err(io)?;
    if out.len() != size as usize {
        return Err(SeedError::Malformed(format!(
            "{what} (sector {lba}, {size} bytes) extends past the end of the image"
        )));
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Tree {
    Primary,
    Joliet,
}

/// Walks a directory's records; returns the extent of the first non-directory named `name`.
fn find(dir: &[u8], name: &str, tree: Tree) -> Result<Option<Extent>, SeedError> {
    let mut at = 0;
    // SUSP bytes to skip at the start of each System Use area, from the root's SP entry.
    let mut susp_skip = 0;
    while at < dir.len() {
        let len = dir[at] as usize;
        if len == 0 {
            at = (at / SECTOR + 1) * SECTOR;
            continue;
        }
        let rec = dir.get(at..at + len).filter(|r| r.len() >= 34).ok_or_else(|| {
            SeedError::Malformed(format!(
                "directory record at byte {at} is cut short ({len} bytes)"
            ))
        })?;
        at += len;
        let id_len = rec[32] as usize;
        let Some(id) = rec.get(33..33 + id_len) else {
            return Err(SeedError::Malformed(format!(
                "directory record at byte {} has a {id_len}-byte name in {len} bytes",
                at - len
            )));
        };
        let su_start = 33 + id_len + usize::from(id_len.is_multiple_of(2));
        let system_use = rec.get(su_start..).unwrap_or(&[]);
        if id == [0] {
            if tree == Tree::Primary && system_use.len() >= 7 && &system_use[..2] == b"SP" {
                susp_skip = system_use[6] as usize;
            }
            continue;
        }
        if id == [1] || rec[25] & 0x02 != 0 {
            continue;
        }
        // Rock Ridge and Joliet names are exact; bare ISO 9660 identifiers are upper-cased.
        let (shown, exact) = match tree {
            Tree::Primary => match rock_ridge_name(system_use.get(susp_skip..).unwrap_or(&[])) {
                Some(real) => (real, true),
                None => (plain_name(&String::from_utf8_lossy(id)), false),
            },
            Tree::Joliet => {
                let units: Vec<u16> = id
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                (plain_name(&String::from_utf16_lossy(&units)), true)
            }
        };
        let matches = !shown.is_empty()
            && if exact {
                shown == name
            } else {
                shown == d_name(name) || shown == plain_name(&super::dir::level1_name(name))
            };
        if matches {
            return Ok(Some((le32(&rec[2..]), le32(&rec[10..]))));
        }
    }
    Ok(None)
}

/// The name from the NM entries of a System Use area (concatenated while "continue" is set).
fn rock_ridge_name(mut su: &[u8]) -> Option<String> {
    let mut name: Option<Vec<u8>> = None;
    while su.len() >= 4 {
        let len = su[2] as usize;
        if len < 4 || len > su.len() {
            break;
        }
        if &su[..2] == b"NM" && len >= 5 {
            name.get_or_insert_with(Vec::new).extend_from_slice(&su[5..len]);
            if su[4] & 0x01 == 0 {
                break;
            }
        }
        su = &su[len..];
    }
    name.map(|n| String::from_utf8_lossy(&n).into_owned())
}

/// An identifier as Linux shows it without Rock Ridge: no `;version`, no trailing dot.
fn plain_name(id: &str) -> String {
    let base = id.split_once(';').map_or(id, |(b, _)| b);
    base.strip_suffix('.').unwrap_or(base).to_string()
}

/// `name` in ISO 9660 d-characters, uncut: what relaxed writers (xorriso) make of it.
fn d_name(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_uppercase() {
            u @ ('A'..='Z' | '0'..='9' | '.') => u,
            _ => '_',
        })
        .collect()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_drop_version_and_dot() {
        assert_eq!(plain_name("USER_DAT.;1"), "USER_DAT");
        assert_eq!(plain_name("ENV.YML;1"), "ENV.YML");
        assert_eq!(plain_name("user-data"), "user-data");
    }

    #[test]
    fn nm_entries_concatenate() {
        let su = b"RR\x05\x01\x89NM\x08\x01\x01useNM\x0b\x01\x00r-data".to_vec();
        assert_eq!(rock_ridge_name(&su).as_deref(), Some("user-data"));
        assert_eq!(rock_ridge_name(b"PX\x02"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut zeros = std::io::Cursor::new(vec![0u8; 40 * SECTOR]);
        let err = read_iso_file(&mut zeros, "user-data").unwrap_err();
        assert!(err.to_string().contains("CD001"), "{err}");
        let mut short = std::io::Cursor::new(vec![0u8; 100]);
        assert!(read_iso_file(&mut short, "user-data").is_err());
    }

    /// Every single-byte corruption of the descriptors and directories of a real seed gives an
    /// answer or an error (a panic fails the test), and most leave user-data readable.
    #[test]
    fn corrupted_images_never_panic() {
        let files = crate::SeedFiles {
            user_data: b"#cloud-config\n".to_vec(),
            meta_data: crate::meta_data("i", "h").into_bytes(),
            network_config: Some(Vec::new()),
        };
        let image = crate::iso_image(&files, 0).unwrap();
        let mut intact = 0;
        for at in 16 * SECTOR..26 * SECTOR {
            for value in [0x00, 0xFF, 0x21] {
                let mut bad = image.clone();
                bad[at] = value;
                let got = read_iso_file(&mut std::io::Cursor::new(bad), "user-data");
                intact += usize::from(matches!(got, Ok(Some(ref d)) if *d == files.user_data));
            }
        }
        assert!(
            intact > 10 * SECTOR,
            "only {intact} corruptions left user-data readable"
        );
    }
}
