//! The PDF: a few pages of text (env.yml, numbered and wrapped), then the QR codes four to an
//! A4 page. Deterministic: the only date is the one passed in, the document id derives from
//! the content, and streams are compressed with a fixed level.

mod date;
mod listing;
mod page;

use std::io::Write;

use pdf_writer::{Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use sha2::{Digest, Sha256};

use crate::error::PaperError;
pub use page::{CODES_PER_PAGE, LINES_PER_PAGE, TEXT_COLUMNS};

/// A4 in points.
pub const PAGE_W: f32 = 595.276;
pub const PAGE_H: f32 = 841.89;

const FONT: Name = Name(b"F1");
const FONT_BOLD: Name = Name(b"F2");

/// What every page repeats in its header and footer.
pub(crate) struct Header {
    pub title: String,
    pub summary: String,
    pub sha: String,
    pub pages: usize,
}

/// Renders the document; `payloads` are the QR contents in order.
pub fn render(data: &[u8], title: &str, timestamp: u64, payloads: &[String]) -> Result<Vec<u8>, PaperError> {
    let (lines, escapes) = listing::lines(data, TEXT_COLUMNS);
    let mut notes =
        vec!["The text below is for reading and checking; the QR codes hold the exact bytes.".to_string()];
    if escapes > 0 {
        notes.push(format!(
            "{escapes} character(s) outside printable ASCII are shown as <U+XXXX> (or <xHH> for bytes that are \
             not UTF-8)."
        ));
    }
    notes.push(String::new());
    let text_lines = notes.len() + lines.len();
    let text_pages = text_lines.div_ceil(LINES_PER_PAGE).max(1);
    let qr_pages = payloads.len().div_ceil(CODES_PER_PAGE);
    let pages = text_pages + qr_pages;
    let sha = hex::encode(Sha256::digest(data));
    let mut ignored = 0;
    let mut shown_title = listing::escape(title.as_bytes(), &mut ignored);
    if shown_title.len() > 48 {
        shown_title.truncate(45);
        shown_title.push_str("...");
    }
    let header = Header {
        title: format!("env.yml of {shown_title}"),
        summary: format!(
            "printed {}   {} bytes   {} QR code(s) on {}",
            date::display(timestamp),
            data.len(),
            payloads.len(),
            if qr_pages == 1 {
                format!("page {pages}")
            } else {
                format!("pages {}-{pages}", text_pages + 1)
            }
        ),
        sha: format!("sha256 {sha}"),
        pages,
    };

    let mut contents = Vec::with_capacity(pages);
    let mut body = notes
        .into_iter()
        .map(|n| (String::new(), n))
        .chain(lines.into_iter().map(|l| (l.gutter, l.text)));
    for p in 0..text_pages {
        let chunk: Vec<(String, String)> = body.by_ref().take(LINES_PER_PAGE).collect();
        contents.push(page::text_page(&header, p + 1, &chunk));
    }
    let doc = crate::frame::doc_id(&Sha256::digest(data).into());
    for (p, codes) in payloads.chunks(CODES_PER_PAGE).enumerate() {
        let first = p * CODES_PER_PAGE + 1;
        contents.push(page::qr_page(
            &header,
            text_pages + p + 1,
            codes,
            first,
            payloads.len(),
            &doc,
        )?);
    }
    Ok(assemble(&header.title, timestamp, data, &contents))
}

fn assemble(title: &str, timestamp: u64, data: &[u8], contents: &[Vec<u8>]) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let font = Ref::new(4);
    let font_bold = Ref::new(5);
    let page_ref = |i: usize| Ref::new(6 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(7 + 2 * i as i32);

    let mut pdf = Pdf::new();
    // A fixed id: the same input gives the same file.
    let id = Sha256::new()
        .chain_update(data)
        .chain_update(title.as_bytes())
        .chain_update(timestamp.to_be_bytes())
        .finalize()[..16]
        .to_vec();
    pdf.set_file_id((id.clone(), id));
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..contents.len()).map(page_ref))
        .count(contents.len() as i32);
    let (y, mo, d, h, mi, s) = date::civil(timestamp);
    let when = pdf_writer::Date::new(y.clamp(0, 9999) as u16)
        .month(mo)
        .day(d)
        .hour(h)
        .minute(mi)
        .second(s)
        .utc_offset_hour(0);
    pdf.document_info(info)
        .title(TextStr(title))
        .producer(TextStr("ecs-build paper-backup"))
        .creation_date(when)
        .modified_date(when);
    for (r, base) in [(font, Name(b"Courier")), (font_bold, Name(b"Courier-Bold"))] {
        pdf.type1_font(r)
            .base_font(base)
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, content) in contents.iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(content_ref(i));
        page.resources()
            .fonts()
            .pair(FONT, font)
            .pair(FONT_BOLD, font_bold);
        page.finish();
        let packed = deflate(content);
        pdf.stream(content_ref(i), &packed).filter(Filter::FlateDecode);
    }
    pdf.finish()
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// PDF text string bytes: our strings are printable ASCII already (see `listing`).
pub(crate) fn str(text: &str) -> Str<'_> {
    Str(text.as_bytes())
}
