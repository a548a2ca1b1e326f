//! A RAID1 pair of data disks: `mdadm --examine` on each member, and the PV, VG, LV and
//! ext4 inside the md data area seen by lvm2, blkid and e2fsck through a loop device over
//! that range (the host has no md driver to assemble the array).

mod data_support;

use std::io::Read;
use std::path::Path;

use data_support::*;
use image_layout::md::read_superblock;
use image_layout::write_data_disks;

fn examine(member: &Path) -> String {
    run(tool(MDADM).arg("--examine").arg(member))
}

fn field<'a>(examine: &'a str, key: &str) -> &'a str {
    examine
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in\n{examine}"))
}

#[test]
fn raid1_members_carry_one_clean_array_with_the_pv_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let members = [dir.path().join("a.raw"), dir.path().join("b.raw")];
    let report = write_data_disks(&plan("256M", true, "raid-test"), &members).unwrap();
    let array = report.array.clone().unwrap();
    assert_eq!(array.data_offset, 2048 * 512);
    assert_eq!(report.pv_offset, array.data_offset);

    let mut device_uuids = Vec::new();
    for (role, member) in members.iter().enumerate() {
        let ex = examine(member);
        assert_eq!(field(&ex, "Magic"), "a92b4efc", "{ex}");
        assert_eq!(field(&ex, "Version"), "1.2", "{ex}");
        assert_eq!(field(&ex, "Raid Level"), "raid1", "{ex}");
        assert_eq!(field(&ex, "Raid Devices"), "2", "{ex}");
        assert_eq!(field(&ex, "Array UUID"), array.uuid, "{ex}");
        assert_eq!(field(&ex, "Name"), "any:permanent", "{ex}");
        assert_eq!(field(&ex, "State"), "clean", "{ex}");
        assert_eq!(field(&ex, "Data Offset"), "2048 sectors", "{ex}");
        assert_eq!(field(&ex, "Super Offset"), "8 sectors", "{ex}");
        assert!(field(&ex, "Checksum").ends_with("- correct"), "{ex}");
        assert_eq!(field(&ex, "Device Role"), format!("Active device {role}"), "{ex}");
        assert!(field(&ex, "Array State").starts_with("AA"), "{ex}");
        assert_eq!(field(&ex, "Events"), "0", "{ex}");
        assert!(
            field(&ex, "Array Size").starts_with(&format!("{} KiB", array.size / 1024)),
            "{ex}"
        );
        device_uuids.push(field(&ex, "Device UUID").to_string());

        let sb = read_superblock(&mut std::fs::File::open(member).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(sb.array_uuid_string(), array.uuid);
        assert_eq!((sb.role, sb.raid_disks, sb.level), (role as u16, 2, 1));
        assert!(sb.clean());

        let blkid = run(tool(BLKID).args(["-p", "-o", "export"]).arg(member));
        assert!(blkid.lines().any(|l| l == "TYPE=linux_raid_member"), "{blkid}");
        let blkid = run(tool(BLKID)
            .args(["-p", "-o", "export", "-O", &report.lv_offset.to_string()])
            .arg(member));
        assert!(
            blkid.lines().any(|l| l == "LABEL=ecs-data") && blkid.lines().any(|l| l == "TYPE=ext4"),
            "{blkid}"
        );
    }
    assert_ne!(device_uuids[0], device_uuids[1]);
    assert_eq!(device_uuids, array.device_uuids);

    // What the md device would show: identical on both members.
    assert!(
        same_range(&members[0], &members[1], array.data_offset, array.size),
        "the md data areas differ"
    );

    let md = Loop::attach(&members[0], array.data_offset, Some(array.size));
    let headers = run(tool(PVCK)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .args(["--dump", "headers"])
        .arg(&md.dev));
    assert!(!headers.contains("CHECK"), "pvck found problems:\n{headers}");
    assert!(
        headers.contains(&format!("pv_header.device_size {}", array.size)),
        "{headers}"
    );
    let lvs = run(md.lvm("lvs").args([
        "--units",
        "b",
        "--nosuffix",
        "--reportformat",
        "json",
        "-o",
        "vg_name,lv_name,seg_size_pe,vg_extent_count,vg_free_count,lv_size",
    ]));
    let lv = &report_rows(&lvs, "lv")[0];
    assert_eq!(
        (&lv["vg_name"], &lv["lv_name"]),
        (&"permanent".into(), &"data".into()),
        "{lvs}"
    );
    let (all, data) = (report.extents.to_string(), report.lv_extents.to_string());
    assert_eq!(lv["vg_extent_count"], all.as_str(), "{lvs}");
    assert_eq!(lv["seg_size_pe"], data.as_str(), "{lvs}");
    assert_eq!(
        lv["vg_free_count"],
        report.free_extents.to_string().as_str(),
        "{lvs}"
    );
    assert_eq!(lv["lv_size"], report.lv_size.to_string().as_str(), "{lvs}");
    drop(md);

    e2fsck_at(&members[1], report.lv_offset, report.lv_size);
}

/// Compares `len` bytes at `offset` of two files.
fn same_range(a: &Path, b: &Path, offset: u64, len: u64) -> bool {
    let open = |p: &Path| {
        let mut f = std::fs::File::open(p).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).unwrap();
        f.take(len)
    };
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

#[test]
fn raid1_pair_is_reproducible_and_members_differ_only_in_their_superblock() {
    let dir = tempfile::tempdir().unwrap();
    let write = |sub: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        let m = [d.join("a.raw"), d.join("b.raw")];
        write_data_disks(&plan("64M", true, "same"), &m).unwrap();
        [sha256(&m[0]), sha256(&m[1])]
    };
    let first = write("1");
    assert_eq!(first, write("2"));
    assert_ne!(first[0], first[1]);
}
