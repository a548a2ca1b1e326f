//! Files beside NoCloud's own on the seed (`iso_image_with`, `fat_image_with`), as isoinfo,
//! xorriso, mtools and our reader see them; a name that would shadow a NoCloud file is refused.

mod common;

use std::io::Cursor;

use cloud_init::{SeedError, fat_image_with, iso_image_with, read_iso_file};
use common::*;

#[test]
fn iso_carries_the_extra_file_byte_for_byte_readable_by_root_only() {
    let dir = tempfile::tempdir().unwrap();
    let seed = sample();
    let env = pattern(5000, 7);
    let image = iso_image_with(&seed, &[("env.yml", &env)], TS).unwrap();
    let iso = dir.path().join("seed.iso");
    write(&iso, &image);
    for flag in ["-R", "-J"] {
        let got = stdout_bytes(cmd(ISOINFO).args(["-x", "/env.yml", flag, "-i"]).arg(&iso));
        assert_eq!(got, env, "isoinfo -x /env.yml {flag}");
    }
    // NoCloud's files are unchanged by the extra one.
    let got = stdout_bytes(cmd(ISOINFO).args(["-x", "/user-data", "-R", "-i"]).arg(&iso));
    assert_eq!(got, seed.user_data);
    let listing = stdout(cmd(ISOINFO).args(["-l", "-R", "-i"]).arg(&iso));
    let line = listing
        .lines()
        .find(|l| l.trim_end().ends_with(" env.yml"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.starts_with("-r--------"), "{line}");
    let out = dir.path().join("extracted");
    stdout(
        cmd(XORRISO)
            .args(["-osirrox", "on", "-indev"])
            .arg(&iso)
            .args(["-extract", "/"])
            .arg(&out),
    );
    assert_eq!(read(&out.join("env.yml")), env);
    assert_eq!(
        read_iso_file(&mut Cursor::new(image), "env.yml").unwrap(),
        Some(env)
    );
}

#[test]
fn fat_carries_the_extra_file_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let env = pattern(70_000, 9);
    let img = dir.path().join("seed.img");
    write(
        &img,
        &fat_image_with(&sample(), &[("env.yml", &env)], TS, 1).unwrap(),
    );
    stdout(cmd(FSCK_FAT).arg("-n").arg(&img));
    let out = dir.path().join("env.yml");
    stdout(
        cmd(MCOPY)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&img)
            .arg("::env.yml")
            .arg(&out),
    );
    assert_eq!(read(&out), env);
}

#[test]
fn an_extra_file_named_like_a_nocloud_file_is_refused() {
    for name in ["user-data", "META-DATA", "network-config"] {
        let iso = iso_image_with(&sample(), &[(name, b"x")], TS).unwrap_err();
        assert!(
            matches!(iso, SeedError::NameClash { second, .. } if second == name),
            "{iso}"
        );
        let fat = fat_image_with(&sample(), &[(name, b"x")], TS, 1).unwrap_err();
        assert!(matches!(fat, SeedError::NameClash { .. }), "{fat}");
    }
}
