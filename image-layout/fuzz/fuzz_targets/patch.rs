//! How the fuzz targets read their input: as patches to a real image from our writers, so that
//! libFuzzer starts past the magic numbers, where the sizes and offsets are.
//!
//! Input: a flags byte (bit 0: make the checksums right again after patching), a cut byte
//! (keep `cut / 255` of the image), then patches, each a 2-byte little-endian offset into the
//! headers (modulo their length), a length byte (modulo 9) and that many bytes to write.

use std::ops::Range;

pub struct Patched {
    pub image: Vec<u8>,
    pub fix_checksums: bool,
}

pub fn patch(mut image: Vec<u8>, hot: Range<usize>, data: &[u8]) -> Patched {
    let (flags, cut, mut rest) = match data {
        [flags, cut, rest @ ..] => (*flags, *cut, rest),
        _ => (0, 255, &[][..]),
    };
    while let [lo, hi, n, tail @ ..] = rest {
        let at = hot.start + usize::from(u16::from_le_bytes([*lo, *hi])) % hot.len();
        let n = usize::from(*n % 9).min(tail.len());
        let end = (at + n).min(image.len());
        image[at..end].copy_from_slice(&tail[..end - at]);
        rest = &tail[n..];
    }
    let keep = image.len() * usize::from(cut) / 255;
    image.truncate(keep);
    Patched {
        image,
        fix_checksums: flags & 1 == 1,
    }
}
