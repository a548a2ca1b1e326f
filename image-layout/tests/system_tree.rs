//! The root filesystem's contents: a tarball's and a directory's entries with their owners,
//! modes and symlinks, the caller's extra files over them, read back with debugfs; and the
//! errors for input that cannot work, with nothing left under the output name.

#[path = "fixtures/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use image_layout::plan::{ExtraFile, ExtraKind};
use image_layout::{Size, SystemDiskError, TableKind, TreeSource, write_system_disk};
use support::*;

const ROOT: u64 = 1 << 20;

fn extra(path: &str, kind: ExtraKind, mode: u32, uid: u32, gid: u32) -> ExtraFile {
    ExtraFile {
        path: path.into(),
        kind,
        mode,
        uid,
        gid,
    }
}

#[test]
fn tarball_entries_and_extras_round_trip_with_owners_modes_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let tree = TreeSource::Tarball(fixture_tarball(dir.path()));
    let host_file = dir.path().join("agent");
    std::fs::write(&host_file, b"#!/bin/sh\necho agent\n").unwrap();
    let extras = [
        // Replaces the tarball's /etc/hostname.
        extra(
            "/etc/hostname",
            ExtraKind::Bytes(b"appliance\n".to_vec()),
            0o644,
            0,
            0,
        ),
        extra("/usr/local/bin/agent", ExtraKind::File(host_file), 0o755, 0, 0),
        extra("/var/lib/app", ExtraKind::Dir, 0o700, 1234, 5678),
        extra(
            "/vmlinuz",
            ExtraKind::Symlink("boot/vmlinuz-test".into()),
            0o777,
            0,
            0,
        ),
        // Through the tarball's /bin -> usr/bin symlink: lands in /usr/bin.
        extra("/bin/tool", ExtraKind::Bytes(b"t".to_vec()), 0o750, 0, 42),
    ];
    let disk = dir.path().join("disk.raw");
    write_system_disk(&plan(TableKind::Mbr, "tree"), &tree, &extras, &disk).unwrap();
    e2fsck_clean(&disk, ROOT);

    assert_eq!(stat(&disk, ROOT, "/usr/bin/su"), (0o4755, 0, 0, "regular".into()));
    assert_eq!(
        stat(&disk, ROOT, "/home/user"),
        (0o750, 1234, 5678, "directory".into())
    );
    assert_eq!(
        stat(&disk, ROOT, "/home/user/file"),
        (0o640, 1234, 5678, "regular".into())
    );
    assert_eq!(stat(&disk, ROOT, "/bin").3, "symlink");
    assert!(debugfs(&disk, ROOT, "stat /bin").contains("Fast link dest: \"usr/bin\""));
    assert!(debugfs(&disk, ROOT, "stat /home/user/link").contains("Fast link dest: \"../etc/hostname\""));
    let long = format!("/deep/{}/file", "d".repeat(120));
    assert_eq!(debugfs(&disk, ROOT, &format!("cat {long}")), "long\n");

    assert_eq!(debugfs(&disk, ROOT, "cat /etc/hostname"), "appliance\n");
    assert_eq!(stat(&disk, ROOT, "/usr/local"), (0o755, 0, 0, "directory".into()));
    assert_eq!(
        stat(&disk, ROOT, "/usr/local/bin/agent"),
        (0o755, 0, 0, "regular".into())
    );
    assert_eq!(
        debugfs(&disk, ROOT, "cat /usr/local/bin/agent"),
        "#!/bin/sh\necho agent\n"
    );
    assert_eq!(
        stat(&disk, ROOT, "/var/lib/app"),
        (0o700, 1234, 5678, "directory".into())
    );
    assert!(debugfs(&disk, ROOT, "stat /vmlinuz").contains("Fast link dest: \"boot/vmlinuz-test\""));
    assert_eq!(
        stat(&disk, ROOT, "/usr/bin/tool"),
        (0o750, 0, 42, "regular".into())
    );
    // The grub.cfg added for the boot, and the file times from the plan.
    assert!(debugfs(&disk, ROOT, "cat /boot/grub/grub.cfg").contains("root=LABEL=cloudimg-rootfs"));
    assert!(debugfs(&disk, ROOT, "stat /etc/hostname").contains("mtime: 0x6553f100"));

    // rdump gives the whole tree back as files.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    debugfs(&disk, ROOT, &format!("rdump /home {}", out.display()));
    assert_eq!(
        std::fs::read_to_string(out.join("home/user/file")).unwrap(),
        "owned by 1234:5678\n"
    );
}

#[test]
fn directory_tree_keeps_modes_symlinks_and_hardlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
    std::fs::write(root.join("etc/ssh/key"), "secret").unwrap();
    std::fs::set_permissions(root.join("etc/ssh/key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(root.join("etc/a"), "same inode").unwrap();
    std::fs::hard_link(root.join("etc/a"), root.join("etc/b")).unwrap();
    std::os::unix::fs::symlink("ssh/key", root.join("etc/keylink")).unwrap();
    let disk = dir.path().join("disk.raw");
    write_system_disk(&plan(TableKind::Mbr, "dir"), &TreeSource::Dir(root), &[], &disk).unwrap();
    e2fsck_clean(&disk, ROOT);
    let me = my_ids();
    assert_eq!(
        stat(&disk, ROOT, "/etc/ssh/key"),
        (0o600, me.0, me.1, "regular".into())
    );
    assert_eq!(debugfs(&disk, ROOT, "cat /etc/b"), "same inode");
    let ino = |p: &str| {
        debugfs(&disk, ROOT, &format!("stat {p}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(ino("/etc/a"), ino("/etc/b"));
    assert!(debugfs(&disk, ROOT, "stat /etc/keylink").contains("Fast link dest: \"ssh/key\""));
}

/// The owner new files of this process get on the host.
fn my_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = tempfile::NamedTempFile::new()
        .unwrap()
        .as_file()
        .metadata()
        .unwrap();
    (m.uid(), m.gid())
}

fn assert_nothing_written(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("disk.raw"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_input_is_named_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    let tree_dir = dir.path().join("tree");
    std::fs::create_dir(&tree_dir).unwrap();
    // 40 MiB of incompressible data cannot fit a 32M root.
    let mut big = vec![0u8; 40 << 20];
    for (i, b) in big.iter_mut().enumerate() {
        *b = ((i * 2_654_435_761) >> 13) as u8;
    }
    std::fs::write(tree_dir.join("big"), &big).unwrap();
    let mut p = plan(TableKind::Mbr, "bad");
    p.root_size = Size::mib(32);
    let e = write_system_disk(&p, &TreeSource::Dir(tree_dir.clone()), &[], &disk).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("root_size 32M") && msg.contains("expected root_size of at least"),
        "{msg}"
    );
    assert_nothing_written(dir.path());

    let cases: Vec<(image_layout::SystemDiskPlan, &str)> = vec![
        (
            {
                let mut p = plan(TableKind::Mbr, "bad");
                p.root_size = Size::mib(8);
                p
            },
            "too small, expected at least 16M",
        ),
        (
            {
                let mut p = plan(TableKind::Mbr, "bad");
                p.volatile_size = Size(17 * 1024 * 1024 + 512);
                p
            },
            "volatile_size",
        ),
        (
            {
                let mut p = plan(TableKind::Mbr, "bad");
                p.root_size = Size::gib(2100);
                p
            },
            "at most 2T",
        ),
        (
            {
                let mut p = plan(TableKind::Mbr, "bad");
                p.root_label = "a-label-longer-than-16".into();
                p
            },
            "root_label",
        ),
    ];
    for (p, want) in cases {
        let e = write_system_disk(&p, &TreeSource::Dir(tree_dir.clone()), &[], &disk).unwrap_err();
        assert!(matches!(e, SystemDiskError::Plan(_)), "{e}");
        assert!(e.to_string().contains(want), "{e} (expected {want})");
        assert_nothing_written(dir.path());
    }

    let missing = dir.path().join("nope.tar");
    let e = write_system_disk(
        &plan(TableKind::Mbr, "bad"),
        &TreeSource::Tarball(missing),
        &[],
        &disk,
    )
    .unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("nope.tar: no such file"),
        "{e}"
    );
    let not_tar = dir.path().join("x.tar");
    std::fs::write(&not_tar, vec![7u8; 4096]).unwrap();
    let e = write_system_disk(
        &plan(TableKind::Mbr, "bad"),
        &TreeSource::Tarball(not_tar),
        &[],
        &disk,
    )
    .unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("not a tar archive"),
        "{e}"
    );
    let bad_extra = [extra("relative/path", ExtraKind::Dir, 0o755, 0, 0)];
    let e = write_system_disk(
        &plan(TableKind::Mbr, "bad"),
        &TreeSource::Dir(tree_dir.clone()),
        &bad_extra,
        &disk,
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"relative/path\""), "{e}");
    assert_nothing_written(dir.path());
}

/// Run as a child with a PATH that lacks grub-mkimage: the error names grub-common and no
/// disk appears. With the tools present (the normal run), the same call succeeds.
#[test]
fn child_write_without_grub_mkimage() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let disk = dir.path().join("disk.raw");
    let res = write_system_disk(&plan(TableKind::Mbr, "child"), &TreeSource::Dir(tree), &[], &disk);
    if std::env::var_os("IMAGE_LAYOUT_TEST_NO_GRUB").is_some() {
        let e = res.unwrap_err().to_string();
        assert!(
            e.contains("grub-mkimage not found: install the Debian package `grub-common`"),
            "{e}"
        );
        assert!(!disk.exists());
        assert_nothing_written(dir.path());
    } else {
        res.unwrap();
        assert!(disk.exists());
    }
}

#[test]
fn missing_grub_mkimage_names_its_package() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_write_without_grub_mkimage", "--test-threads=1"])
        // mke2fs is found in /usr/sbin anyway; grub-mkimage lives in /usr/bin only.
        .env("PATH", "/nonexistent")
        .env("IMAGE_LAYOUT_TEST_NO_GRUB", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "{text}");
}
