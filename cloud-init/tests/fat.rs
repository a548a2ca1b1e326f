//! The FAT seed as fsck.fat, blkid and mtools see it.

mod common;

use std::path::Path;

use cloud_init::{SeedFiles, fat_image};
use common::*;

const SERIAL: u32 = 0x1234_abcd;

fn extract(img: &Path, name: &str) -> Vec<u8> {
    let out = img.with_file_name(format!("out-{name}"));
    stdout(
        cmd(MCOPY)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(img)
            .arg(format!("::{name}"))
            .arg(&out),
    );
    read(&out)
}

#[test]
fn fsck_blkid_and_mcopy_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let seed = sample();
    let img = dir.path().join("seed.img");
    write(&img, &fat_image(&seed, TS, SERIAL).unwrap());
    stdout(cmd(FSCK_FAT).arg("-n").arg(&img));
    let out = stdout(cmd(BLKID).arg("-p").arg(&img));
    assert!(out.contains(r#"LABEL="cidata""#), "{out}");
    assert!(out.contains(r#"TYPE="vfat""#), "{out}");
    assert!(out.contains(r#"UUID="1234-ABCD""#), "{out}");
    assert_eq!(extract(&img, "user-data"), seed.user_data);
    assert_eq!(extract(&img, "meta-data"), seed.meta_data);
    assert_eq!(extract(&img, "network-config"), seed.network_config.unwrap());
}

#[test]
fn same_inputs_same_bytes() {
    let seed = sample();
    let a = fat_image(&seed, TS, SERIAL).unwrap();
    assert_eq!(a, fat_image(&seed, TS, SERIAL).unwrap());
    assert_ne!(a, fat_image(&seed, TS + 60, SERIAL).unwrap());
    assert_ne!(a, fat_image(&seed, TS, SERIAL + 1).unwrap());
    // Times before FAT's 1980 epoch are clamped, not wrapped into the future.
    assert_eq!(
        fat_image(&seed, 0, SERIAL).unwrap(),
        fat_image(&seed, 315_532_800, SERIAL).unwrap()
    );
}

#[test]
fn large_and_empty_files_fit_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 1, 4097, 700 * 1024 + 5, 5 << 20] {
        let seed = SeedFiles {
            user_data: pattern(size, 3),
            meta_data: pattern(size / 3, 4),
            network_config: Some(Vec::new()),
        };
        let img = dir.path().join(format!("seed-{size}.img"));
        write(&img, &fat_image(&seed, TS, SERIAL).unwrap());
        stdout(cmd(FSCK_FAT).arg("-n").arg(&img));
        assert_eq!(
            extract(&img, "user-data"),
            seed.user_data,
            "user-data of {size} bytes"
        );
        assert_eq!(
            extract(&img, "meta-data"),
            seed.meta_data,
            "meta-data of {size} bytes"
        );
        assert_eq!(extract(&img, "network-config"), b"", "empty network-config");
    }
}
