//! Rock Ridge (RRIP 1.09, "RRIP_1991A") on top of SUSP: the System Use entries that give the
//! primary tree real names, POSIX modes and owners, and times.
//!
//! The shape follows what `genisoimage -rock` writes and the Linux isofs driver reads: the root
//! `.` carries SP (SUSP in use), RR, PX, TF and a CE pointing at a continuation area that holds
//! ER (too long for a directory record); `..` carries RR, PX, TF; files add NM.

use super::both_u32;

/// RR flag bits (RRIP 1.09 4.1.7): which RRIP entries the record holds.
const RR_PX: u8 = 0x01;
const RR_NM: u8 = 0x08;
const RR_TF: u8 = 0x80;

/// The ER extension identifier and texts of RRIP 1.09, as the spec gives them.
const ER_ID: &[u8] = b"RRIP_1991A";
const ER_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER \
IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// The POSIX attributes every entry gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Posix {
    /// Full st_mode, file type bits included (0o100444, 0o040555).
    pub mode: u32,
    pub nlink: u32,
}

fn entry(sig: &[u8; 2], body: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + body.len());
    e.extend_from_slice(sig);
    e.push((4 + body.len()) as u8);
    e.push(1); // entry version
    e.extend_from_slice(body);
    e
}

/// SP: "SUSP in use", skip 0 bytes (SUSP 5.3). Only in the root's `.` record, first entry.
fn sp() -> Vec<u8> {
    entry(b"SP", &[0xBE, 0xEF, 0])
}

fn rr(flags: u8) -> Vec<u8> {
    entry(b"RR", &[flags])
}

/// PX in its RRIP 1.09 form (36 bytes): mode, links, uid 0, gid 0, each both-endian.
fn px(posix: Posix) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    for v in [posix.mode, posix.nlink, 0, 0] {
        body.extend_from_slice(&both_u32(v));
    }
    entry(b"PX", &body)
}

/// TF with modify, access and attribute-change times in the 7-byte format.
fn tf(date: [u8; 7]) -> Vec<u8> {
    let mut body = vec![0x02 | 0x04 | 0x08];
    for _ in 0..3 {
        body.extend_from_slice(&date);
    }
    entry(b"TF", &body)
}

/// NM: the alternate (real) name, complete in this entry.
fn nm(name: &str) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(name.as_bytes());
    entry(b"NM", &body)
}

/// CE: the continuation area's sector, offset in it, and length.
fn ce(lba: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    for v in [lba, offset, len] {
        body.extend_from_slice(&both_u32(v));
    }
    entry(b"CE", &body)
}

/// ER: the extension in use (SUSP 5.5), placed in the continuation area.
pub(crate) fn er() -> Vec<u8> {
    let mut body = vec![
        ER_ID.len() as u8,
        ER_DESCRIPTOR.len() as u8,
        ER_SOURCE.len() as u8,
        1,
    ];
    body.extend_from_slice(ER_ID);
    body.extend_from_slice(ER_DESCRIPTOR);
    body.extend_from_slice(ER_SOURCE);
    entry(b"ER", &body)
}

/// System Use bytes of the root's `.` record; `continuation_lba` holds `er()` at offset 0.
pub(crate) fn root_dot(posix: Posix, date: [u8; 7], continuation_lba: u32) -> Vec<u8> {
    let mut su = sp();
    su.extend(rr(RR_PX | RR_TF));
    su.extend(px(posix));
    su.extend(tf(date));
    su.extend(ce(continuation_lba, 0, er().len() as u32));
    su
}

/// System Use bytes of a `..` record (or any other unnamed directory entry).
pub(crate) fn dir_entry(posix: Posix, date: [u8; 7]) -> Vec<u8> {
    let mut su = rr(RR_PX | RR_TF);
    su.extend(px(posix));
    su.extend(tf(date));
    su
}

/// System Use bytes of a named file record.
pub(crate) fn file_entry(name: &str, posix: Posix, date: [u8; 7]) -> Vec<u8> {
    let mut su = rr(RR_PX | RR_NM | RR_TF);
    su.extend(nm(name));
    su.extend(px(posix));
    su.extend(tf(date));
    su
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_their_own_length() {
        let posix = Posix {
            mode: 0o100444,
            nlink: 1,
        };
        assert_eq!(px(posix).len(), 36);
        assert_eq!(tf([0; 7]).len(), 26);
        assert_eq!(er().len(), 8 + 10 + 84 + 135);
        let su = file_entry("user-data", posix, [0; 7]);
        // Walk the entries by their length bytes: they must tile the area exactly.
        let mut at = 0;
        let mut sigs = Vec::new();
        while at < su.len() {
            sigs.push(String::from_utf8_lossy(&su[at..at + 2]).into_owned());
            at += su[at + 2] as usize;
        }
        assert_eq!(at, su.len());
        assert_eq!(sigs, ["RR", "NM", "PX", "TF"]);
    }
}
