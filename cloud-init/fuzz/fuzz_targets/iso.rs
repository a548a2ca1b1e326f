//! libFuzzer target for `read_iso_file`: a real seed from our writer, patched in its
//! descriptors and directories (sectors 16-25). ISO 9660 has no checksums to make right.
//! Run: `cd cloud-init/fuzz && cargo +nightly fuzz run iso -- -malloc_limit_mb=64`.

#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use cloud_init::{SeedFiles, iso_image, read_iso_file};
use libfuzzer_sys::fuzz_target;

#[path = "../../../image-layout/fuzz/fuzz_targets/patch.rs"]
mod patch;

const SECTOR: usize = 2048;

fn seed() -> &'static Vec<u8> {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let files = SeedFiles {
            user_data: format!("#cloud-config\n{}", "write_files: []\n".repeat(200)).into_bytes(),
            meta_data: cloud_init::meta_data("iid-fuzz", "fuzz").into_bytes(),
            network_config: Some(b"version: 2\n".to_vec()),
        };
        iso_image(&files, 1_700_000_000).expect("the seed is writable")
    })
}

fuzz_target!(|data: &[u8]| {
    let patched = patch::patch(seed().clone(), 16 * SECTOR..26 * SECTOR, data);
    for name in ["user-data", "meta-data", "network-config"] {
        let _ = read_iso_file(&mut Cursor::new(&patched.image), name);
    }
});
