//! The ISO seed as blkid, isoinfo and xorriso see it, compared with cloud-localds' output,
//! and read back by our own reader.

mod common;

use std::io::Cursor;
use std::path::Path;

use cloud_init::{SeedFiles, iso_image, read_iso_file};
use common::*;

const NAMES: [&str; 3] = ["meta-data", "network-config", "user-data"];

fn files_of(seed: &SeedFiles) -> [(&'static str, &[u8]); 3] {
    [
        ("user-data", &seed.user_data),
        ("meta-data", &seed.meta_data),
        ("network-config", seed.network_config.as_deref().unwrap()),
    ]
}

fn write_iso(dir: &Path, seed: &SeedFiles) -> std::path::PathBuf {
    let path = dir.join("seed.iso");
    write(&path, &iso_image(seed, TS).unwrap());
    path
}

/// Extracts every file with xorriso and compares it with what went in.
fn assert_xorriso_extracts(iso: &Path, seed: &SeedFiles) {
    let out = iso.with_file_name("extracted");
    stdout(
        cmd(XORRISO)
            .args(["-osirrox", "on", "-indev"])
            .arg(iso)
            .args(["-extract", "/"])
            .arg(&out),
    );
    for (name, data) in files_of(seed) {
        assert_eq!(read(&out.join(name)), data, "{name} extracted by xorriso");
    }
}

#[test]
fn blkid_sees_an_iso9660_volume_labelled_cidata() {
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(dir.path(), &sample());
    let out = stdout(cmd(BLKID).arg("-p").arg(&iso));
    assert!(out.contains(r#"TYPE="iso9660""#), "{out}");
    assert!(out.contains(r#"LABEL="cidata""#), "{out}");
    // blkid's UUID for ISO 9660 is the volume creation date: ours comes from the timestamp.
    assert!(out.contains(r#"UUID="2023-11-14-22-13-20-00""#), "{out}");
}

#[test]
fn isoinfo_finds_joliet_rock_ridge_and_the_real_names() {
    let dir = tempfile::tempdir().unwrap();
    let iso = write_iso(dir.path(), &sample());
    let d = stdout(cmd(ISOINFO).arg("-d").arg("-i").arg(&iso));
    assert!(d.contains("Volume id: cidata"), "{d}");
    assert!(d.contains("Joliet with UCS level 3 found"), "{d}");
    assert!(d.contains("Rock Ridge signatures version 1 found"), "{d}");
    for flag in ["-R", "-J"] {
        let listing = stdout(cmd(ISOINFO).args(["-f", flag, "-i"]).arg(&iso));
        let names: Vec<&str> = listing.lines().collect();
        assert_eq!(
            names,
            ["/meta-data", "/network-config", "/user-data"],
            "isoinfo -f {flag}"
        );
    }
    // The primary tree's own names are level 1, as genisoimage writes them.
    let plain = stdout(cmd(ISOINFO).args(["-f", "-i"]).arg(&iso));
    assert_eq!(
        plain.lines().collect::<Vec<_>>(),
        ["/META_DAT.;1", "/NETWORK_.;1", "/USER_DAT.;1"]
    );
    // Rock Ridge modes and owners, and extraction through each tree.
    let long = stdout(cmd(ISOINFO).args(["-l", "-R", "-i"]).arg(&iso));
    assert!(long.contains("-r--------   1    0    0"), "{long}");
    assert!(long.contains("-r--r--r--   1    0    0"), "{long}");
    for flag in ["-R", "-J"] {
        let got = stdout_bytes(cmd(ISOINFO).args(["-x", "/user-data", flag, "-i"]).arg(&iso));
        assert_eq!(got, sample().user_data, "isoinfo -x {flag}");
    }
}

#[test]
fn xorriso_lists_and_extracts_byte_equal_files() {
    let dir = tempfile::tempdir().unwrap();
    let seed = sample();
    let iso = write_iso(dir.path(), &seed);
    let ls = stdout(cmd(XORRISO).arg("-indev").arg(&iso).args(["-ls", "/"]));
    let listed: Vec<&str> = ls.lines().map(|l| l.trim_matches('\'')).collect();
    assert_eq!(listed, NAMES, "{ls}");
    let pvd = stdout(cmd(XORRISO).arg("-indev").arg(&iso).arg("-pvd_info"));
    assert!(pvd.contains("Volume Id    : cidata"), "{pvd}");
    assert_xorriso_extracts(&iso, &seed);
}

#[test]
fn same_inputs_same_bytes_and_the_timestamp_shows() {
    let seed = sample();
    let a = iso_image(&seed, TS).unwrap();
    assert_eq!(a, iso_image(&seed, TS).unwrap());
    assert_ne!(a, iso_image(&seed, TS + 1).unwrap());
    let mut other = seed.clone();
    other.user_data.push(b'\n');
    assert_ne!(a, iso_image(&other, TS).unwrap());
    assert!(
        a.len().is_multiple_of(2048) && a.len() < 64 * 1024,
        "{} bytes",
        a.len()
    );
}

#[test]
fn multi_sector_and_empty_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SeedFiles {
        user_data: pattern(700 * 1024 + 123, 1),
        meta_data: pattern(2048, 2),
        network_config: Some(Vec::new()),
    };
    let iso = write_iso(dir.path(), &seed);
    assert_xorriso_extracts(&iso, &seed);
    let got = stdout_bytes(cmd(ISOINFO).args(["-x", "/USER_DAT.;1", "-i"]).arg(&iso));
    assert_eq!(got, seed.user_data, "isoinfo -x of the primary name");
    let mut dev = Cursor::new(read(&iso));
    for (name, data) in files_of(&seed) {
        assert_eq!(
            read_iso_file(&mut dev, name).unwrap().as_deref(),
            Some(data),
            "{name}"
        );
    }
}

#[test]
fn without_network_config_there_are_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SeedFiles {
        network_config: None,
        ..sample()
    };
    let iso = write_iso(dir.path(), &seed);
    let listing = stdout(cmd(ISOINFO).args(["-f", "-R", "-i"]).arg(&iso));
    assert_eq!(listing.lines().collect::<Vec<_>>(), ["/meta-data", "/user-data"]);
    let mut dev = Cursor::new(read(&iso));
    assert_eq!(read_iso_file(&mut dev, "network-config").unwrap(), None);
}

/// cloud-localds (genisoimage -joliet -rock) on the same files: same label, same file set,
/// same primary names; and our reader takes the files out of its image too.
#[test]
fn matches_cloud_localds_in_shape() {
    let dir = tempfile::tempdir().unwrap();
    let seed = sample();
    let ours = write_iso(dir.path(), &seed);
    for (name, data) in files_of(&seed) {
        write(&dir.path().join(name), data);
    }
    let theirs = dir.path().join("localds.iso");
    stdout(
        cmd(CLOUD_LOCALDS)
            .arg("--network-config")
            .arg(dir.path().join("network-config"))
            .arg(&theirs)
            .arg(dir.path().join("user-data"))
            .arg(dir.path().join("meta-data")),
    );
    let label = |iso: &Path| {
        let out = stdout(
            cmd(BLKID)
                .args(["-p", "-s", "LABEL", "-s", "TYPE", "-o", "export"])
                .arg(iso),
        );
        out.lines()
            .filter(|l| !l.starts_with("DEVNAME="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(label(&ours), label(&theirs));
    for flags in [&["-f", "-R"][..], &["-f", "-J"], &["-f"]] {
        let list = |iso: &Path| stdout(cmd(ISOINFO).args(flags).arg("-i").arg(iso));
        assert_eq!(list(&ours), list(&theirs), "isoinfo {flags:?}");
    }
    let mut dev = Cursor::new(read(&theirs));
    for (name, data) in files_of(&seed) {
        assert_eq!(
            read_iso_file(&mut dev, name).unwrap().as_deref(),
            Some(data),
            "{name} from cloud-localds"
        );
    }
}

/// A seed whose primary tree has neither Rock Ridge nor a Joliet tree (xorriso without
/// either): the reader falls back to the ISO 9660 names.
#[test]
fn reader_falls_back_to_plain_iso_names() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("user-data"), b"plain\n");
    let iso = dir.path().join("plain.iso");
    stdout(
        cmd(XORRISO)
            .args(["-rockridge", "off", "-joliet", "off", "-outdev"])
            .arg(&iso)
            .arg("-map")
            .arg(dir.path().join("user-data"))
            .arg("/user-data"),
    );
    let mut dev = std::fs::File::open(&iso).unwrap();
    assert_eq!(
        read_iso_file(&mut dev, "user-data").unwrap().as_deref(),
        Some(&b"plain\n"[..])
    );
    assert_eq!(read_iso_file(&mut dev, "meta-data").unwrap(), None);
}
