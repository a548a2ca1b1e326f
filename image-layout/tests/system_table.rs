//! The system disk's partition tables, filesystems and boot area, read back by the tools a
//! real system uses: sfdisk, sgdisk, blkid, e2fsck. Also reproducibility and sparseness.

#[path = "fixtures/support.rs"]
mod support;

use std::os::unix::fs::MetadataExt;

use image_layout::layout::Role;
use image_layout::{Size, TableKind, TreeSource, write_system_disk};
use support::*;

#[test]
fn mbr_disk_has_exactly_the_planned_partitions_and_clean_filesystems() {
    let dir = tempfile::tempdir().unwrap();
    let tree = TreeSource::Tarball(fixture_tarball(dir.path()));
    let disk = dir.path().join("disk.raw");
    let plan = plan(TableKind::Mbr, "mbr-test");
    let report = write_system_disk(&plan, &tree, &[], &disk).unwrap();
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), Size::MIB * (1 + 64 + 16));

    let j = sfdisk_json(&disk);
    let t = &j["partitiontable"];
    assert_eq!(t["label"], "dos", "{j}");
    let sig = plan.seed.u32("mbr-disk-signature");
    assert_eq!(t["id"], format!("0x{sig:08x}"), "{j}");
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{j}");
    assert_eq!(parts[0]["start"], 2048);
    assert_eq!(parts[0]["size"], 64 * 2048);
    assert_eq!(parts[0]["type"], "83");
    assert_eq!(parts[0]["bootable"], true);
    assert_eq!(parts[1]["start"], 2048 + 64 * 2048);
    assert_eq!(parts[1]["size"], 16 * 2048);
    assert_eq!(parts[1]["type"], "83");
    assert!(parts[1].get("bootable").is_none(), "{j}");

    for (p, label) in report.partitions.iter().zip(["cloudimg-rootfs", "ecs-volatile"]) {
        let b = blkid(&disk, p.start);
        assert!(b.contains("TYPE=ext4"), "{b}");
        assert!(b.contains(&format!("LABEL={label}")), "{b}");
        assert!(
            b.contains(&format!("UUID={}", p.fs_uuid.as_deref().unwrap())),
            "{b}"
        );
        e2fsck_clean(&disk, p.start);
    }
    // GRUB: boot.img's code before the table, core.img in the gap behind sector 0.
    let raw = std::fs::read(&disk).unwrap();
    let boot = std::fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap();
    assert_eq!(raw[..0x5C], boot[..0x5C]);
    assert_eq!(u64::from_le_bytes(raw[0x5C..0x64].try_into().unwrap()), 1);
    assert_eq!(&raw[510..512], &[0x55, 0xAA]);
    assert_eq!(
        u64::from_le_bytes(raw[512 + 0x1F4..512 + 0x1FC].try_into().unwrap()),
        2
    );
    let cfg = debugfs(&disk, report.partitions[0].start, "cat /boot/grub/grub.cfg");
    assert!(
        cfg.contains("root=LABEL=cloudimg-rootfs ro console=ttyS0,115200 console=tty0"),
        "{cfg}"
    );
}

#[test]
fn gpt_disk_verifies_with_sgdisk_and_names_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let tree = TreeSource::Tarball(fixture_tarball(dir.path()));
    let disk = dir.path().join("disk.raw");
    let plan = plan(TableKind::Gpt, "gpt-test");
    let report = write_system_disk(&plan, &tree, &[], &disk).unwrap();

    let v = run(tool(SGDISK).arg("-v").arg(&disk));
    assert!(v.contains("No problems found"), "{v}");
    let j = sfdisk_json(&disk);
    let t = &j["partitiontable"];
    assert_eq!(t["label"], "gpt", "{j}");
    let guid = image_layout::seed::format_uuid(&image_layout::gpt::disk_guid(&plan.seed));
    assert_eq!(t["id"].as_str().unwrap().to_lowercase(), guid);
    let parts = t["partitions"].as_array().unwrap();
    let want = [
        ("BIOS boot", "21686148-6449-6E6F-744E-656564454649", 2048, 2048),
        (
            "EFI System",
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            4096,
            64 * 2048,
        ),
        (
            "cloudimg-rootfs",
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            4096 + 64 * 2048,
            64 * 2048,
        ),
        (
            "ecs-volatile",
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            4096 + 128 * 2048,
            16 * 2048,
        ),
    ];
    assert_eq!(parts.len(), want.len(), "{j}");
    for (p, (name, ty, start, size)) in parts.iter().zip(want) {
        assert_eq!(p["name"], name, "{j}");
        assert_eq!(p["type"], ty, "{j}");
        assert_eq!(p["start"], start, "{j}");
        assert_eq!(p["size"], size, "{j}");
    }
    for (p, r) in parts.iter().zip(&report.partitions) {
        assert_eq!(p["uuid"].as_str().unwrap().to_lowercase(), r.part_uuid);
    }
    let root = report.partitions.iter().find(|p| p.role == Role::Root).unwrap();
    let vol = report
        .partitions
        .iter()
        .find(|p| p.role == Role::Volatile)
        .unwrap();
    let esp = report.partitions.iter().find(|p| p.role == Role::Esp).unwrap();
    for p in [root, vol] {
        assert!(blkid(&disk, p.start).contains(&format!("LABEL={}", p.label)));
        e2fsck_clean(&disk, p.start);
    }
    let b = blkid(&disk, esp.start);
    assert!(b.contains("TYPE=vfat") && b.contains("LABEL=EFI"), "{b}");
    let raw = std::fs::read(&disk).unwrap();
    // KERNEL_SECTOR points at the BIOS boot partition, the blocklist at the sector after it.
    assert_eq!(u64::from_le_bytes(raw[0x5C..0x64].try_into().unwrap()), 2048);
    let core = 2048 * 512;
    assert_eq!(
        u64::from_le_bytes(raw[core + 0x1F4..core + 0x1FC].try_into().unwrap()),
        2049
    );
}

#[test]
fn same_plan_tree_and_seed_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let tree = TreeSource::Tarball(fixture_tarball(dir.path()));
    for table in [TableKind::Mbr, TableKind::Gpt] {
        let mut plan = plan(table, "repro");
        let a = dir.path().join("a.raw");
        let b = dir.path().join("b.raw");
        let c = dir.path().join("c.raw");
        write_system_disk(&plan, &tree, &[], &a).unwrap();
        write_system_disk(&plan, &tree, &[], &b).unwrap();
        assert_eq!(sha256(&a), sha256(&b), "{table:?}");
        plan.seed = image_layout::Seed("other".into());
        write_system_disk(&plan, &tree, &[], &c).unwrap();
        assert_ne!(sha256(&a), sha256(&c), "{table:?}: the seed must matter");
    }
}

#[test]
fn the_disk_stays_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let tree = TreeSource::Tarball(fixture_tarball(dir.path()));
    for table in [TableKind::Mbr, TableKind::Gpt] {
        let mut plan = plan(table, "sparse");
        plan.root_size = Size::gib(4);
        plan.volatile_size = Size::gib(4);
        let disk = dir.path().join("disk.raw");
        let report = write_system_disk(&plan, &tree, &[], &disk).unwrap();
        let used = std::fs::metadata(&disk).unwrap().blocks() * 512;
        assert_eq!(used, report.used_bytes);
        assert!(report.total_bytes > 8 * Size::GIB);
        // Zeroed journals and inode tables of two 4G filesystems alone would be 256 MiB.
        assert!(used < 16 * Size::MIB, "{table:?}: {used} bytes used");
    }
}
