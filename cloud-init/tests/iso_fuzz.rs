//! Property tests of the ISO 9660 reader (`read_iso_file`), the code the appliance agent runs
//! on whatever device says it is `cidata`. A real seed from our writer, edited (bytes flipped,
//! extents, sizes, record and name lengths overwritten with extreme values, truncated,
//! extended), and arbitrary bytes must give `Ok` or an error that says where, never a panic,
//! and never more memory than the input can fill (see `fuzz_support::peak_alloc`). The reader
//! reads the root directory only and never follows a directory record, so records pointing
//! at their own or their parent directory cannot make it loop; a test below pins that.
//!
//! Each property runs 1000 cases, a few seconds in a debug build; for a longer search:
//! `PROPTEST_CASES=100000 cargo test -p cloud-init --test iso_fuzz`.

mod fuzz_support;

use std::io::Cursor;
use std::sync::OnceLock;

use cloud_init::{SeedFiles, iso_image, read_iso_file};
use fuzz_support::edit::{Field, Width, apply, edits, put};
use fuzz_support::peak_alloc::{PeakAlloc, peak_during};
use fuzz_support::{allocation_bound, assert_error_names_a_place, config};
use proptest::prelude::*;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const SECTOR: usize = 2048;
/// Descriptors, path tables, both root directories and the Rock Ridge continuation area
/// (sectors 16-25, see the writer's layout); file data follows.
const HOT: std::ops::Range<usize> = 16 * SECTOR..26 * SECTOR;
const NAMES: [&str; 4] = ["user-data", "meta-data", "network-config", "vendor-data"];

fn files() -> SeedFiles {
    SeedFiles {
        // Longer than a sector, so that a file extent spans several.
        user_data: format!("#cloud-config\n{}", "write_files: []\n".repeat(200)).into_bytes(),
        meta_data: cloud_init::meta_data("iid-fuzz", "fuzz").into_bytes(),
        network_config: Some(b"version: 2\n".to_vec()),
    }
}

/// A seed as our writer makes it, and the offsets of the fields of its root records (in the
/// volume descriptors and in both root directories).
fn seed() -> &'static (Vec<u8>, Vec<Field>) {
    static SEED: OnceLock<(Vec<u8>, Vec<Field>)> = OnceLock::new();
    SEED.get_or_init(|| {
        let image = iso_image(&files(), 1_700_000_000).unwrap();
        assert!(image.len() > HOT.end);
        let mut fields = Vec::new();
        for descriptor in [16 * SECTOR, 17 * SECTOR] {
            let root = descriptor + 156;
            fields.extend(record_fields(root));
            let (lba, size) = (le32(&image, root + 2), le32(&image, root + 10));
            let start = lba as usize * SECTOR;
            let mut at = start;
            while at < start + size as usize {
                match image[at] as usize {
                    0 => at = (at / SECTOR + 1) * SECTOR,
                    len => {
                        fields.extend(record_fields(at));
                        // The System Use area: its first entry's signature, length byte and
                        // (in the root's SP entry) the skip count.
                        let id_len = image[at + 32] as usize;
                        let su = at + 33 + id_len + usize::from(id_len.is_multiple_of(2));
                        fields.extend([su, su + 2, su + 6].map(|at| (at, Width::U8)));
                        at += len;
                    }
                }
            }
        }
        (image, fields)
    })
}

/// Length, extent (both halves), size (both halves), flags and name length of the record at `at`.
fn record_fields(at: usize) -> [Field; 7] {
    [
        (at, Width::U8),
        (at + 2, Width::Le32),
        (at + 6, Width::Be32),
        (at + 10, Width::Le32),
        (at + 14, Width::Be32),
        (at + 25, Width::U8),
        (at + 32, Width::U8),
    ]
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads every seed name out of `image`: each answer is a file no larger than the image, no
/// file, or an error naming a place, within the allocation bound.
fn check(image: &[u8]) -> Result<(), TestCaseError> {
    for name in NAMES {
        let mut dev = Cursor::new(image);
        let (got, peak) = peak_during(|| read_iso_file(&mut dev, name));
        prop_assert!(
            peak <= allocation_bound(image.len()),
            "reading {name} from {} bytes held {peak} bytes at once",
            image.len()
        );
        match got {
            Ok(Some(data)) => prop_assert!(data.len() <= image.len()),
            Ok(None) => {}
            Err(e) => assert_error_names_a_place(&e.to_string()),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn edited_seeds_read_or_fail_cleanly(
        edits in edits(seed().1.clone(), HOT, seed().0.len())
    ) {
        let mut image = seed().0.clone();
        apply(&mut image, &edits);
        check(&image)?;
    }

    /// Arbitrary bytes, with "CD001" planted at sector 16 in some cases so that the reader
    /// goes on to arbitrary root records.
    #[test]
    fn arbitrary_bytes_read_or_fail_cleanly(
        mut image in proptest::collection::vec(any::<u8>(), 0..30 * SECTOR),
        plant in any::<bool>(),
    ) {
        if plant {
            put(&mut image, 16 * SECTOR, b"\x01CD001\x01");
        }
        check(&image)?;
    }
}

#[test]
fn the_unedited_seed_reads_back() {
    let files = files();
    let image = &seed().0;
    for (name, want) in [
        ("user-data", Some(&files.user_data)),
        ("meta-data", Some(&files.meta_data)),
        ("network-config", files.network_config.as_ref()),
        ("vendor-data", None),
    ] {
        let got = read_iso_file(&mut Cursor::new(image), name).unwrap();
        assert_eq!(got.as_ref(), want, "{name}");
    }
    check(image).unwrap();
}

/// The meter the properties rely on sees a reservation that is never written to.
#[test]
fn the_allocation_meter_sees_a_large_reservation() {
    let (v, peak) = peak_during(|| Vec::<u8>::with_capacity(1 << 30));
    drop(v);
    assert!(peak >= 1 << 30, "peak {peak}");
    assert!(peak > allocation_bound(64 << 10));
}

/// user-data's record in both root directories turned into a directory whose extent is the
/// root directory itself (a cycle): the reader does not follow it, and finds no user-data.
#[test]
fn a_record_pointing_at_its_own_directory_is_not_followed() {
    let (image, _) = seed();
    let mut image = image.clone();
    let mut cycles = 0;
    for descriptor in [16 * SECTOR, 17 * SECTOR] {
        let root = descriptor + 156;
        let (lba, size) = (le32(&image, root + 2), le32(&image, root + 10));
        let start = lba as usize * SECTOR;
        let mut at = start;
        while at < start + size as usize && image[at] != 0 {
            let len = image[at] as usize;
            let id_len = image[at + 32] as usize;
            let id = &image[at + 33..at + 33 + id_len];
            // Primary: `USER_DAT.;1`; Joliet: "user-data" in UCS-2.
            if id.starts_with(b"USER_DAT") || id.starts_with(&[0, b'u', 0, b's']) {
                image[at + 2..at + 6].copy_from_slice(&lba.to_le_bytes());
                image[at + 6..at + 10].copy_from_slice(&lba.to_be_bytes());
                image[at + 10..at + 14].copy_from_slice(&size.to_le_bytes());
                image[at + 14..at + 18].copy_from_slice(&size.to_be_bytes());
                image[at + 25] |= 0x02;
                cycles += 1;
            }
            at += len;
        }
    }
    assert_eq!(cycles, 2);
    assert_eq!(
        read_iso_file(&mut Cursor::new(&image), "user-data").unwrap(),
        None
    );
    assert_eq!(
        read_iso_file(&mut Cursor::new(&image), "meta-data").unwrap(),
        Some(files().meta_data)
    );
}
