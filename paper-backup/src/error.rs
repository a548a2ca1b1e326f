//! Everything that can go wrong printing or restoring a paper backup, worded for the operator.

/// A code that was seen in a scan but could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The scan it is in (as named by the caller, e.g. its path).
    pub scan: String,
    /// Top-left corner of the code, in pixels.
    pub x: i32,
    pub y: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum PaperError {
    #[error("{what} is too large for a paper backup: it needs {codes} QR codes, at most {max} fit")]
    TooLarge { what: String, codes: usize, max: usize },

    #[error("compressing the data: {0}")]
    Compress(#[source] std::io::Error),

    #[error("making a QR code: {0}")]
    QrEncode(String),

    #[error("{scan}: not a readable PNG image: {reason}")]
    Png { scan: String, reason: String },

    #[error(
        "no paper-backup QR codes found in {scans} scan(s){}; scan the QR pages at 150 dpi or more",
        unreadable_suffix(.unreadable)
    )]
    NoCodes {
        scans: usize,
        unreadable: Vec<Unreadable>,
    },

    #[error(
        "{scan}: a QR code near pixel ({x}, {y}) is not from an ecs-build paper backup (it reads {start:?}...)"
    )]
    Foreign {
        scan: String,
        x: i32,
        y: i32,
        start: String,
    },

    #[error("{scan}: a QR code near pixel ({x}, {y}) is damaged: {reason}")]
    Malformed {
        scan: String,
        x: i32,
        y: i32,
        reason: String,
    },

    #[error(
        "the scans hold QR codes of {} different documents: {}; restore one document at a time",
        .docs.len(), .docs.iter().map(|(d, s)| format!("{d} ({})", s.join(", "))).collect::<Vec<_>>().join("; ")
    )]
    MixedDocuments {
        /// Document id (sha256 prefix) and the scans holding its codes.
        docs: Vec<(String, Vec<String>)>,
    },

    #[error(
        "QR code {index}/{count} of document {doc} appears in {} with different contents",
        .scans.join(" and ")
    )]
    Conflict {
        doc: String,
        index: usize,
        count: usize,
        scans: Vec<String>,
    },

    #[error(
        "missing QR codes {} of document {doc}: found {found} of {count}{}",
        .missing.iter().map(|i| format!("{i}/{count}")).collect::<Vec<_>>().join(", "),
        unreadable_suffix(.unreadable)
    )]
    Missing {
        doc: String,
        count: usize,
        found: usize,
        missing: Vec<usize>,
        unreadable: Vec<Unreadable>,
    },

    #[error("document {doc}: all {count} QR codes were read, but {reason}")]
    Corrupt {
        doc: String,
        count: usize,
        reason: String,
    },
}

impl PaperError {
    /// True when the input (the data to print, or the scans) is at fault rather than the
    /// machine: callers map this to "bad input" (exit 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, PaperError::Compress(_) | PaperError::QrEncode(_))
    }
}

fn unreadable_suffix(unreadable: &[Unreadable]) -> String {
    if unreadable.is_empty() {
        return String::new();
    }
    let list: Vec<String> = unreadable
        .iter()
        .map(|u| format!("{} near pixel ({}, {})", u.scan, u.x, u.y))
        .collect();
    format!(
        "; {} code(s) were seen but could not be read (damaged, smudged or scanned too coarsely; \
         rescan at 300 dpi): {}",
        unreadable.len(),
        list.join(", ")
    )
}
