//! A single data disk, checked with lvm2 itself: `pvck` on the file, `pvs`/`vgs`/`lvs` on a
//! loop device, and blkid/e2fsck on the LV's byte range.

mod data_support;

use std::path::PathBuf;

use data_support::*;
use image_layout::lvm::read_pv_label;
use image_layout::write_data_disks;

#[test]
fn single_disk_is_a_pv_with_vg_permanent_and_lv_data_at_85_percent() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("data.raw");
    let report = write_data_disks(&plan("256M", false, "lvm-test"), std::slice::from_ref(&disk)).unwrap();
    assert_eq!(
        (report.extents, report.lv_extents, report.free_extents),
        (63, 53, 10)
    );
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 256 << 20);

    let headers = run(tool(PVCK)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .args(["--dump", "headers"])
        .arg(&disk));
    assert!(!headers.contains("CHECK"), "pvck found problems:\n{headers}");
    for line in [
        "label_header.crc",
        "pv_header.device_size 268435456",
        "pv_header.disk_locn[0].offset 1048576",
        "mda_header_1.start 4096",
        "# vgname permanent seqno 1",
    ] {
        assert!(headers.contains(line), "no {line:?} in\n{headers}");
    }
    let metadata = run(tool(PVCK)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .args(["--dump", "metadata"])
        .arg(&disk));
    assert!(
        metadata.contains("permanent {") && metadata.contains("extent_count = 53"),
        "{metadata}"
    );

    let lo = Loop::attach(&disk, 0, None);
    let pvs = run(lo.lvm("pvs").args([
        "--units",
        "b",
        "--nosuffix",
        "--reportformat",
        "json",
        "-o",
        "pv_name,pv_uuid,vg_name,pv_size,pe_start,pv_pe_count,pv_pe_alloc_count",
    ]));
    let pv = &report_rows(&pvs, "pv")[0];
    assert_eq!(pv["pv_name"], lo.dev.to_str().unwrap(), "{pvs}");
    assert_eq!(pv["pv_uuid"], report.pv_uuid.as_str(), "{pvs}");
    assert_eq!(pv["vg_name"], "permanent", "{pvs}");
    assert_eq!(pv["pe_start"], "1048576", "{pvs}");
    assert_eq!(
        (&pv["pv_pe_count"], &pv["pv_pe_alloc_count"]),
        (&"63".into(), &"53".into()),
        "{pvs}"
    );

    let vgs = run(lo.lvm("vgs").args([
        "--units",
        "b",
        "--nosuffix",
        "--reportformat",
        "json",
        "-o",
        "vg_name,vg_uuid,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,vg_seqno",
    ]));
    let vg = &report_rows(&vgs, "vg")[0];
    assert_eq!(vg["vg_name"], "permanent", "{vgs}");
    assert_eq!(vg["vg_uuid"], report.vg_uuid.as_str(), "{vgs}");
    assert_eq!(vg["vg_extent_size"], "4194304", "{vgs}");
    assert_eq!(
        (&vg["vg_extent_count"], &vg["vg_free_count"]),
        (&"63".into(), &"10".into()),
        "{vgs}"
    );
    assert_eq!(
        (&vg["pv_count"], &vg["lv_count"], &vg["vg_seqno"]),
        (&"1".into(), &"1".into(), &"1".into())
    );

    let lvs = run(lo.lvm("lvs").args([
        "--units",
        "b",
        "--nosuffix",
        "--reportformat",
        "json",
        "-o",
        "vg_name,lv_name,lv_uuid,lv_size,seg_start_pe,seg_size_pe,segtype,devices",
    ]));
    let lvs_rows = report_rows(&lvs, "lv");
    assert_eq!(lvs_rows.len(), 1, "{lvs}");
    let lv = &lvs_rows[0];
    assert_eq!(
        (&lv["vg_name"], &lv["lv_name"]),
        (&"permanent".into(), &"data".into()),
        "{lvs}"
    );
    assert_eq!(lv["lv_uuid"], report.lv_uuid.as_str(), "{lvs}");
    assert_eq!(lv["lv_size"], (53u64 * (4 << 20)).to_string().as_str(), "{lvs}");
    assert_eq!(
        (&lv["seg_start_pe"], &lv["seg_size_pe"]),
        (&"0".into(), &"53".into()),
        "{lvs}"
    );
    assert_eq!(lv["segtype"], "linear", "{lvs}");
    drop(lo);

    let blkid = run(tool(BLKID)
        .args(["-p", "-o", "export", "-O", &report.lv_offset.to_string()])
        .arg(&disk));
    for want in ["TYPE=ext4", "LABEL=ecs-data", &format!("UUID={}", report.fs_uuid)] {
        assert!(blkid.lines().any(|l| l == want), "no {want} in\n{blkid}");
    }
    // The whole disk is a PV to blkid as well.
    let whole = run(tool(BLKID).args(["-p", "-o", "export"]).arg(&disk));
    assert!(whole.lines().any(|l| l == "TYPE=LVM2_member"), "{whole}");

    let fsck = e2fsck_at(&disk, report.lv_offset, report.lv_size);
    assert!(fsck.contains("ecs-data: "), "{fsck}");

    let label = read_pv_label(&mut std::fs::File::open(&disk).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(lvm_dashed(&label.pv_uuid), report.pv_uuid);
    let vg = label.vg.unwrap();
    assert_eq!(
        (vg.name.as_str(), vg.id.as_str(), vg.seqno),
        ("permanent", report.vg_uuid.as_str(), 1)
    );
}

fn lvm_dashed(id: &str) -> String {
    image_layout::lvm::format_lvm_uuid(id)
}

#[test]
fn percent_and_names_follow_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("d.raw");
    let mut p = plan("128M", false, "pct");
    p.data_percent = 50;
    p.vg_name = "vg0".into();
    p.lv_name = "lv.one".into();
    let report = write_data_disks(&p, std::slice::from_ref(&disk)).unwrap();
    assert_eq!((report.extents, report.lv_extents), (31, 15));
    let lo = Loop::attach(&disk, 0, None);
    let lvs = run(lo
        .lvm("lvs")
        .args(["--reportformat", "json", "-o", "vg_name,lv_name,seg_size_pe"]));
    let lv = &report_rows(&lvs, "lv")[0];
    assert_eq!(
        (&lv["vg_name"], &lv["lv_name"], &lv["seg_size_pe"]),
        (&"vg0".into(), &"lv.one".into(), &"15".into())
    );
}

#[test]
fn same_plan_and_seed_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        write_data_disks(&plan("64M", false, seed), std::slice::from_ref(&path)).unwrap();
        sha256(&path)
    };
    let a = write("a.raw", "one");
    assert_eq!(a, write("b.raw", "one"));
    assert_ne!(a, write("c.raw", "two"));
}

#[test]
fn bad_input_is_refused_before_any_file_appears() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("data.raw");
    let out = std::slice::from_ref(&disk);
    let cases: Vec<(image_layout::DataDiskPlan, Vec<PathBuf>, &str)> = vec![
        (
            plan("1000", false, "x"),
            out.to_vec(),
            "expected a positive multiple of 512",
        ),
        (plan("8M", false, "x"), out.to_vec(), "is too small"),
        (
            plan("64M", true, "x"),
            out.to_vec(),
            "raid1 needs exactly 2 outputs",
        ),
        (
            plan("64M", false, "x"),
            vec![disk.clone(), dir.path().join("b.raw")],
            "exactly 1 output",
        ),
        (
            {
                let mut p = plan("64M", false, "x");
                p.data_percent = 101;
                p
            },
            out.to_vec(),
            "data percent 101: expected 1 to 100",
        ),
    ];
    for (p, outputs, want) in cases {
        let err = write_data_disks(&p, &outputs).unwrap_err().to_string();
        assert!(err.contains(want), "expected {want:?} in {err:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "after {err}");
    }
    // A failure while writing (no such directory) leaves nothing either.
    let err = write_data_disks(&plan("64M", false, "x"), &[dir.path().join("missing/data.raw")]).unwrap_err();
    assert!(err.to_string().contains("missing/data.raw"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The owner tag `ecs-build disk data --owner` writes is what lvm2 itself reports, read from
/// metadata alone (the agent decides on it before activating anything).
#[test]
fn vg_tags_are_read_by_vgs() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("tagged.raw");
    let mut p = plan("64M", false, "tag-test");
    p.vg_tags = vec!["ecs-appliance:another.test".into()];
    write_data_disks(&p, std::slice::from_ref(&disk)).unwrap();
    let lo = Loop::attach(&disk, 0, None);
    let vgs = run(lo
        .lvm("vgs")
        .args(["--reportformat", "json", "-o", "vg_name,vg_tags"]));
    let vg = &report_rows(&vgs, "vg")[0];
    assert_eq!(vg["vg_name"], "permanent", "{vgs}");
    assert_eq!(vg["vg_tags"], "ecs-appliance:another.test", "{vgs}");

    let mut bad = plan("64M", false, "tag-test");
    bad.vg_tags = vec!["owner is me".into()];
    let e = write_data_disks(&bad, &[dir.path().join("bad.raw")]).unwrap_err();
    assert!(e.to_string().contains("volume group tag \"owner is me\""), "{e}");
    assert!(!dir.path().join("bad.raw").exists());
}
