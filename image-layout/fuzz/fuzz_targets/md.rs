//! libFuzzer target for `read_superblock`: a real RAID1 member superblock from our writer,
//! patched, with its checksum made right again when the input asks.
//! Run: `cd image-layout/fuzz && cargo +nightly fuzz run md -- -malloc_limit_mb=64`.

#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use image_layout::md::{self, ArraySpec, MemberSpec, read_superblock};
use libfuzzer_sys::fuzz_target;

mod patch;

const SB: usize = 4096;

fn seed() -> &'static Vec<u8> {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        let array = ArraySpec {
            uuid: [7; 16],
            name: "any:permanent".into(),
            time: 1_700_000_000,
            raid_disks: 2,
            geometry: md::geometry(64 << 20).expect("64 MiB is a valid member"),
        };
        let member = MemberSpec {
            dev_number: 1,
            device_uuid: [9; 16],
        };
        let sb = md::superblock(&array, &member).expect("the superblock is writable");
        let mut image = vec![0u8; 8192];
        image[SB..SB + sb.len()].copy_from_slice(&sb);
        image
    })
}

fuzz_target!(|data: &[u8]| {
    let mut patched = patch::patch(seed().clone(), SB..SB + 1024, data);
    if patched.fix_checksums && patched.image.len() >= SB + 1024 {
        let c = md::checksum(&patched.image[SB..SB + 1024]);
        patched.image[SB + 216..SB + 220].copy_from_slice(&c.to_le_bytes());
    }
    let _ = read_superblock(&mut Cursor::new(&patched.image));
});
