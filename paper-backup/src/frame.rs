//! The QR payload format: what each code carries so that codes can be read in any order,
//! from any number of scans, and mix-ups are caught.
//!
//! The data is gzip-compressed (mtime 0: deterministic; `gunzip` can undo it by hand), the
//! gzip stream is cut into chunks of [`CHUNK_BYTES`], and each chunk becomes one code:
//!
//! ```text
//! ECSPB1 <n>/<m> <SHA256 OF THE DATA, 64 HEX DIGITS> <CHUNK IN BASE32>
//! ```
//!
//! Every character is in the QR alphanumeric set, so the codes use alphanumeric mode and any
//! reader returns them as text. All chunks but the last are a multiple of 5 bytes, so the
//! base32 texts of the codes, joined in order, are the base32 of the whole gzip stream.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use crate::base32;
use crate::error::{PaperError, Unreadable};

/// The format tag that starts every payload.
pub const MAGIC: &str = "ECSPB1";

/// Compressed bytes per code. With the header this fills a version 20 code (97 modules, 0.82 mm
/// each as printed: 4.8 pixels at 150 dpi) at error correction level M. Larger versions read
/// less reliably from 150 dpi renderings; see docs/paper-backup.md for the measurements.
pub const CHUNK_BYTES: usize = 555;

/// At most this many codes (25 A4 pages): a paper backup beyond that is not one.
pub const MAX_CODES: usize = 100;

/// Refuse to inflate more than this: the restored file is an env.yml, not a disk image.
const MAX_DATA: u64 = 16 << 20;

/// The first 16 hex digits of the sha256: how documents are named in messages.
pub fn doc_id(sha: &[u8; 32]) -> String {
    hex::encode(&sha[..8])
}

/// The payloads (one per QR code, in order) for `data`.
pub fn encode(data: &[u8], what: &str) -> Result<Vec<String>, PaperError> {
    encode_with(data, what, CHUNK_BYTES)
}

pub(crate) fn encode_with(data: &[u8], what: &str, chunk_bytes: usize) -> Result<Vec<String>, PaperError> {
    debug_assert!(chunk_bytes.is_multiple_of(5));
    let sha: [u8; 32] = Sha256::digest(data).into();
    let gz = gzip(data).map_err(PaperError::Compress)?;
    let count = gz.len().div_ceil(chunk_bytes).max(1);
    if count > MAX_CODES {
        return Err(PaperError::TooLarge {
            what: what.to_string(),
            codes: count,
            max: MAX_CODES,
        });
    }
    let sha_hex = hex::encode_upper(sha);
    Ok(gz
        .chunks(chunk_bytes)
        .enumerate()
        .map(|(i, chunk)| format!("{MAGIC} {}/{count} {sha_hex} {}", i + 1, base32::encode(chunk)))
        .collect())
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    enc.finish()
}

/// One decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 1-based.
    pub index: usize,
    pub count: usize,
    /// sha256 of the whole (uncompressed) data: names the document.
    pub sha: [u8; 32],
    pub bytes: Vec<u8>,
}

/// Why a payload is not a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Does not start with the format tag: some other QR code.
    Foreign,
    /// Starts with the tag but the rest is wrong.
    Malformed(String),
}

/// Parses one payload.
pub fn parse(payload: &str) -> Result<Chunk, ParseError> {
    let mut parts = payload.splitn(4, ' ');
    if parts.next() != Some(MAGIC) {
        return Err(ParseError::Foreign);
    }
    let bad = |what: &str| ParseError::Malformed(what.to_string());
    let (index, count) = parts
        .next()
        .and_then(|nm| nm.split_once('/'))
        .and_then(|(n, m)| Some((n.parse::<usize>().ok()?, m.parse::<usize>().ok()?)))
        .filter(|&(n, m)| n >= 1 && n <= m && m <= MAX_CODES)
        .ok_or_else(|| bad("expected \"<n>/<m>\" after the format tag"))?;
    let sha = parts
        .next()
        .filter(|h| h.len() == 64)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| bad("expected a 64-digit sha256 after n/m"))?;
    let text = parts.next().ok_or_else(|| bad("no data after the sha256"))?;
    let bytes = base32::decode(text)
        .map_err(|at| ParseError::Malformed(format!("data is not base32 at offset {at}")))?;
    Ok(Chunk {
        index,
        count,
        sha,
        bytes,
    })
}

/// A chunk and the scan it came from.
#[derive(Debug, Clone)]
pub struct Found {
    pub chunk: Chunk,
    pub scan: String,
}

/// Reassembles one document from chunks in any order, with duplicates; checks that they all
/// belong to one document, that none is missing, and that the result has the right sha256.
/// `unreadable` lists codes that were seen but not read, for the missing-codes message.
pub fn assemble(found: &[Found], unreadable: &[Unreadable]) -> Result<Vec<u8>, PaperError> {
    let mut docs: BTreeMap<[u8; 32], Vec<&Found>> = BTreeMap::new();
    for f in found {
        docs.entry(f.chunk.sha).or_default().push(f);
    }
    if docs.len() > 1 {
        return Err(PaperError::MixedDocuments {
            docs: docs
                .iter()
                .map(|(sha, fs)| (doc_id(sha), scans_of(fs.iter().copied())))
                .collect(),
        });
    }
    let Some((sha, found)) = docs.into_iter().next() else {
        return Err(PaperError::NoCodes {
            scans: 0,
            unreadable: unreadable.to_vec(),
        });
    };
    let doc = doc_id(&sha);
    // Every code of one document states the same count; disagreement means tampering or a bug.
    let count = found[0].chunk.count;
    if let Some(odd) = found.iter().find(|f| f.chunk.count != count) {
        return Err(PaperError::Corrupt {
            doc,
            count,
            reason: format!(
                "{} holds code {}/{} while others say there are {count}",
                odd.scan, odd.chunk.index, odd.chunk.count
            ),
        });
    }
    let mut slots: Vec<Option<&Found>> = vec![None; count];
    for f in &found {
        let slot = &mut slots[f.chunk.index - 1];
        match slot {
            Some(prev) if prev.chunk.bytes != f.chunk.bytes => {
                return Err(PaperError::Conflict {
                    doc,
                    index: f.chunk.index,
                    count,
                    scans: scans_of([*prev, *f]),
                });
            }
            Some(_) => {}
            None => *slot = Some(f),
        }
    }
    let missing: Vec<usize> = (1..=count).filter(|i| slots[i - 1].is_none()).collect();
    if !missing.is_empty() {
        return Err(PaperError::Missing {
            doc,
            count,
            found: count - missing.len(),
            missing,
            unreadable: unreadable.to_vec(),
        });
    }
    let gz: Vec<u8> = slots
        .iter()
        .flatten()
        .flat_map(|f| f.chunk.bytes.iter().copied())
        .collect();
    let corrupt = |reason: String| PaperError::Corrupt {
        doc: doc.clone(),
        count,
        reason,
    };
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .take(MAX_DATA + 1)
        .read_to_end(&mut data)
        .map_err(|e| corrupt(format!("the joined data does not decompress: {e}")))?;
    if data.len() as u64 > MAX_DATA {
        return Err(corrupt(format!(
            "the data decompresses to more than {MAX_DATA} bytes"
        )));
    }
    let got: [u8; 32] = Sha256::digest(&data).into();
    if got != sha {
        return Err(corrupt(format!(
            "the restored data has sha256 {}, expected {}",
            hex::encode(got),
            hex::encode(sha)
        )));
    }
    Ok(data)
}

fn scans_of<'a>(found: impl IntoIterator<Item = &'a Found>) -> Vec<String> {
    let mut scans: Vec<String> = found.into_iter().map(|f| f.scan.clone()).collect();
    scans.sort();
    scans.dedup();
    scans
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
