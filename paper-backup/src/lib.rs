//! Paper backup: bytes as chunked, labelled QR codes in a deterministic PDF, and back.
//!
//! It owns the payload format ([`frame`]), the PDF layout (`pdf`) and reading scans (`scan`).
//! It needs no external tool and knows nothing of env.yml's structure (only that it is
//! text, printed alongside the codes for reading) nor of files and exit codes: callers pass
//! bytes in and get bytes out.
//!
//! CONTRACT (used by `ecs-build config new|print|unprint`): the functions below keep these
//! signatures.

mod base32;
mod error;
pub mod frame;
mod pdf;
mod scan;

pub use error::{PaperError, Unreadable};
pub use scan::{Effort, ScanCodes, read_png};

/// A PDF for the safe: title (the domain), date and sha256 of `data`, `data` as text, and
/// the compressed data as QR codes labelled n/m, four to an A4 page. `timestamp` (Unix
/// seconds: SOURCE_DATE_EPOCH or now) is the only date in the file: the same arguments give
/// the same bytes.
pub fn print_pdf(data: &[u8], title: &str, timestamp: u64) -> Result<Vec<u8>, PaperError> {
    let payloads = frame::encode(data, title)?;
    pdf::render(data, title, timestamp, &payloads)
}

/// One scanned page: a name for messages (e.g. its path) and the PNG file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub name: &'a str,
    pub png: &'a [u8],
}

/// Restores the data from scans of its QR pages, given in any order (duplicates are fine).
/// Fails naming the missing codes, unreadable codes, foreign codes or a mix of documents;
/// the result's sha256 is checked against the one every code carries. Looks quickly first,
/// and thoroughly only when codes are missing.
pub fn decode_scans(scans: &[Scan<'_>]) -> Result<Vec<u8>, PaperError> {
    match decode_with(scans, Effort::Quick) {
        Err(PaperError::Missing { .. } | PaperError::NoCodes { .. }) => decode_with(scans, Effort::Thorough),
        other => other,
    }
}

fn decode_with(scans: &[Scan<'_>], effort: Effort) -> Result<Vec<u8>, PaperError> {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for s in scans {
        let codes = read_png(s.name, s.png, effort)?;
        unreadable.extend(codes.unreadable);
        for (payload, x, y) in codes.payloads {
            let chunk = frame::parse(&payload).map_err(|e| match e {
                frame::ParseError::Foreign => PaperError::Foreign {
                    scan: s.name.to_string(),
                    x,
                    y,
                    start: payload.chars().take(24).collect(),
                },
                frame::ParseError::Malformed(reason) => PaperError::Malformed {
                    scan: s.name.to_string(),
                    x,
                    y,
                    reason,
                },
            })?;
            found.push(frame::Found {
                chunk,
                scan: s.name.to_string(),
            });
        }
    }
    if found.is_empty() {
        return Err(PaperError::NoCodes {
            scans: scans.len(),
            unreadable,
        });
    }
    frame::assemble(&found, &unreadable)
}
