//! Block devices on the build host (loop devices, as root): the seed read straight off an
//! iso9660 or vfat device, and the storage step's refusals: a loop device is never found by
//! discovery, a disk with data in no known format or a volume group of another appliance is
//! refused untouched, an unreadable path is an error. LVM activation and md need device-mapper
//! and md, which the host kernel lacks: the decisions tested here are made from metadata alone
//! (that is the point), and the qemu end-to-end tests cover activation.
//!
//! Loop devices reach the storage step only through the test-only context keys
//! `data-disks: [...]` (lvm2 restricted to them) and `allow-loop-disks: true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Appliance, LOSETUP, Loop, PARTX, checksums, stdout};
use ecs_agent::storage::{self, Signature};
use host_util::{CommandExt, Tool};

const XORRISO: Tool = Tool::new("xorriso", "xorriso");
const MKFS_VFAT: Tool = Tool::new("mkfs.vfat", "dosfstools");
const MCOPY: Tool = Tool::new("mcopy", "mtools");
const MKFS_EXT4: Tool = Tool::new("mkfs.ext4", "e2fsprogs");

fn tool(t: Tool) -> Command {
    t.command().unwrap_or_else(|e| panic!("{e}"))
}

fn sparse(path: &Path, mib: u64) {
    std::fs::File::create(path).unwrap().set_len(mib << 20).unwrap();
}

fn standby_env() -> String {
    common::env_text("  standby: true\n", "")
}

fn assert_reads_seed(a: &Appliance, dev: &Path) {
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("ecs-agent: step env ok: from seed {}", dev.display())),
        "{text}"
    );
    assert!(text.contains("ecs-agent: started\n"), "{text}");
    assert_eq!(
        std::fs::read_to_string(a.path("run/active-env.yml")).unwrap(),
        standby_env()
    );
    let (code, body) = a.get(false, "/");
    assert_eq!(code, 503);
    assert!(body.contains("standby"), "{body}");
}

#[test]
fn seed_is_read_from_an_iso9660_device() {
    let a = Appliance::new("seediso");
    std::fs::write(a.path("user-data"), standby_env()).unwrap();
    std::fs::write(a.path("meta-data"), "instance-id: iid-test\n").unwrap();
    tool(XORRISO)
        .args(["-as", "mkisofs", "-V", "cidata", "-J", "-R", "-o"])
        .arg(a.path("seed.iso"))
        .arg(a.path("user-data"))
        .arg(a.path("meta-data"))
        .run_checked()
        .unwrap();
    let dev = Loop::attach(&a.path("seed.iso"));
    let mut a = a;
    a.extra_context
        .push(format!("seed-devices: [{}]", dev.0.display()));
    assert_reads_seed(&a, &dev.0);
}

#[test]
fn seed_is_read_from_a_vfat_device() {
    let a = Appliance::new("seedvfat");
    let img = a.path("seed.img");
    sparse(&img, 4);
    tool(MKFS_VFAT)
        .args(["-n", "CIDATA"])
        .arg(&img)
        .run_checked()
        .unwrap();
    std::fs::write(a.path("user-data"), standby_env()).unwrap();
    tool(MCOPY)
        .arg("-i")
        .arg(&img)
        .arg(a.path("user-data"))
        .arg("::user-data")
        .run_checked()
        .unwrap();
    let dev = Loop::attach(&img);
    let mut a = a;
    a.extra_context
        .push(format!("seed-devices: [{}]", dev.0.display()));
    assert_reads_seed(&a, &dev.0);
}

#[test]
fn blank_disk_is_formatted_and_anything_else_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blank_img = dir.path().join("blank.img");
    sparse(&blank_img, 64);
    let blank = Loop::attach(&blank_img);
    assert_eq!(storage::probe(&blank.0).unwrap(), Signature::Blank);
    assert_eq!(
        storage::check_disks(std::slice::from_ref(&blank.0)).unwrap(),
        vec![blank.0.clone()]
    );
    storage::format_blank(&blank.0, storage::VOLATILE_LABEL).unwrap();
    assert_eq!(
        storage::probe(&blank.0).unwrap(),
        Signature::Found {
            kind: "ext4".into(),
            label: "ecs-volatile".into()
        }
    );
    // Formatting it again is refused: it now carries a filesystem.
    let e = storage::format_blank(&blank.0, storage::VOLATILE_LABEL)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("carries ext4 (LABEL=ecs-volatile), which the agent did not expect"),
        "{e}"
    );

    let other_img = dir.path().join("other.img");
    sparse(&other_img, 64);
    tool(MKFS_EXT4)
        .args(["-q", "-L", "photos"])
        .arg(&other_img)
        .run_checked()
        .unwrap();
    let other = Loop::attach(&other_img);
    let e = storage::check_disks(std::slice::from_ref(&other.0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{} carries ext4 (LABEL=photos)", other.0.display())),
        "{e}"
    );
}

#[test]
fn start_refuses_a_data_disk_with_a_foreign_filesystem_and_leaves_it_alone() {
    let a = Appliance::new("foreign");
    let img = a.path("disk.img");
    sparse(&img, 1024);
    tool(MKFS_VFAT)
        .args(["-n", "HOLIDAY"])
        .arg(&img)
        .run_checked()
        .unwrap();
    let before = checksums(&a.path("."));
    let disk = Loop::attach(&img);
    let mut a = a;
    on_devices(&mut a, &disk);
    a.write_env("", "");
    let out = a.start();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let (state, msg) = a.step_state("storage");
    assert_eq!(state, "failed");
    assert!(
        msg.contains(&format!("{} carries vfat (LABEL=HOLIDAY)", disk.0.display())),
        "{msg}"
    );
    assert_eq!(
        storage::probe(&disk.0).unwrap(),
        Signature::Found {
            kind: "vfat".into(),
            label: "HOLIDAY".into()
        }
    );
    assert_eq!(checksums(&a.path("."))["disk.img"], before["disk.img"]);
}

const SFDISK: Tool = Tool::new("sfdisk", "fdisk");

/// A system disk as a cloud image comes: one partition, ext4 `cloudimg-rootfs`, the rest free.
/// Returns the loop device and its root partition (the kernel told with partx, as the host's
/// loop driver may not scan partitions itself).
fn system_disk_without_volatile(img: &Path) -> (Loop, PathBuf) {
    sparse(img, 96);
    tool(SFDISK)
        .args(["-q"])
        .arg(img)
        .run_with_input(b"label: dos\n,40M,L\n")
        .unwrap();
    let disk = Loop::attach(img);
    let root = PathBuf::from(format!("{}p1", disk.0.display()));
    if !root.exists() {
        tool(PARTX)
            .args(["--add", "--nr", "1"])
            .arg(&disk.0)
            .run_checked()
            .unwrap();
    }
    tool(MKFS_EXT4)
        .args(["-q", "-L", storage::ROOT_LABEL])
        .arg(&root)
        .run_checked()
        .unwrap();
    (disk, root)
}

fn partition_nodes(disk: &Path) -> Vec<String> {
    let json = tool(SFDISK).arg("--json").arg(disk).run_stdout().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn volatile_is_added_after_root_and_a_blank_leftover_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("system.img");
    let (disk, root) = system_disk_without_volatile(&img);
    let root_before = checksums_of_device(&root);

    let p2 = storage::create_volatile(&disk.0, &root).unwrap();
    assert_eq!(p2, PathBuf::from(format!("{}p2", disk.0.display())));
    assert_eq!(
        storage::probe(&p2).unwrap(),
        Signature::Found {
            kind: "ext4".into(),
            label: storage::VOLATILE_LABEL.into()
        }
    );
    assert_eq!(checksums_of_device(&root), root_before, "root is untouched");

    // A run that stopped after adding the partition but before formatting it: the blank
    // partition is formatted, no third one is added.
    let img2 = dir.path().join("system2.img");
    let (disk2, root2) = system_disk_without_volatile(&img2);
    tool(SFDISK)
        .args(["--append", "--no-reread", "--no-tell-kernel", "-q"])
        .arg(&disk2.0)
        .run_with_input(b",,L\n")
        .unwrap();
    tool(PARTX)
        .args(["--add", "--nr", "2"])
        .arg(&disk2.0)
        .run_checked()
        .unwrap();
    let leftover = PathBuf::from(format!("{}p2", disk2.0.display()));
    assert_eq!(storage::probe(&leftover).unwrap(), Signature::Blank);
    assert_eq!(storage::create_volatile(&disk2.0, &root2).unwrap(), leftover);
    assert_eq!(partition_nodes(&disk2.0).len(), 2);
    assert_eq!(
        storage::probe(&leftover).unwrap(),
        Signature::Found {
            kind: "ext4".into(),
            label: storage::VOLATILE_LABEL.into()
        }
    );
}

fn checksums_of_device(dev: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(dev).unwrap();
    hex::encode(Sha256::digest(&bytes))
}

/// The storage step on real devices, restricted to `disk` (the test-only path).
fn on_devices(a: &mut Appliance, disk: &Loop) {
    a.extra_context.push("storage: devices".into());
    a.extra_context
        .push(format!("data-disks: [{}]", disk.0.display()));
    a.extra_context.push("allow-loop-disks: true".into());
}

const LVM: Tool = Tool::new("lvm", "lvm2");

/// An lvm2 command that sees only `dev` and writes no backup under the host's /etc/lvm.
fn lvm(sub: &str, dev: &Path) -> Command {
    let mut c = tool(LVM);
    c.env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .arg(sub)
        .args([
            "--config",
            "devices{use_devicesfile=0} backup{backup=0 archive=0}",
            "--devices",
        ])
        .arg(dev);
    c
}

/// VG `permanent` on `dev` (metadata only: no LV, which would need device-mapper), with `tags`.
fn vg_permanent(dev: &Path, tags: &[&str]) {
    lvm("pvcreate", dev).arg("-q").arg(dev).run_checked().unwrap();
    let mut c = lvm("vgcreate", dev);
    c.arg("-q");
    for t in tags {
        c.args(["--addtag", t]);
    }
    c.arg("permanent").arg(dev).run_checked().unwrap();
}

fn vg_tags(dev: &Path) -> String {
    lvm("vgs", dev)
        .args(["--noheadings", "-o", "vg_tags", "permanent"])
        .run_stdout()
        .unwrap()
        .trim()
        .to_string()
}

fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

#[test]
fn a_loop_device_is_never_a_candidate_by_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("big.img");
    sparse(&img, 2048);
    let disk = Loop::attach(&img);
    let tree = storage::lsblk().unwrap();
    assert!(
        tree.blockdevices.iter().any(|d| Path::new(&d.path) == disk.0),
        "lsblk does not list {}",
        disk.0.display()
    );
    for allow_loop in [false, true] {
        let facts = storage::facts(allow_loop).unwrap();
        let found = storage::candidates(&tree, &facts);
        assert!(!found.contains(&disk.0), "{found:?}");
        assert!(found.iter().all(|d| !d.starts_with("/dev/loop")), "{found:?}");
    }
    // This host's own root disk is never offered either.
    fn holds(d: &storage::BlockDev, majmin: &str) -> bool {
        d.majmin == majmin || d.children.iter().any(|c| holds(c, majmin))
    }
    let facts = storage::facts(false).unwrap();
    if let Some(root) = &facts.root {
        let found = storage::candidates(&tree, &facts);
        for d in tree.blockdevices.iter().filter(|d| holds(d, root)) {
            assert!(
                !found.contains(&PathBuf::from(&d.path)),
                "{} holds / : {found:?}",
                d.path
            );
        }
    }
    // Named explicitly, a loop device needs the test-only switch.
    let listed = std::slice::from_ref(&disk.0);
    let e = storage::check_listed(&tree, &storage::facts(false).unwrap(), listed, &|_| None).unwrap_err();
    assert_eq!(
        e,
        [format!(
            "{} is a loop device: it is never used for data",
            disk.0.display()
        )]
    );
    assert!(storage::check_listed(&tree, &storage::facts(true).unwrap(), listed, &|_| None).is_ok());
}

#[test]
fn data_without_a_signature_is_refused_and_an_unreadable_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, at) in [("head", 4096u64), ("tail", (64 << 20) - 100)] {
        let img = dir.path().join(format!("{name}.img"));
        sparse(&img, 64);
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
            f.write_all_at(b"customer records, no known format", at).unwrap();
        }
        let disk = Loop::attach(&img);
        assert_eq!(storage::probe(&disk.0).unwrap(), Signature::Data, "{name}");
        let e = storage::check_disks(std::slice::from_ref(&disk.0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{} carries data in no known format", disk.0.display())),
            "{e}"
        );
        let e = storage::format_blank(&disk.0, storage::DATA_LABEL)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no known format"), "{e}");
    }
    // A path that cannot be opened is not "blank" (blkid says "nothing found" for it too).
    let missing = dir.path().join("no-such-disk");
    let e = format!("{:#}", storage::probe(&missing).unwrap_err());
    assert!(e.contains(&format!("cannot open {}", missing.display())), "{e}");
    let e = format!(
        "{:#}",
        storage::check_disks(std::slice::from_ref(&missing)).unwrap_err()
    );
    assert!(e.contains("no-such-disk"), "{e}");
    // A loop node with nothing bound to it: opening it fails (ENXIO).
    let free = tool(LOSETUP).arg("-f").run_stdout().unwrap();
    let free = PathBuf::from(free.trim());
    if free.exists() {
        let e = format!("{:#}", storage::probe(&free).unwrap_err());
        assert!(e.contains(&format!("cannot read {}", free.display())), "{e}");
    }
}

/// Starts the agent on a loop device carrying VG `permanent` with `tags`; returns the storage
/// step's message after checking that it failed and that the disk's bytes did not change.
fn refused_vg(name: &str, tags: &[&str], env_storage: &str) -> (Appliance, Loop, String) {
    let mut a = Appliance::new(name);
    let img = a.path("data.img");
    sparse(&img, 1024);
    let disk = Loop::attach(&img);
    vg_permanent(&disk.0, tags);
    let before = sha256_file(&img);
    on_devices(&mut a, &disk);
    a.write_env(env_storage, "");
    let out = a.start();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let (state, msg) = a.step_state("storage");
    assert_eq!(state, "failed", "{msg}");
    if env_storage.is_empty() {
        assert_eq!(sha256_file(&img), before, "the refused disk was written to");
    }
    (a, disk, msg)
}

#[test]
fn a_volume_group_of_another_appliance_is_refused_untouched() {
    let (_a, disk, msg) = refused_vg("vgforeign", &["ecs-appliance:another.test"], "");
    assert!(
        msg.contains(&format!(
            "{} carries volume group `permanent` of another appliance (owner another.test; this is {})",
            disk.0.display(),
            common::DOMAIN
        )),
        "{msg}"
    );
    assert!(msg.contains("appliance.storage.adopt: true"), "{msg}");
    assert_eq!(vg_tags(&disk.0), "ecs-appliance:another.test");
}

#[test]
fn an_untagged_volume_group_is_refused_untouched() {
    let (_a, disk, msg) = refused_vg("vguntagged", &[], "");
    assert!(
        msg.contains(&format!("{} carries volume group `permanent`", disk.0.display()))
            && msg.contains("no owner tag (made by an older agent or another tool)"),
        "{msg}"
    );
    assert_eq!(vg_tags(&disk.0), "");
}

#[test]
fn adopt_re_tags_a_foreign_volume_group_for_this_appliance() {
    let (_a, disk, msg) = refused_vg(
        "vgadopt",
        &["ecs-appliance:another.test"],
        "  storage:\n    adopt: true\n",
    );
    // Re-tagged from metadata, then activated (this VG has no LV: the host kernel has no
    // device-mapper to activate one), and found to hold no data volume.
    assert_eq!(vg_tags(&disk.0), format!("ecs-appliance:{}", common::DOMAIN));
    assert!(msg.contains("no data found (no LABEL=ecs-data)"), "{msg}");
}

#[test]
fn create_false_creates_nothing_on_a_blank_disk() {
    let mut a = Appliance::new("nocreate");
    let img = a.path("blank.img");
    sparse(&img, 1024);
    let disk = Loop::attach(&img);
    on_devices(&mut a, &disk);
    a.write_env("  storage:\n    create: false\n", "");
    let out = a.start();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let (state, msg) = a.step_state("storage");
    assert_eq!(state, "failed");
    assert!(
        msg.contains(
            "no filesystem LABEL=ecs-data found, and appliance.storage.create is false: nothing is created"
        ),
        "{msg}"
    );
    assert_eq!(storage::probe(&disk.0).unwrap(), Signature::Blank);
}
