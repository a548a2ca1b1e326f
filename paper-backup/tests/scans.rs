//! Reading real renderings: the PDF rasterised by poppler's pdftoppm at 150 dpi, as a scanner
//! would deliver it, then damaged or mixed up on purpose.

use std::fs;
use std::path::{Path, PathBuf};

use host_util::{CommandExt, Tool};
use paper_backup::{Effort, PaperError, Scan, decode_scans, print_pdf, read_png};

const PDFTOPPM: Tool = Tool::new("pdftoppm", "poppler-utils");

/// Text that compresses like PEM key material: base64 lines of pseudo-random bytes.
fn key_like(lines: usize, seed: u64) -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed;
    let mut out = b"#cloud-config\nkey: |\n".to_vec();
    for _ in 0..lines {
        out.extend_from_slice(b"  ");
        for _ in 0..64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push(B64[(x >> 58) as usize]);
        }
        out.push(b'\n');
    }
    out
}

/// The PDF's pages as 150 dpi PNGs, in page order.
fn render(pdf: &[u8], dir: &Path, stem: &str) -> Vec<PathBuf> {
    let path = dir.join(format!("{stem}.pdf"));
    fs::write(&path, pdf).unwrap();
    PDFTOPPM
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .args(["-r", "150", "-png"])
        .arg(&path)
        .arg(dir.join(stem))
        .run_checked()
        .unwrap();
    let mut pages: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{stem}-")) && name.ends_with(".png")
        })
        .collect();
    pages.sort();
    pages
}

fn decode(paths: &[PathBuf]) -> Result<Vec<u8>, PaperError> {
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(p).unwrap(),
            )
        })
        .collect();
    let scans: Vec<Scan<'_>> = files.iter().map(|(name, png)| Scan { name, png }).collect();
    decode_scans(&scans)
}

/// Rewrites a PNG with a white square painted over the middle of the code whose payload
/// starts with `prefix`; returns where that code is.
fn paint_over(path: &Path, prefix: &str) -> (i32, i32) {
    let bytes = fs::read(path).unwrap();
    let codes = read_png("page", &bytes, Effort::Thorough).unwrap();
    let (_, x0, y0) = codes
        .payloads
        .iter()
        .find(|p| p.0.starts_with(prefix))
        .expect("code on the page")
        .clone();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes[..]));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    // The code is ~476 px wide at 150 dpi: blank a 240 px square in its middle (a quarter of
    // its modules, more than error correction level M repairs), keeping the finder patterns.
    for y in y0 + 118..y0 + 358 {
        let row = y as usize * info.line_size;
        for x in x0 + 118..x0 + 358 {
            let at = row + x as usize * channels;
            buf[at..at + channels].fill(255);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, info.width, info.height);
        encoder.set_color(info.color_type);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&buf[..info.buffer_size()])
            .unwrap();
    }
    fs::write(path, out).unwrap();
    (x0, y0)
}

#[test]
fn damaged_code_is_named_with_its_page_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let data = key_like(60, 1);
    let pdf = print_pdf(&data, "damaged.example.org", 1_700_000_000).unwrap();
    let pages = render(&pdf, dir.path(), "p");
    let qr_pages: Vec<PathBuf> = pages.iter().skip(1).cloned().collect();
    assert_eq!(decode(&qr_pages).unwrap(), data, "undamaged scans restore");

    let (x, y) = paint_over(&qr_pages[0], "ECSPB1 2/");
    let err = decode(&qr_pages).unwrap_err();
    let msg = err.to_string();
    let count = paper_backup::frame::encode(&data, "x").unwrap().len();
    assert!(
        msg.starts_with(&format!("missing QR codes 2/{count} of document ")),
        "{msg}"
    );
    assert!(msg.contains(&format!("found {} of {count}", count - 1)), "{msg}");
    assert!(msg.contains("could not be read"), "{msg}");
    let page = qr_pages[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(msg.contains(&format!("{page} near pixel (")), "{msg}");
    // The reported corner is the damaged code's, give or take the detector's fit.
    let near = msg.split(&format!("{page} near pixel (")).nth(1).unwrap();
    let (rx, ry) = near.split_once(')').unwrap().0.split_once(", ").unwrap();
    let (rx, ry): (i32, i32) = (rx.parse().unwrap(), ry.parse().unwrap());
    assert!(
        (rx - x).abs() < 20 && (ry - y).abs() < 20,
        "reported ({rx}, {ry}), code at ({x}, {y})"
    );
    assert!(err.is_bad_input());
}

#[test]
fn pages_of_two_documents_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = print_pdf(&key_like(40, 2), "a.example.org", 1_700_000_000).unwrap();
    let b = print_pdf(&key_like(40, 3), "b.example.org", 1_700_000_000).unwrap();
    let mut pages = render(&a, dir.path(), "a");
    pages.extend(render(&b, dir.path(), "b"));
    let msg = decode(&pages).unwrap_err().to_string();
    assert!(
        msg.starts_with("the scans hold QR codes of 2 different documents: "),
        "{msg}"
    );
    assert!(msg.contains("a-") && msg.contains("b-"), "{msg}");
}

#[test]
fn a_page_without_codes_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = print_pdf(&key_like(40, 4), "text.example.org", 1_700_000_000).unwrap();
    let pages = render(&pdf, dir.path(), "t");
    let msg = decode(&pages[..1]).unwrap_err().to_string();
    assert!(
        msg.starts_with("no paper-backup QR codes found in 1 scan(s)"),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_png_is_named() {
    let err = decode_scans(&[Scan {
        name: "notes.txt",
        png: b"hello",
    }])
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("notes.txt: not a readable PNG image: "),
        "{err}"
    );
}
