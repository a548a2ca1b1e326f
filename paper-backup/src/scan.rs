//! Reading scans: PNG to grayscale, every QR code on it found and decoded with rqrr.
//! A page holds four codes; codes whose finder patterns are seen but whose contents cannot be
//! decoded are reported with their position, so a damaged code can be named.

use crate::error::{PaperError, Unreadable};

/// What one scan yielded.
#[derive(Debug, Default)]
pub struct ScanCodes {
    /// Decoded payloads with the top-left corner of their code, in pixels.
    pub payloads: Vec<(String, i32, i32)>,
    pub unreadable: Vec<Unreadable>,
}

/// How hard to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// The whole image, turned four ways.
    Quick,
    /// Also overlapping windows of about one code each: slower, finds codes that hid.
    Thorough,
}

/// Finds and decodes every QR code in a PNG image. `scan` names it in messages.
pub fn read_png(scan: &str, png_bytes: &[u8], effort: Effort) -> Result<ScanCodes, PaperError> {
    let (w, h, luma) = decode_png(png_bytes).map_err(|reason| PaperError::Png {
        scan: scan.to_string(),
        reason,
    })?;
    let (mut out, mut luma) = read_luma(scan, w, h, luma);
    if effort == Effort::Thorough {
        windows(scan, w, h, &mut luma, &mut out);
    }
    Ok(out)
}

/// Overlapping windows (3/5 of the width, half the height: one code of a page and parts of
/// others), on the image with the codes found so far painted out: fewer finder patterns to
/// confuse one another. Codes still seen but unread on the whole image are then unreadable.
fn windows(scan: &str, w: usize, h: usize, luma: &mut [u8], out: &mut ScanCodes) {
    let (ww, wh) = (w * 3 / 5, h / 2);
    for oy in [0, h / 4, h - wh] {
        for ox in [0, (w - ww) / 2, w - ww] {
            let window: Vec<u8> = (oy..oy + wh)
                .flat_map(|y| luma[y * w + ox..y * w + ox + ww].iter().copied())
                .collect();
            let (found, painted) = read_luma(scan, ww, wh, window);
            for (text, x, y) in found.payloads {
                out.payloads.push((text, x + ox as i32, y + oy as i32));
            }
            for (row, y) in painted.chunks_exact(ww).zip(oy..) {
                luma[y * w + ox..y * w + ox + ww].copy_from_slice(row);
            }
        }
    }
    out.unreadable.clear();
    let mut img = Image {
        w,
        h,
        luma: luma.to_vec(),
        turns: 0,
    };
    img.look(
        |_, _| {},
        |(x, y)| {
            out.unreadable.push(Unreadable {
                scan: scan.to_string(),
                x,
                y,
            })
        },
    );
}

/// rqrr groups finder patterns greedily, in raster order: a false pattern in a code's data,
/// or patterns of neighbouring codes that line up, can take a real code's patterns and hide
/// it, and which grouping wins depends on the orientation. So: decode what can be decoded,
/// paint those codes white, look again, and turn the image by 90 degrees whenever a look finds
/// nothing new, until four turns in a row find nothing.
fn read_luma(scan: &str, w: usize, h: usize, luma: Vec<u8>) -> (ScanCodes, Vec<u8>) {
    let mut out = ScanCodes::default();
    let mut img = Image { w, h, luma, turns: 0 };
    let mut idle = 0;
    for _ in 0..MAX_PASSES {
        if idle == 4 {
            break;
        }
        let decoded = img.look(
            |text, corner| out.payloads.push((text, corner.0, corner.1)),
            |_| {},
        );
        if decoded == 0 {
            img.turn();
            idle += 1;
        } else {
            idle = 0;
        }
    }
    while !img.turns.is_multiple_of(4) {
        img.turn();
    }
    img.look(
        |_, _| {},
        |(x, y)| {
            out.unreadable.push(Unreadable {
                scan: scan.to_string(),
                x,
                y,
            })
        },
    );
    (out, img.luma)
}

/// At most four codes per page, each found within a turn: this bounds the work on any image.
const MAX_PASSES: usize = 40;

/// A grayscale image, turned `turns` quarter turns clockwise from the scan.
struct Image {
    w: usize,
    h: usize,
    luma: Vec<u8>,
    turns: usize,
}

impl Image {
    /// Detects codes; decoded ones are reported (with their top-left corner in scan
    /// coordinates) and painted over, the others reported as unreadable. Returns how many
    /// were decoded.
    fn look(
        &mut self,
        mut decoded: impl FnMut(String, (i32, i32)),
        mut unreadable: impl FnMut((i32, i32)),
    ) -> usize {
        let (w, luma) = (self.w, &self.luma);
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, self.h, |x, y| luma[y * w + x]);
        let mut erase = Vec::new();
        for grid in prepared.detect_grids() {
            let corner = self.to_scan(grid.bounds[0]);
            match grid.decode() {
                Ok((_, text)) => {
                    decoded(text, corner);
                    erase.push(grid.bounds);
                }
                Err(_) => unreadable(corner),
            }
        }
        for quad in &erase {
            paint_white(&mut self.luma, self.w, self.h, quad);
        }
        erase.len()
    }

    /// A quarter turn clockwise.
    fn turn(&mut self) {
        let (w, h) = (self.w, self.h);
        let mut turned = vec![0; w * h];
        for y in 0..w {
            for x in 0..h {
                turned[y * h + x] = self.luma[(h - 1 - x) * w + y];
            }
        }
        self.luma = turned;
        (self.w, self.h) = (h, w);
        self.turns += 1;
    }

    /// A point of the turned image in the scan's coordinates.
    fn to_scan(&self, p: rqrr::Point) -> (i32, i32) {
        let (mut x, mut y) = (p.x, p.y);
        let (mut w, mut h) = (self.w as i32, self.h as i32);
        for _ in 0..self.turns % 4 {
            // Undo one clockwise turn: (x, y) in a w x h image came from (y, w - 1 - x).
            (x, y) = (y, w - 1 - x);
            (w, h) = (h, w);
        }
        (x, y)
    }
}

/// Paints the quadrilateral (grown by a tenth around its centre, to cover the edge modules)
/// white.
fn paint_white(luma: &mut [u8], w: usize, h: usize, quad: &[rqrr::Point; 4]) {
    let cx = quad.iter().map(|p| p.x as f64).sum::<f64>() / 4.0;
    let cy = quad.iter().map(|p| p.y as f64).sum::<f64>() / 4.0;
    let grown: Vec<(f64, f64)> = quad
        .iter()
        .map(|p| (cx + (p.x as f64 - cx) * 1.1, cy + (p.y as f64 - cy) * 1.1))
        .collect();
    let clamp = |v: f64, max: usize| (v.max(0.0) as usize).min(max.saturating_sub(1));
    let (x0, x1) = grown
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = grown
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    for y in clamp(y0, h)..=clamp(y1, h) {
        for x in clamp(x0, w)..=clamp(x1, w) {
            if inside(&grown, x as f64, y as f64) {
                luma[y * w + x] = 255;
            }
        }
    }
}

/// Point in a convex polygon given in either winding order.
fn inside(poly: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut sign = 0.0f64;
    for i in 0..poly.len() {
        let (ax, ay) = poly[i];
        let (bx, by) = poly[(i + 1) % poly.len()];
        let cross = (bx - ax) * (y - ay) - (by - ay) * (x - ax);
        if cross != 0.0 {
            if sign != 0.0 && cross.signum() != sign {
                return false;
            }
            sign = cross.signum();
        }
    }
    true
}

/// Width, height and 8-bit luminance of any PNG colour type and depth.
fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let size = reader.output_buffer_size().ok_or("image too large")?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let luma = buf[..info.buffer_size()]
        .chunks_exact(info.line_size)
        .flat_map(|line| line[..w * channels].chunks_exact(channels))
        .map(|px| match px {
            [g] | [g, _] => *g,
            // Alpha is ignored: scans are opaque.
            [r, g, b] | [r, g, b, _] => {
                ((u32::from(*r) * 299 + u32::from(*g) * 587 + u32::from(*b) * 114) / 1000) as u8
            }
            _ => 255,
        })
        .collect::<Vec<u8>>();
    if luma.len() != w * h {
        return Err(format!("expected {w}x{h} pixels, decoded {}", luma.len()));
    }
    Ok((w, h, luma))
}
