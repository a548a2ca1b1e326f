//! Our PV next to one made by lvm2 itself: `pvcreate --uuid` with our PV UUID, `vgcreate`,
//! and `lvcreate -l 85%VG` without device-mapper (`--driverloaded n -an`), on a loop device
//! of the same size. The label sectors must be identical byte for byte, and the metadata
//! texts equal once the values that are ours to choose (ids, times, hosts, comments, seqno)
//! are left out.

mod data_support;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use data_support::*;
use image_layout::lvm::read_pv_label;
use image_layout::write_data_disks;

fn sector(path: &Path, n: u64) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(n * 512)).unwrap();
    let mut b = vec![0u8; 512];
    f.read_exact(&mut b).unwrap();
    b
}

/// The metadata text without what differs by choice rather than by format.
fn normalised(text: &str) -> Vec<String> {
    const CHOSEN: &[&str] = &[
        "id = ",
        "device = ",
        "seqno = ",
        "creation_time = ",
        "creation_host = ",
        "description = ",
        "#",
    ];
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !CHOSEN.iter().any(|c| l.starts_with(c)))
        .map(String::from)
        .collect()
}

#[test]
fn label_and_metadata_match_what_lvm2_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.raw");
    let report = write_data_disks(&plan("256M", false, "oracle"), std::slice::from_ref(&ours)).unwrap();

    let theirs = dir.path().join("theirs.raw");
    std::fs::File::create(&theirs)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    {
        let lo = Loop::attach_rw(&theirs);
        run(lo
            .lvm("pvcreate")
            .args(["--norestorefile", "--uuid", &report.pv_uuid])
            .arg(&lo.dev));
        run(lo.lvm("vgcreate").arg("permanent").arg(&lo.dev));
        run(lo.lvm("lvcreate").args([
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-Wn",
            "-l",
            "85%VG",
            "-n",
            "data",
            "permanent",
        ]));
    }

    assert_eq!(
        sector(&ours, 1),
        sector(&theirs, 1),
        "label sectors differ (label_header + pv_header)"
    );

    let read = |p: &Path| {
        read_pv_label(&mut std::fs::File::open(p).unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("no PV label on {}", p.display()))
    };
    let (a, b) = (read(&ours), read(&theirs));
    assert_eq!(
        (a.pv_uuid, a.device_size, a.pe_start, a.mda),
        (b.pv_uuid, b.device_size, b.pe_start, b.mda)
    );
    let (ta, tb) = (a.vg.unwrap().text, b.vg.unwrap().text);
    let na = normalised(&ta);
    for line in [
        "pe_count = 63",
        "extent_count = 53",
        "extent_size = 8192",
        "type = \"striped\"",
    ] {
        assert!(na.iter().any(|l| l == line), "no {line:?} in\n{ta}");
    }
    assert_eq!(na, normalised(&tb), "ours:\n{ta}\ntheirs:\n{tb}");
}
