//! Recognising an LVM2 PV without lvm2 or device-mapper: the label in the first four
//! sectors, the PV header, and the newest committed text metadata of the first metadata
//! area, with every CRC checked. Enough for the appliance agent to tell what a disk holds.

use std::io::{self, Read, Seek, SeekFrom};

use super::{LABEL_ID, LABEL_TYPE, MDA_MAGIC, SECTOR, crc};

/// Which sectors lvm2 searches for a label.
const LABEL_SCAN_SECTORS: u64 = 4;
/// Larger metadata texts are refused rather than read: lvm2's default metadata area is 1 MiB
/// and an appliance VG's text is a few KiB, so this only ever stops a damaged size field from
/// making the agent read (and hold) gigabytes.
const MAX_METADATA_TEXT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LvmReadError {
    #[error("reading the LVM label: {0}")]
    Io(#[from] io::Error),
    #[error("LVM {what}: checksum {stored:#010x} on disk, {computed:#010x} computed")]
    Checksum {
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("LVM {0}")]
    Malformed(String),
}

/// What the PV label and its metadata area say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// Sector (0..4) the label was found in.
    pub label_sector: u64,
    /// 32 characters, no dashes.
    pub pv_uuid: String,
    /// Bytes, as recorded in the PV header.
    pub device_size: u64,
    /// Byte offset of the first extent.
    pub pe_start: u64,
    /// Byte offset and size of the first metadata area, if the PV has one.
    pub mda: Option<(u64, u64)>,
    /// The committed volume group metadata, if the PV belongs to a VG.
    pub vg: Option<VgSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgSummary {
    pub name: String,
    /// Dashed, as in the text: 6-4-4-4-4-4-6.
    pub id: String,
    pub seqno: u32,
    /// The whole metadata text (without the NUL).
    pub text: String,
}

/// Reads the PV label of a device (or image file, or md data area) starting at the reader's
/// position 0. `Ok(None)` when there is no LVM label; an error when there is one but it, its
/// PV header or its metadata is damaged.
pub fn read_pv_label<R: Read + Seek>(r: &mut R) -> Result<Option<PvLabel>, LvmReadError> {
    let head = read_up_to(r, 0, (LABEL_SCAN_SECTORS * SECTOR) as usize)?;
    let found = (0..LABEL_SCAN_SECTORS).find_map(|n| {
        let s = head.get((n * SECTOR) as usize..((n + 1) * SECTOR) as usize)?;
        (&s[0..8] == LABEL_ID && le64(s, 8) == n).then_some((n, s))
    });
    let Some((label_sector, s)) = found else {
        return Ok(None);
    };
    let stored = le32(s, 16);
    let computed = crc(&s[20..]);
    if stored != computed {
        return Err(LvmReadError::Checksum {
            what: "label header",
            stored,
            computed,
        });
    }
    if &s[24..32] != LABEL_TYPE {
        return Err(LvmReadError::Malformed(format!(
            "label type {:?} in sector {label_sector}, expected \"LVM2 001\"",
            String::from_utf8_lossy(&s[24..32])
        )));
    }
    let h = le32(s, 20) as usize;
    if h + 40 > s.len() {
        return Err(LvmReadError::Malformed(format!(
            "pv_header offset {h} outside the label sector ({label_sector})"
        )));
    }
    let pv_uuid = String::from_utf8_lossy(&s[h..h + 32]).into_owned();
    let device_size = le64(s, h + 32);
    let mut at = h + 40;
    let data_areas = locn_list(s, &mut at, label_sector)?;
    let meta_areas = locn_list(s, &mut at, label_sector)?;
    let pe_start = data_areas.first().map(|(o, _)| *o).ok_or_else(|| {
        LvmReadError::Malformed(format!("pv_header in sector {label_sector} lists no data area"))
    })?;
    let mda = meta_areas.first().copied();
    let vg = match mda {
        Some((offset, size)) => read_metadata(r, offset, size)?,
        None => None,
    };
    Ok(Some(PvLabel {
        label_sector,
        pv_uuid,
        device_size,
        pe_start,
        mda,
        vg,
    }))
}

/// A `{offset, size}` list ended by a zero offset.
fn locn_list(s: &[u8], at: &mut usize, sector: u64) -> Result<Vec<(u64, u64)>, LvmReadError> {
    let mut out = Vec::new();
    loop {
        if *at + 16 > s.len() {
            return Err(LvmReadError::Malformed(format!(
                "pv_header area list runs past the end of the label sector ({sector})"
            )));
        }
        let (offset, size) = (le64(s, *at), le64(s, *at + 8));
        *at += 16;
        if offset == 0 {
            return Ok(out);
        }
        out.push((offset, size));
    }
}

fn read_metadata<R: Read + Seek>(
    r: &mut R,
    mda_start: u64,
    mda_size: u64,
) -> Result<Option<VgSummary>, LvmReadError> {
    let h = read_up_to(r, mda_start, SECTOR as usize)?;
    if h.len() < SECTOR as usize {
        return Err(LvmReadError::Malformed(format!(
            "metadata area at {mda_start} lies past the end of the device"
        )));
    }
    let stored = le32(&h, 0);
    let computed = crc(&h[4..]);
    if stored != computed {
        return Err(LvmReadError::Checksum {
            what: "metadata area header",
            stored,
            computed,
        });
    }
    if &h[4..20] != MDA_MAGIC {
        return Err(LvmReadError::Malformed(format!(
            "metadata area at {mda_start}: bad magic"
        )));
    }
    let (offset, size, checksum) = (le64(&h, 40), le64(&h, 48), le32(&h, 56));
    if offset == 0 || size == 0 {
        return Ok(None);
    }
    if offset < SECTOR || offset >= mda_size || size > mda_size - SECTOR {
        return Err(LvmReadError::Malformed(format!(
            "metadata text at {offset}+{size} outside the {mda_size}-byte metadata area"
        )));
    }
    if size > MAX_METADATA_TEXT {
        return Err(LvmReadError::Malformed(format!(
            "metadata text at {offset} in the metadata area at {mda_start} is {size} bytes, \
             more than the {MAX_METADATA_TEXT} this reader accepts"
        )));
    }
    let Some(text_start) = mda_start.checked_add(offset) else {
        return Err(LvmReadError::Malformed(format!(
            "metadata text at {offset} in the metadata area at {mda_start} lies past 2^64 bytes"
        )));
    };
    // The area is a ring after its header sector: text may wrap to its start (which lies
    // before `text_start`, so cannot overflow).
    let first = size.min(mda_size - offset);
    let mut text = read_up_to(r, text_start, first as usize)?;
    if first < size {
        text.extend(read_up_to(r, mda_start + SECTOR, (size - first) as usize)?);
    }
    if text.len() as u64 != size {
        return Err(LvmReadError::Malformed(format!(
            "metadata text at byte {text_start} ({size} bytes) cut short by the end of the device"
        )));
    }
    let computed = crc(&text);
    if checksum != computed {
        return Err(LvmReadError::Checksum {
            what: "metadata text",
            stored: checksum,
            computed,
        });
    }
    if text.last() == Some(&0) {
        text.pop();
    }
    let text = String::from_utf8(text).map_err(|e| {
        LvmReadError::Malformed(format!(
            "metadata text at byte {text_start} is not UTF-8 (at its byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    summarise(text, text_start).map(Some)
}

/// The VG name, id and seqno from the top of the text (found at byte `at` of the device).
fn summarise(text: String, at: u64) -> Result<VgSummary, LvmReadError> {
    let mut lines = text.lines().map(str::trim);
    let name = lines
        .next()
        .and_then(|l| l.strip_suffix('{'))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            LvmReadError::Malformed(format!(
                "metadata text at byte {at}: expected `<vgname> {{` first"
            ))
        })?;
    let mut id = None;
    let mut seqno = None;
    for line in lines.take_while(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("id = ") {
            id = Some(v.trim_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("seqno = ") {
            seqno = v.parse().ok();
        }
    }
    let (Some(id), Some(seqno)) = (id, seqno) else {
        return Err(LvmReadError::Malformed(format!(
            "metadata text of VG {:?} at byte {at}: expected `id` and `seqno`",
            name.chars().take(64).collect::<String>()
        )));
    };
    Ok(VgSummary {
        name,
        id,
        seqno,
        text,
    })
}

/// Reads up to `len` bytes at `offset`; fewer at the end of the device. The buffer grows with
/// what is read, not with `len`: a length from a damaged header costs only the bytes there are.
fn read_up_to<R: Read + Seek>(r: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    r.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::super::{LvText, MDA_OFFSET, PE_START, PvSpec, VgText, label_sector, mda_header};
    use super::*;

    fn image() -> Vec<u8> {
        let text = VgText {
            name: "permanent".into(),
            id: "CN000cs52Nu4hiwFDG2iYTxJK8moc7rM".into(),
            seqno: 1,
            pv_id: "k2gnzbY2829Pj575fUf2fq0JAy7bomze".into(),
            pv_device_size: 64 << 20,
            pe_count: 15,
            lv: Some(LvText {
                name: "data".into(),
                id: "6Q11uZdqBwppPFyBFKnI0n0c7qjQ32p6".into(),
                extent_count: 12,
            }),
            creation_host: "ecs-build".into(),
            creation_time: 1,
            tags: Vec::new(),
        }
        .render();
        let pv = PvSpec {
            pv_uuid: "k2gnzbY2829Pj575fUf2fq0JAy7bomze".into(),
            device_size: 64 << 20,
            metadata: text.clone(),
        };
        let mut img = vec![0u8; PE_START as usize];
        img[512..1024].copy_from_slice(&label_sector(&pv));
        img[4096..4608].copy_from_slice(&mda_header(text.as_bytes()));
        img[4608..4608 + text.len()].copy_from_slice(text.as_bytes());
        img
    }

    #[test]
    fn reads_back_what_we_write() {
        let label = read_pv_label(&mut Cursor::new(image())).unwrap().unwrap();
        assert_eq!(label.label_sector, 1);
        assert_eq!(label.pv_uuid, "k2gnzbY2829Pj575fUf2fq0JAy7bomze");
        assert_eq!(label.device_size, 64 << 20);
        assert_eq!(label.pe_start, PE_START);
        assert_eq!(label.mda, Some((MDA_OFFSET, PE_START - MDA_OFFSET)));
        let vg = label.vg.unwrap();
        assert_eq!(vg.name, "permanent");
        assert_eq!(vg.id, "CN000c-s52N-u4hi-wFDG-2iYT-xJK8-moc7rM");
        assert_eq!(vg.seqno, 1);
        assert!(vg.text.contains("extent_count = 12"));
    }

    #[test]
    fn no_label_is_none_and_damage_is_an_error() {
        assert_eq!(read_pv_label(&mut Cursor::new(vec![0u8; 8192])).unwrap(), None);
        assert_eq!(read_pv_label(&mut Cursor::new(Vec::new())).unwrap(), None);

        let mut img = image();
        img[600] ^= 1;
        let err = read_pv_label(&mut Cursor::new(img)).unwrap_err();
        assert!(err.to_string().starts_with("LVM label header: checksum"), "{err}");

        let mut img = image();
        img[4700] ^= 1;
        let err = read_pv_label(&mut Cursor::new(img)).unwrap_err();
        assert!(
            err.to_string().starts_with("LVM metadata text: checksum"),
            "{err}"
        );
    }
}
