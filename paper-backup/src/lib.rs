//! Paper backup: bytes as chunked, labelled QR codes in a deterministic PDF, and back.
//!
//! CONTRACT (used by `ecs-build config new|print|unprint`): the functions below keep these
//! signatures.

#[derive(Debug, thiserror::Error)]
pub enum PaperError {
    #[error("{0}")]
    Other(String),
}

/// A PDF for the safe: title (the domain), date and sha256 of `data`, `data` as text, and
/// the compressed data as QR codes labelled n/m, four to an A4 page.
pub fn print_pdf(data: &[u8], title: &str, timestamp: u64) -> Result<Vec<u8>, PaperError> {
    let _ = (data, title, timestamp);
    unimplemented!("paper-backup helper fills this")
}
