//! Property tests of the LVM label reader (`read_pv_label`) and the md superblock reader
//! (`read_superblock`), which the appliance agent runs on disks it did not write. Real data
//! disks from `write_data_disks` (a plain PV, and a RAID1 member with the PV in its data
//! area), edited (bytes flipped, sizes, offsets and counts overwritten with extreme values,
//! truncated, extended; checksums made right again in three cases of four so that the edits reach
//! past them), and arbitrary bytes must give `Ok` or an error that says where, never a panic,
//! and never more memory than the input can fill, whatever a metadata area or text claims
//! (see `fuzz_support::peak_alloc`). Every loop in the readers is bounded by a sector.
//!
//! Each property runs 1000 cases, a few seconds in a debug build; for a longer search:
//! `PROPTEST_CASES=100000 cargo test -p image-layout --test reader_fuzz`.

// The allocation meter and the edits are cloud-init's: both crates' readers are measured and
// edited the same way.
#[path = "../../cloud-init/tests/fuzz_support/mod.rs"]
mod fuzz_support;

mod data_support;

use std::io::{Cursor, Read};
use std::sync::OnceLock;

use fuzz_support::edit::{Edit, Field, Width, apply, edits, put, set};
use fuzz_support::peak_alloc::{PeakAlloc, peak_during};
use fuzz_support::{allocation_bound, assert_error_names_a_place, config};
use image_layout::lvm::{LvmReadError, PvLabel, crc, read_pv_label};
use image_layout::md::{self, read_superblock};
use image_layout::write_data_disks;
use proptest::prelude::*;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Where our writer puts the label sector, the metadata area header and its text.
const LABEL: usize = 512;
const MDA: usize = 4096;
const TEXT: usize = MDA + 512;
/// The md 1.2 superblock and the 1 KiB the reader looks at.
const SB: usize = 4096;
const SB_END: usize = SB + 1024;

struct Seeds {
    /// The first MiB of a plain data disk: label, metadata area and text.
    pv: Vec<u8>,
    /// The first 2 MiB of a RAID1 member: superblock, then the PV in the data area at 1 MiB.
    member: Vec<u8>,
    /// Length of the metadata text (with its NUL).
    text_len: usize,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.raw");
        write_data_disks(
            &data_support::plan("64M", false, "fuzz"),
            std::slice::from_ref(&plain),
        )
        .unwrap();
        let members = [dir.path().join("a.raw"), dir.path().join("b.raw")];
        let report = write_data_disks(&data_support::plan("64M", true, "fuzz"), &members).unwrap();
        assert_eq!(report.pv_offset, 1 << 20);
        let head = |path, len| {
            let mut buf = Vec::new();
            std::fs::File::open(path)
                .unwrap()
                .take(len)
                .read_to_end(&mut buf)
                .unwrap();
            buf
        };
        let pv = head(&plain, 1 << 20);
        let text_len = u64::from_le_bytes(pv[MDA + 48..MDA + 56].try_into().unwrap()) as usize;
        Seeds {
            pv,
            member: head(&members[0], 2 << 20),
            text_len,
        }
    })
}

/// The sizes, offsets and counts of the label sector (its sector number, the pv_header's
/// offset, the device size, the data and metadata area lists) and of the metadata area header
/// (its own start and size, the text's offset and size). CRCs and magics are left to flips.
fn lvm_fields() -> Vec<Field> {
    let label = [(8, Width::Le64), (20, Width::Le32)]
        .into_iter()
        .chain((64..=128).step_by(8).map(|o| (o, Width::Le64)))
        .map(|(o, w)| (LABEL + o, w));
    let mda = [24, 32, 40, 48, 64, 72].map(|o| (MDA + o, Width::Le64));
    label.chain(mda).collect()
}

/// Where the areas are and how large: the label's first data area and metadata area, and
/// the metadata area header's own start and size and its text's offset and size. The
/// arithmetic is on these, in combination: one property sets only them.
fn lvm_geometry() -> Vec<Field> {
    [
        LABEL + 72,
        LABEL + 80,
        LABEL + 104,
        LABEL + 112,
        MDA + 24,
        MDA + 32,
        MDA + 40,
        MDA + 48,
    ]
    .map(|at| (at, Width::Le64))
    .to_vec()
}

/// The version, geometry, device number and role count of the superblock, and the first roles.
fn md_fields() -> Vec<Field> {
    let mut fields: Vec<Field> = [4, 8, 72, 92, 160, 188, 220]
        .map(|o| (o, Width::Le32))
        .into_iter()
        .chain([80, 128, 136, 144, 200, 208].map(|o| (o, Width::Le64)))
        .chain([186, 256, 258].map(|o| (o, Width::Le16)))
        .collect();
    for f in &mut fields {
        f.0 += SB;
    }
    fields
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Makes the CRCs of an (edited) PV right again, as far as the image still holds them: the
/// text's (recorded in the header), the header's, and every label sector's.
fn fix_lvm_checksums(image: &mut [u8], base: usize) {
    let mda = base + MDA;
    if image.len() >= mda + 512 {
        let (offset, size) = (le64(image, mda + 40), le64(image, mda + 48));
        let text = usize::try_from(offset)
            .ok()
            .and_then(|o| mda.checked_add(o))
            .and_then(|s| Some(s..s.checked_add(usize::try_from(size).ok()?)?));
        if let Some(text) = text.filter(|t| t.end <= image.len()) {
            let c = crc(&image[text]);
            put(image, mda + 56, &c.to_le_bytes());
        }
        let c = crc(&image[mda + 4..mda + 512]);
        put(image, mda, &c.to_le_bytes());
    }
    for sector in 0..4 {
        let s = base + sector * 512;
        if image.get(s..s + 8) == Some(b"LABELONE") && image.len() >= s + 512 {
            let c = crc(&image[s + 20..s + 512]);
            put(image, s + 16, &c.to_le_bytes());
        }
    }
}

/// Makes the superblock checksum right again, if the image still holds the superblock.
fn fix_md_checksum(image: &mut [u8]) {
    if image.len() >= SB_END {
        let c = md::checksum(&image[SB..SB_END]);
        put(image, SB + 216, &c.to_le_bytes());
    }
}

/// Reads the PV label of `image`: a label whose metadata text is no larger than the image, no
/// label, or an error naming a place, within the allocation bound.
fn check_lvm(image: &[u8]) -> Result<(), TestCaseError> {
    let mut dev = Cursor::new(image);
    let (got, peak) = peak_during(|| read_pv_label(&mut dev));
    prop_assert!(
        peak <= allocation_bound(image.len()),
        "reading the PV label of {} bytes held {peak} bytes at once",
        image.len()
    );
    match got {
        Ok(Some(label)) => {
            if let Some(vg) = label.vg {
                prop_assert!(vg.text.len() <= image.len());
            }
        }
        Ok(None) => {}
        Err(e) => assert_error_names_a_place(&e.to_string()),
    }
    Ok(())
}

/// Reads the superblock of `image`, then the PV where it says the data starts, as the agent
/// does with a RAID1 member.
fn check_md(image: &[u8]) -> Result<(), TestCaseError> {
    let mut dev = Cursor::new(image);
    let (got, peak) = peak_during(|| read_superblock(&mut dev));
    prop_assert!(
        peak <= allocation_bound(image.len()),
        "reading the md superblock of {} bytes held {peak} bytes at once",
        image.len()
    );
    match got {
        Ok(Some(sb)) => {
            let data = sb
                .data_offset
                .checked_mul(md::SECTOR)
                .and_then(|o| usize::try_from(o).ok())
                .and_then(|o| image.get(o..));
            if let Some(data) = data {
                check_lvm(data)?;
            }
        }
        Ok(None) => {}
        Err(e) => assert_error_names_a_place(&e.to_string()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn edited_pvs_read_or_fail_cleanly(
        edits in edits(lvm_fields(), 0..TEXT + seeds().text_len + 512, seeds().pv.len()),
        fix in proptest::bool::weighted(0.75),
    ) {
        let mut image = seeds().pv.clone();
        apply(&mut image, &edits);
        if fix {
            fix_lvm_checksums(&mut image, 0);
        }
        check_lvm(&image)?;
    }

    #[test]
    fn pvs_with_extreme_area_geometry_read_or_fail_cleanly(
        edits in proptest::collection::vec(set(lvm_geometry()), 1..=4),
    ) {
        let mut image = seeds().pv.clone();
        apply(&mut image, &edits);
        fix_lvm_checksums(&mut image, 0);
        check_lvm(&image)?;
    }

    #[test]
    fn edited_raid_members_read_or_fail_cleanly(
        edits in edits(md_fields(), SB..SB_END, seeds().member.len()),
        fix in proptest::bool::weighted(0.75),
    ) {
        let mut image = seeds().member.clone();
        apply(&mut image, &edits);
        if fix {
            fix_md_checksum(&mut image);
        }
        check_md(&image)?;
    }

    /// Arbitrary bytes, in some cases with a label (and a metadata area magic) planted and
    /// the checksums made right, so that the reader goes on to arbitrary headers.
    #[test]
    fn arbitrary_bytes_as_a_pv_read_or_fail_cleanly(
        mut image in proptest::collection::vec(any::<u8>(), 0..16 << 10),
        plant in any::<bool>(),
    ) {
        if plant {
            put(&mut image, LABEL, b"LABELONE\x01\0\0\0\0\0\0\0");
            put(&mut image, LABEL + 24, b"LVM2 001");
            put(&mut image, MDA + 4, b" LVM2 x[5A%r0N*>");
            fix_lvm_checksums(&mut image, 0);
        }
        check_lvm(&image)?;
    }

    #[test]
    fn arbitrary_bytes_as_a_raid_member_read_or_fail_cleanly(
        mut image in proptest::collection::vec(any::<u8>(), 0..8 << 10),
        plant in any::<bool>(),
    ) {
        if plant {
            put(&mut image, SB, &md::MAGIC.to_le_bytes());
            put(&mut image, SB + 4, &1u32.to_le_bytes());
            put(&mut image, SB + 144, &md::SUPER_OFFSET_SECTORS.to_le_bytes());
            fix_md_checksum(&mut image);
        }
        check_md(&image)?;
    }
}

#[test]
fn the_unedited_disks_read_back() {
    let seeds = seeds();
    let label = read_pv_label(&mut Cursor::new(&seeds.pv)).unwrap().unwrap();
    assert_eq!(label.vg.unwrap().name, "permanent");
    let sb = read_superblock(&mut Cursor::new(&seeds.member)).unwrap().unwrap();
    assert_eq!(sb.name, "any:permanent");
    let inside = &seeds.member[(sb.data_offset * md::SECTOR) as usize..];
    assert!(read_pv_label(&mut Cursor::new(inside)).unwrap().is_some());
    check_lvm(&seeds.pv).unwrap();
    check_md(&seeds.member).unwrap();
}

fn set_at(at: usize, width: Width, value: u64) -> Edit {
    Edit::Set { at, width, value }
}

/// The real PV with `edits` and its checksums made right, read, with the peak allocation.
fn read_edited_pv(edits: &[Edit]) -> (Result<Option<PvLabel>, LvmReadError>, usize) {
    let mut image = seeds().pv.clone();
    apply(&mut image, edits);
    fix_lvm_checksums(&mut image, 0);
    let mut dev = Cursor::new(&image);
    peak_during(|| read_pv_label(&mut dev))
}

/// Found by `pvs_with_extreme_area_geometry_read_or_fail_cleanly`: the reader reserved the
/// text's claimed size up front (here 2 GiB; with larger claims the process aborted).
#[test]
fn lvm_text_of_2_gib_in_a_metadata_area_of_u64_max_bytes_is_refused_unread() {
    let (got, peak) = read_edited_pv(&[
        set_at(LABEL + 112, Width::Le64, u64::MAX),
        set_at(MDA + 48, Width::Le64, u64::from(i32::MAX as u32)),
    ]);
    let err = got.unwrap_err().to_string();
    assert!(
        err.contains("is 2147483647 bytes, more than the 16777216"),
        "{err}"
    );
    assert!(peak < 64 << 10, "held {peak} bytes");
}

/// The same reservation below the refusal size: only what the device holds is read.
#[test]
fn lvm_text_of_15_mib_on_a_1_mib_device_reads_only_what_is_there() {
    let (got, peak) = read_edited_pv(&[
        set_at(LABEL + 112, Width::Le64, u64::MAX),
        set_at(MDA + 48, Width::Le64, 15 << 20),
    ]);
    let err = got.unwrap_err().to_string();
    assert!(
        err.contains("metadata text at byte 4608 (15728640 bytes) cut short"),
        "{err}"
    );
    assert!(peak <= 4 << 20, "held {peak} bytes");
}

/// Found by the same property: text offset + metadata area start overflowed (a panic).
#[test]
fn lvm_text_offset_near_u64_max_in_a_metadata_area_of_u64_max_bytes_is_refused() {
    let (got, _) = read_edited_pv(&[
        set_at(LABEL + 112, Width::Le64, u64::MAX),
        set_at(MDA + 40, Width::Le64, u64::MAX - 1),
    ]);
    let err = got.unwrap_err().to_string();
    assert!(err.contains("lies past 2^64 bytes"), "{err}");
}

/// Found by `edited_pvs_read_or_fail_cleanly`: these errors said what but not where.
#[test]
fn lvm_damage_is_refused_naming_its_sector_or_byte() {
    let text_byte = |at: usize, value: u8| set_at(TEXT + at, Width::U8, u64::from(value));
    for (edit, want) in [
        (
            set_at(LABEL + 72, Width::Le64, 0),
            "LVM pv_header in sector 1 lists no data area",
        ),
        (
            set_at(LABEL + 20, Width::Le32, 464),
            "LVM pv_header area list runs past the end of the label sector (1)",
        ),
        (
            set_at(LABEL + 24, Width::U8, u64::from(b'M')),
            "LVM label type \"MVM2 001\" in sector 1, expected \"LVM2 001\"",
        ),
        (
            set_at(MDA + 48, Width::Le64, 1),
            "LVM metadata text at byte 4608: expected `<vgname> {` first",
        ),
        (
            text_byte(0, 0xff),
            "LVM metadata text at byte 4608 is not UTF-8 (at its byte 0)",
        ),
        (
            text_byte(12, b'x'),
            "LVM metadata text of VG \"permanent\" at byte 4608: expected `id` and `seqno`",
        ),
    ] {
        let (got, _) = read_edited_pv(std::slice::from_ref(&edit));
        match got {
            Err(e) => assert_eq!(e.to_string(), want, "{edit:?}"),
            Ok(label) => panic!("{edit:?} read as {label:?}"),
        }
    }
}
