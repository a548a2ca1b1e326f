//! libFuzzer target for `read_pv_label`: a real PV label, metadata area header and text from
//! our writer, patched in its first 8 KiB, with the CRCs made right again when the input asks.
//! Run: `cd image-layout/fuzz && cargo +nightly fuzz run lvm -- -malloc_limit_mb=64`.

#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use image_layout::lvm::{self, LvText, PvSpec, VgText, crc, read_pv_label};
use libfuzzer_sys::fuzz_target;

mod patch;

const LABEL: usize = 512;
const MDA: usize = 4096;
const LEN: usize = 8192;

fn seed() -> &'static Vec<u8> {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let text = VgText {
            name: "permanent".into(),
            id: "CN000cs52Nu4hiwFDG2iYTxJK8moc7rM".into(),
            seqno: 1,
            pv_id: "k2gnzbY2829Pj575fUf2fq0JAy7bomze".into(),
            pv_device_size: 64 << 20,
            pe_count: 15,
            lv: Some(LvText {
                name: "data".into(),
                id: "6Q11uZdqBwppPFyBFKnI0n0c7qjQ32p6".into(),
                extent_count: 12,
            }),
            creation_host: "ecs-build".into(),
            creation_time: 1,
        }
        .render();
        let pv = PvSpec {
            pv_uuid: "k2gnzbY2829Pj575fUf2fq0JAy7bomze".into(),
            device_size: 64 << 20,
            metadata: text.clone(),
        };
        let mut image = vec![0u8; LEN];
        image[LABEL..LABEL + 512].copy_from_slice(&lvm::label_sector(&pv));
        image[MDA..MDA + 512].copy_from_slice(&lvm::mda_header(text.as_bytes()));
        image[MDA + 512..MDA + 512 + text.len()].copy_from_slice(text.as_bytes());
        image
    })
}

/// The text's CRC (as the header places it), the header's and the label's.
fn fix_checksums(image: &mut [u8]) {
    if image.len() < MDA + 512 {
        return;
    }
    let le64 = |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
    let (offset, size) = (le64(MDA + 40), le64(MDA + 48));
    let text = usize::try_from(offset)
        .ok()
        .and_then(|o| MDA.checked_add(o))
        .and_then(|s| Some(s..s.checked_add(usize::try_from(size).ok()?)?))
        .filter(|t| t.end <= image.len());
    if let Some(text) = text {
        let c = crc(&image[text]);
        image[MDA + 56..MDA + 60].copy_from_slice(&c.to_le_bytes());
    }
    let c = crc(&image[MDA + 4..MDA + 512]);
    image[MDA..MDA + 4].copy_from_slice(&c.to_le_bytes());
    let c = crc(&image[LABEL + 20..LABEL + 512]);
    image[LABEL + 16..LABEL + 20].copy_from_slice(&c.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut patched = patch::patch(seed().clone(), 0..LEN, data);
    if patched.fix_checksums {
        fix_checksums(&mut patched.image);
    }
    let _ = read_pv_label(&mut Cursor::new(&patched.image));
});
