//! Page contents: the repeated header and footer, a page of text, a page of four QR codes.
//! Coordinates are PDF points from the bottom-left corner; Courier advances 0.6 em per glyph.

use pdf_writer::Content;
use qrcode::{Color, EcLevel, QrCode};

use super::{FONT, FONT_BOLD, Header, PAGE_H, PAGE_W, str};
use crate::error::PaperError;

const MARGIN_X: f32 = 42.0;
const BODY_TOP: f32 = PAGE_H - 100.0;
const BODY_BOTTOM: f32 = 58.0;

const TEXT_SIZE: f32 = 8.0;
const LEADING: f32 = 9.5;
/// Text columns after the line-number gutter (106 fit between the margins at 8 pt).
pub const TEXT_COLUMNS: usize = 99;
pub const LINES_PER_PAGE: usize = 72;

pub const CODES_PER_PAGE: usize = 4;
/// Side of a code's module area (79.7 mm); the white around it is the quiet zone.
const CODE_SIDE: f32 = 226.0;
/// Between the two codes of a row (23 mm). rqrr pairs finder patterns that line up within
/// about 11 degrees; with a narrow gap the top-right pattern of the left code and the
/// bottom-left one of the right code line up, and the false pairing hides both codes.
const CODE_GAP: f32 = 66.0;

const RESTORE: &str = "To restore: scan the QR pages to PNG (150 dpi or more), then run: ecs-build config unprint page*.png -o env.yml";

fn width(text: &str, size: f32) -> f32 {
    text.len() as f32 * 0.6 * size
}

fn text_at(c: &mut Content, font: pdf_writer::Name, size: f32, x: f32, y: f32, text: &str) {
    c.begin_text()
        .set_font(font, size)
        .next_line(x, y)
        .show(str(text))
        .end_text();
}

fn frame(c: &mut Content, header: &Header, number: usize) {
    let top = PAGE_H - 50.0;
    text_at(c, FONT_BOLD, 11.0, MARGIN_X, top, &header.title);
    let page = format!("page {number}/{}", header.pages);
    text_at(
        c,
        FONT_BOLD,
        10.0,
        PAGE_W - MARGIN_X - width(&page, 10.0),
        top,
        &page,
    );
    text_at(c, FONT, 8.5, MARGIN_X, top - 15.0, &header.summary);
    text_at(c, FONT, 8.5, MARGIN_X, top - 26.0, &header.sha);
    c.set_line_width(0.5);
    c.move_to(MARGIN_X, top - 34.0)
        .line_to(PAGE_W - MARGIN_X, top - 34.0)
        .stroke();
    c.move_to(MARGIN_X, 46.0)
        .line_to(PAGE_W - MARGIN_X, 46.0)
        .stroke();
    text_at(c, FONT, 7.5, MARGIN_X, 34.0, RESTORE);
}

/// A page of numbered text lines: (gutter, text).
pub fn text_page(header: &Header, number: usize, lines: &[(String, String)]) -> Vec<u8> {
    let mut c = Content::new();
    frame(&mut c, header, number);
    let text_x = MARGIN_X + width("99999 ", TEXT_SIZE);
    for (i, (gutter, text)) in lines.iter().enumerate() {
        let y = BODY_TOP - i as f32 * LEADING;
        debug_assert!(y >= BODY_BOTTOM);
        if !gutter.is_empty() {
            c.set_fill_gray(0.45);
            text_at(
                &mut c,
                FONT,
                TEXT_SIZE,
                text_x - width(&format!("{gutter} "), TEXT_SIZE),
                y,
                gutter,
            );
            c.set_fill_gray(0.0);
        }
        let x = if gutter.is_empty() { MARGIN_X } else { text_x };
        text_at(&mut c, FONT, TEXT_SIZE, x, y, text);
    }
    c.finish().into_vec()
}

/// A page of up to four codes in a 2x2 grid, each labelled "n/m" underneath.
pub fn qr_page(
    header: &Header,
    number: usize,
    payloads: &[String],
    first: usize,
    count: usize,
    doc: &str,
) -> Result<Vec<u8>, PaperError> {
    let mut c = Content::new();
    frame(&mut c, header, number);
    let cell_h = (BODY_TOP + 10.0 - BODY_BOTTOM) / 2.0;
    for (i, payload) in payloads.iter().enumerate() {
        let (col, row) = ((i % 2) as f32, (i / 2) as f32);
        let left = PAGE_W / 2.0 - CODE_GAP / 2.0 - CODE_SIDE + col * (CODE_SIDE + CODE_GAP);
        let top = BODY_TOP + 10.0 - row * cell_h - (cell_h - CODE_SIDE - 34.0) / 2.0;
        draw_code(&mut c, payload, left, top)?;
        let label = format!("{}/{count}", first + i);
        let centre = left + CODE_SIDE / 2.0;
        text_at(
            &mut c,
            FONT_BOLD,
            14.0,
            centre - width(&label, 14.0) / 2.0,
            top - CODE_SIDE - 20.0,
            &label,
        );
        let sub = format!("document {doc}");
        text_at(
            &mut c,
            FONT,
            7.0,
            centre - width(&sub, 7.0) / 2.0,
            top - CODE_SIDE - 31.0,
            &sub,
        );
    }
    Ok(c.finish().into_vec())
}

/// The dark modules as one path of row runs, filled once (no seams between modules).
fn draw_code(c: &mut Content, payload: &str, left: f32, top: f32) -> Result<(), PaperError> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|e| PaperError::QrEncode(e.to_string()))?;
    let n = code.width();
    let colors = code.to_colors();
    let m = CODE_SIDE / n as f32;
    for y in 0..n {
        let row = &colors[y * n..(y + 1) * n];
        let mut x = 0;
        while x < n {
            if row[x] == Color::Dark {
                let start = x;
                while x < n && row[x] == Color::Dark {
                    x += 1;
                }
                c.rect(
                    left + start as f32 * m,
                    top - (y + 1) as f32 * m,
                    (x - start) as f32 * m,
                    m,
                );
            } else {
                x += 1;
            }
        }
    }
    c.fill_nonzero();
    Ok(())
}
