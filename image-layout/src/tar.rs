//! The tar format as far as filling ext4 needs it: a writer for ustar headers (with pax
//! records for long names and large values) and a scanner that indexes an existing archive's
//! entries so they can be copied byte for byte (pax, GNU long names and all) or left out.
//! `mke2fs -d -` reads the result through libarchive.

use std::io::{self, Read, Seek, SeekFrom, Write};

pub const BLOCK: u64 = 512;

/// The kind of one entry, with what its header needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { size: u64 },
    Dir,
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One entry to write: `path` relative to the root, without a leading `./` or `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

fn octal(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    // The length counts itself: find the fixed point.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len = len.to_string().len() + body.len();
    }
    out.extend_from_slice(format!("{len}{body}").as_bytes());
}

fn raw_header(name: &[u8], link: &[u8], h: &Header, typeflag: u8, size: u64, pax: &mut Vec<u8>) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut b[100..108], u64::from(h.mode & 0o7777));
    if !octal(&mut b[108..116], u64::from(h.uid)) {
        pax_record(pax, "uid", &h.uid.to_string());
        octal(&mut b[108..116], 0);
    }
    if !octal(&mut b[116..124], u64::from(h.gid)) {
        pax_record(pax, "gid", &h.gid.to_string());
        octal(&mut b[116..124], 0);
    }
    if !octal(&mut b[124..136], size) {
        pax_record(pax, "size", &size.to_string());
        octal(&mut b[124..136], 0);
    }
    octal(&mut b[136..148], h.mtime);
    b[156] = typeflag;
    b[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    if let Kind::Char(ma, mi) | Kind::Block(ma, mi) = h.kind {
        octal(&mut b[329..337], u64::from(ma));
        octal(&mut b[337..345], u64::from(mi));
    }
    b
}

fn checksum(b: &mut [u8; 512]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
}

/// Writes the header block(s) for `h`; for a file the caller then writes exactly `size`
/// bytes and calls `pad`.
pub fn write_header<W: Write>(w: &mut W, h: &Header) -> io::Result<()> {
    let (typeflag, size, link) = match &h.kind {
        Kind::File { size } => (b'0', *size, ""),
        Kind::Dir => (b'5', 0, ""),
        Kind::Symlink(t) => (b'2', 0, t.as_str()),
        Kind::Hardlink(t) => (b'1', 0, t.as_str()),
        Kind::Char(..) => (b'3', 0, ""),
        Kind::Block(..) => (b'4', 0, ""),
        Kind::Fifo => (b'6', 0, ""),
    };
    let name = if h.kind == Kind::Dir {
        format!("./{}/", h.path)
    } else {
        format!("./{}", h.path)
    };
    let name = if h.path.is_empty() { "./".to_string() } else { name };
    let link = match &h.kind {
        Kind::Hardlink(t) => format!("./{t}"),
        _ => link.to_string(),
    };
    let mut pax = Vec::new();
    if name.len() > 100 {
        pax_record(&mut pax, "path", &name);
    }
    if link.len() > 100 {
        pax_record(&mut pax, "linkpath", &link);
    }
    let mut block = raw_header(name.as_bytes(), link.as_bytes(), h, typeflag, size, &mut pax);
    if !pax.is_empty() {
        let mut ph = raw_header(
            b"./PaxHeaders/entry",
            b"",
            h,
            b'x',
            pax.len() as u64,
            &mut Vec::new(),
        );
        checksum(&mut ph);
        w.write_all(&ph)?;
        w.write_all(&pax)?;
        pad(w, pax.len() as u64)?;
    }
    checksum(&mut block);
    w.write_all(&block)
}

/// Zero bytes up to the next 512-byte boundary after `written` bytes of data.
pub fn pad<W: Write>(w: &mut W, written: u64) -> io::Result<()> {
    let rest = (BLOCK - written % BLOCK) % BLOCK;
    w.write_all(&[0u8; 512][..rest as usize])
}

/// The end-of-archive marker: two zero blocks.
pub fn finish<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(&[0u8; 1024])
}

/// One entry of an existing archive: where its bytes (extension headers included) are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Normalised: no leading `./` or `/`, no trailing `/`; empty for the root.
    pub path: String,
    pub typeflag: u8,
    pub size: u64,
    pub link: String,
    /// Byte range of the entry's blocks in the archive.
    pub start: u64,
    pub end: u64,
}

/// Why an archive could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("at byte {offset}: {what}")]
    Format { offset: u64, what: String },
}

pub fn normalise(p: &str) -> String {
    let p = p.trim_start_matches("./").trim_start_matches('/');
    let p = if p == "." { "" } else { p };
    p.trim_end_matches('/').to_string()
}

fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256.
        let mut v: u64 = u64::from(field[0] & 0x7F);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn pax_values(data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(sp) = rest.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= sp + 1 || len > rest.len() {
            break;
        }
        let rec = &rest[sp + 1..len - 1];
        if let Some(eq) = rec.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&rec[..eq]).into_owned(),
                String::from_utf8_lossy(&rec[eq + 1..]).into_owned(),
            ));
        }
        rest = &rest[len..];
    }
    out
}

/// Indexes every entry of an uncompressed tar archive, reading headers and seeking over data.
pub fn scan<R: Read + Seek>(r: &mut R) -> Result<Vec<Scanned>, ScanError> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut entry_start = 0u64;
    let (mut long_name, mut long_link, mut pax_size): (Option<String>, Option<String>, Option<u64>) =
        (None, None, None);
    let mut block = [0u8; 512];
    loop {
        r.seek(SeekFrom::Start(offset))?;
        match r.read_exact(&mut block) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ScanError::Format {
                    offset,
                    what: "archive ends without the end-of-archive blocks".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let stored = parse_number(&block[148..156]);
        let mut sum: u64 = block.iter().map(|b| u64::from(*b)).sum();
        sum = sum - block[148..156].iter().map(|b| u64::from(*b)).sum::<u64>() + 8 * u64::from(b' ');
        if stored != Some(sum) {
            return Err(ScanError::Format {
                offset,
                what: "header checksum mismatch: expected a tar header (is the file a tar archive?)".into(),
            });
        }
        let typeflag = block[156];
        let header_size = parse_number(&block[124..136]).ok_or_else(|| ScanError::Format {
            offset,
            what: "unreadable size field".into(),
        })?;
        let data_at = offset + BLOCK;
        let read_data = |r: &mut R, n: u64| -> Result<Vec<u8>, ScanError> {
            if n > 1 << 24 {
                return Err(ScanError::Format {
                    offset,
                    what: format!("extension header of {n} bytes"),
                });
            }
            let mut d = vec![0u8; n as usize];
            r.read_exact(&mut d)?;
            Ok(d)
        };
        match typeflag {
            b'x' | b'L' | b'K' => {
                let data = read_data(r, header_size)?;
                match typeflag {
                    b'L' => long_name = Some(cstr(&data)),
                    b'K' => long_link = Some(cstr(&data)),
                    _ => {
                        for (k, v) in pax_values(&data) {
                            match k.as_str() {
                                "path" => long_name = Some(v),
                                "linkpath" => long_link = Some(v),
                                "size" => pax_size = v.parse().ok(),
                                _ => {}
                            }
                        }
                    }
                }
                offset = data_at + header_size.div_ceil(BLOCK) * BLOCK;
                continue;
            }
            _ => {}
        }
        let size = pax_size.take().unwrap_or(header_size);
        let data_len = match typeflag {
            b'2' | b'3' | b'4' | b'5' | b'6' => 0,
            _ => size,
        };
        let name = long_name.take().unwrap_or_else(|| {
            let name = cstr(&block[0..100]);
            let prefix = if &block[257..262] == b"ustar" {
                cstr(&block[345..500])
            } else {
                String::new()
            };
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        let link = long_link.take().unwrap_or_else(|| cstr(&block[157..257]));
        offset = data_at + data_len.div_ceil(BLOCK) * BLOCK;
        out.push(Scanned {
            path: normalise(&name),
            typeflag,
            size: data_len,
            link,
            start: entry_start,
            end: offset,
        });
        entry_start = offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", &"a".repeat(95));
        let s = String::from_utf8(v).unwrap();
        let (n, _) = s.split_once(' ').unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), s.len());
    }

    #[test]
    fn written_entries_scan_back_including_long_names() {
        let long = format!("usr/{}/file", "d".repeat(150));
        let mut buf = Vec::new();
        let h = |path: &str, kind: Kind| Header {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 1234,
            gid: 5678,
            mtime: 7,
        };
        write_header(&mut buf, &h("etc", Kind::Dir)).unwrap();
        write_header(&mut buf, &h(&long, Kind::File { size: 3 })).unwrap();
        buf.extend_from_slice(b"abc");
        pad(&mut buf, 3).unwrap();
        write_header(&mut buf, &h("l", Kind::Symlink("etc".into()))).unwrap();
        finish(&mut buf).unwrap();
        let got = scan(&mut io::Cursor::new(&buf)).unwrap();
        let paths: Vec<&str> = got.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["etc", long.as_str(), "l"]);
        assert_eq!(got[1].size, 3);
        assert_eq!(got[2].link, "etc");
        assert_eq!(got[0].start, 0);
        assert_eq!(got[1].start, got[0].end);
    }

    #[test]
    fn garbage_is_named_with_its_offset() {
        let e = scan(&mut io::Cursor::new(vec![1u8; 1024])).unwrap_err();
        assert!(e.to_string().contains("at byte 0: header checksum"), "{e}");
    }
}
