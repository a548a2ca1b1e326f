//! Which block devices may ever hold /data: the decision is a pure function over `lsblk -J`'s
//! tree (unit-tested with recorded shapes), the probing around it is thin.
//!
//! A candidate is a whole disk (TYPE disk) that is writable, not removable, not on a
//! hot-pluggable media bus (USB, MMC, FireWire), at least 1 GiB, and none of: a floppy, a RAM
//! or compressed-RAM disk, a network block device, a loop device, a member of an md array in
//! use, the disk under the mounted root filesystem, or the disk carrying the seed (`cidata`).
//! A hot-attached cloud volume (virtio, NVMe, SCSI) stays a candidate: clouds attach data
//! volumes that way.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Deserializer};

use crate::tools::{FINDMNT, LSBLK};
use host_util::CommandExt;

/// The columns `parse` expects, for `lsblk -J -b -o`.
pub const LSBLK_COLUMNS: &str = "NAME,PATH,TYPE,RM,RO,HOTPLUG,TRAN,SIZE,MAJ:MIN,FSTYPE,LABEL";

/// The smallest disk worth a data volume.
pub const MIN_SIZE: u64 = 1 << 30;

#[derive(Debug, Deserialize)]
pub struct Lsblk {
    pub blockdevices: Vec<BlockDev>,
}

/// One device of `lsblk -J -b`, with its children (partitions, md arrays, LVs on it).
/// lsblk before 2.37 writes flags as "0"/"1" and sizes as strings; later ones as JSON booleans
/// and numbers: both are read.
#[derive(Debug, Deserialize)]
pub struct BlockDev {
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "flag")]
    pub rm: bool,
    #[serde(default, deserialize_with = "flag")]
    pub ro: bool,
    #[serde(default, deserialize_with = "flag")]
    pub hotplug: bool,
    #[serde(default)]
    pub tran: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub size: u64,
    #[serde(rename = "maj:min", default)]
    pub majmin: String,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub children: Vec<BlockDev>,
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::String(s) => s == "1",
        serde_json::Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    })
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
        serde_json::Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

pub fn parse(json: &str) -> anyhow::Result<Lsblk> {
    serde_json::from_str(json).context("parsing lsblk -J output")
}

impl BlockDev {
    fn major(&self) -> Option<u32> {
        self.majmin.split(':').next()?.parse().ok()
    }

    fn any(&self, f: &dyn Fn(&BlockDev) -> bool) -> bool {
        f(self) || self.children.iter().any(|c| c.any(f))
    }

    fn find(&self, f: &dyn Fn(&BlockDev) -> bool) -> Option<&BlockDev> {
        if f(self) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(f))
    }
}

/// What the decision needs besides the tree.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `MAJ:MIN` of the device mounted on `/`, when it is a block device.
    pub root: Option<String>,
    /// Loop devices may be named explicitly (context `allow-loop-disks`, host tests only).
    pub allow_loop: bool,
}

/// Why `dev` (a top-level lsblk device) may not hold data, or None when it may.
pub fn unfit(dev: &BlockDev, facts: &Facts) -> Option<String> {
    let name = dev.name.as_str();
    let major = dev.major();
    if dev.kind == "loop" || name.starts_with("loop") || major == Some(7) {
        if !facts.allow_loop {
            return Some("a loop device".into());
        }
    } else if dev.kind != "disk" {
        return Some(format!("not a whole disk (TYPE {})", dev.kind));
    }
    if name.starts_with("fd") || major == Some(2) {
        return Some("a floppy drive".into());
    }
    if name.starts_with("sr") || major == Some(11) {
        return Some("an optical drive".into());
    }
    if name.starts_with("zram") || name.starts_with("ram") || major == Some(1) {
        return Some("a RAM disk".into());
    }
    if name.starts_with("nbd") || major == Some(43) {
        return Some("a network block device".into());
    }
    if dev.rm {
        return Some("removable (RM)".into());
    }
    if dev.ro {
        return Some("read-only (RO)".into());
    }
    if let Some(tran) = dev
        .tran
        .as_deref()
        .filter(|t| ["usb", "mmc", "ieee1394"].contains(t))
    {
        return Some(format!("hot-pluggable media on {tran}"));
    }
    if dev.size < MIN_SIZE {
        return Some(format!("smaller than 1 GiB ({} bytes)", dev.size));
    }
    if let Some(root) = facts.root.as_deref()
        && dev.any(&|d| d.majmin == root)
    {
        return Some("the disk of the root filesystem".into());
    }
    if dev.any(&|d| {
        d.label
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case("cidata"))
    }) {
        return Some("the seed (LABEL=cidata)".into());
    }
    // An md array appears as a child of each member disk.
    if let Some(md) = dev
        .children
        .iter()
        .find(|c| c.kind.starts_with("raid") || c.kind == "linear")
    {
        return Some(format!("a member of the md array {} in use", md.path));
    }
    None
}

/// The disks discovery may use, in lsblk's order.
pub fn candidates(tree: &Lsblk, facts: &Facts) -> Vec<PathBuf> {
    let facts = Facts {
        allow_loop: false,
        ..facts.clone()
    };
    tree.blockdevices
        .iter()
        .filter(|d| unfit(d, &facts).is_none())
        .map(|d| PathBuf::from(&d.path))
        .collect()
}

/// Checks a list of disks named in the context: each must be a top-level device that passes
/// `unfit`. `majmin` gives a path's device number (the list may use a symlink to the node).
pub fn check_listed(
    tree: &Lsblk,
    facts: &Facts,
    listed: &[PathBuf],
    majmin: &dyn Fn(&Path) -> Option<String>,
) -> Result<Vec<PathBuf>, Vec<String>> {
    let mut refusals = Vec::new();
    for p in listed {
        let id = majmin(p);
        let top = tree
            .blockdevices
            .iter()
            .find(|d| Path::new(&d.path) == p || id.as_deref() == Some(d.majmin.as_str()));
        let why = match top {
            Some(d) => unfit(d, facts),
            None if tree.blockdevices.iter().any(|d| {
                d.find(&|c| Path::new(&c.path) == p || id.as_deref() == Some(c.majmin.as_str()))
                    .is_some()
            }) =>
            {
                Some("not a whole disk (a partition or a volume on one)".into())
            }
            None => Some("not a block device lsblk lists".into()),
        };
        if let Some(why) = why {
            refusals.push(format!("{} is {why}: it is never used for data", p.display()));
        }
    }
    if refusals.is_empty() {
        Ok(listed.to_vec())
    } else {
        Err(refusals)
    }
}

/// `lsblk`'s tree of every block device.
pub fn lsblk() -> anyhow::Result<Lsblk> {
    let json = LSBLK
        .command()?
        .args(["-J", "-b", "-o", LSBLK_COLUMNS])
        .run_stdout()?;
    parse(&json)
}

/// `MAJ:MIN` of a block device node (following symlinks), or None for anything else.
pub fn majmin(path: &Path) -> Option<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(path).ok()?;
    if !m.file_type().is_block_device() {
        return None;
    }
    let rdev = m.rdev();
    Some(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

/// The device mounted on `/` (`findmnt`, not a label: any disk may carry `cloudimg-rootfs`).
pub fn root_source() -> anyhow::Result<Option<PathBuf>> {
    let out = FINDMNT
        .command()?
        .args(["-n", "-o", "SOURCE", "/"])
        .run_stdout()?;
    // btrfs appends the subvolume: /dev/vda1[/@].
    let source = out.trim().split('[').next().unwrap_or("").trim();
    Ok(source.starts_with('/').then(|| PathBuf::from(source)))
}

/// The facts of this host.
pub fn facts(allow_loop: bool) -> anyhow::Result<Facts> {
    Ok(Facts {
        root: root_source()?.as_deref().and_then(majmin),
        allow_loop,
    })
}

/// The whole disk under `node` (e.g. /dev/vda for /dev/vda1), from lsblk's tree.
pub fn disk_of(tree: &Lsblk, node: &Path) -> Option<PathBuf> {
    let id = majmin(node);
    tree.blockdevices
        .iter()
        .find(|d| d.any(&|c| Path::new(&c.path) == node || id.as_deref() == Some(c.majmin.as_str())))
        .map(|d| PathBuf::from(&d.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// qemu's default `pc` machine as README boots it (no -nodefaults): the floppy fd0 and the
    /// IDE CD-ROM with the seed, virtio system and data disks; lsblk 2.41 (booleans, numbers).
    const QEMU_DEFAULT: &str = r#"{"blockdevices": [
      {"name":"fd0","path":"/dev/fd0","type":"disk","rm":true,"ro":false,"hotplug":true,"tran":null,"size":4096,"maj:min":"2:0","fstype":null,"label":null},
      {"name":"sr0","path":"/dev/sr0","type":"rom","rm":true,"ro":false,"hotplug":true,"tran":"ata","size":374784,"maj:min":"11:0","fstype":"iso9660","label":"cidata"},
      {"name":"zram0","path":"/dev/zram0","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":null,"size":2147483648,"maj:min":"251:0","fstype":null,"label":null},
      {"name":"vda","path":"/dev/vda","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"virtio","size":12884901888,"maj:min":"254:0","fstype":null,"label":null,
        "children":[
          {"name":"vda1","path":"/dev/vda1","type":"part","rm":false,"ro":false,"hotplug":false,"tran":null,"size":3221225472,"maj:min":"254:1","fstype":"ext4","label":"cloudimg-rootfs"},
          {"name":"vda2","path":"/dev/vda2","type":"part","rm":false,"ro":false,"hotplug":false,"tran":null,"size":6442450944,"maj:min":"254:2","fstype":"ext4","label":"ecs-volatile"}
        ]},
      {"name":"vdb","path":"/dev/vdb","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"virtio","size":4294967296,"maj:min":"254:16","fstype":null,"label":null},
      {"name":"vdc","path":"/dev/vdc","type":"disk","rm":false,"ro":true,"hotplug":false,"tran":"virtio","size":4294967296,"maj:min":"254:32","fstype":null,"label":null},
      {"name":"vdd","path":"/dev/vdd","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"virtio","size":536870912,"maj:min":"254:48","fstype":null,"label":null}
    ]}"#;

    /// An NVMe host with a USB stick and a USB disk; lsblk before 2.37 ("0"/"1", string sizes).
    const NVME_OLD_LSBLK: &str = r#"{"blockdevices": [
      {"name":"nvme0n1","path":"/dev/nvme0n1","type":"disk","rm":"0","ro":"0","hotplug":"0","tran":"nvme","size":"500107862016","maj:min":"259:0","fstype":null,"label":null,
        "children":[{"name":"nvme0n1p1","path":"/dev/nvme0n1p1","type":"part","rm":"0","ro":"0","hotplug":"0","tran":"nvme","size":"500106813440","maj:min":"259:1","fstype":"ext4","label":"cloudimg-rootfs"}]},
      {"name":"nvme1n1","path":"/dev/nvme1n1","type":"disk","rm":"0","ro":"0","hotplug":"1","tran":"nvme","size":"1000204886016","maj:min":"259:2","fstype":null,"label":null},
      {"name":"sda","path":"/dev/sda","type":"disk","rm":"1","ro":"0","hotplug":"1","tran":"usb","size":"16008609792","maj:min":"8:0","fstype":"vfat","label":"STICK"},
      {"name":"sdb","path":"/dev/sdb","type":"disk","rm":"0","ro":"0","hotplug":"1","tran":"usb","size":"2000398934016","maj:min":"8:16","fstype":null,"label":null},
      {"name":"nbd0","path":"/dev/nbd0","type":"disk","rm":"0","ro":"0","hotplug":"0","tran":null,"size":"4294967296","maj:min":"43:0","fstype":null,"label":null},
      {"name":"loop0","path":"/dev/loop0","type":"loop","rm":"0","ro":"0","hotplug":"0","tran":null,"size":"4294967296","maj:min":"7:0","fstype":null,"label":null}
    ]}"#;

    /// Root on an md RAID1 of sda1 + sdb1 (the array is a child of both), a third disk with a
    /// member of an assembled data array, and a fourth blank one.
    const MD: &str = r#"{"blockdevices": [
      {"name":"sda","path":"/dev/sda","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"sata","size":256060514304,"maj:min":"8:0","children":[
        {"name":"sda1","path":"/dev/sda1","type":"part","rm":false,"ro":false,"hotplug":false,"tran":null,"size":256059465728,"maj:min":"8:1","fstype":"linux_raid_member","label":"host:0","children":[
          {"name":"md0","path":"/dev/md0","type":"raid1","rm":false,"ro":false,"hotplug":false,"tran":null,"size":255924174848,"maj:min":"9:0","fstype":"ext4","label":"cloudimg-rootfs"}]}]},
      {"name":"sdb","path":"/dev/sdb","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"sata","size":256060514304,"maj:min":"8:16","children":[
        {"name":"sdb1","path":"/dev/sdb1","type":"part","rm":false,"ro":false,"hotplug":false,"tran":null,"size":256059465728,"maj:min":"8:17","fstype":"linux_raid_member","label":"host:0","children":[
          {"name":"md0","path":"/dev/md0","type":"raid1","rm":false,"ro":false,"hotplug":false,"tran":null,"size":255924174848,"maj:min":"9:0","fstype":"ext4","label":"cloudimg-rootfs"}]}]},
      {"name":"sdc","path":"/dev/sdc","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"sas","size":4000787030016,"maj:min":"8:32","fstype":"linux_raid_member","label":"any:permanent","children":[
          {"name":"md127","path":"/dev/md127","type":"raid1","rm":false,"ro":false,"hotplug":false,"tran":null,"size":4000650854400,"maj:min":"9:127","fstype":"LVM2_member","label":null}]},
      {"name":"sdd","path":"/dev/sdd","type":"disk","rm":false,"ro":false,"hotplug":false,"tran":"sas","size":4000787030016,"maj:min":"8:48","fstype":null,"label":null}
    ]}"#;

    fn why(json: &str, name: &str, root: Option<&str>) -> Option<String> {
        let tree = parse(json).unwrap();
        let facts = Facts {
            root: root.map(String::from),
            allow_loop: false,
        };
        let d = tree.blockdevices.iter().find(|d| d.name == name).unwrap();
        unfit(d, &facts)
    }

    #[test]
    fn qemu_default_machine_offers_only_the_blank_virtio_disk() {
        let tree = parse(QEMU_DEFAULT).unwrap();
        let facts = Facts {
            root: Some("254:1".into()),
            allow_loop: false,
        };
        assert_eq!(candidates(&tree, &facts), vec![PathBuf::from("/dev/vdb")]);
        let root = Some("254:1");
        assert_eq!(why(QEMU_DEFAULT, "fd0", root).unwrap(), "a floppy drive");
        assert_eq!(
            why(QEMU_DEFAULT, "sr0", root).unwrap(),
            "not a whole disk (TYPE rom)"
        );
        assert_eq!(why(QEMU_DEFAULT, "zram0", root).unwrap(), "a RAM disk");
        assert_eq!(
            why(QEMU_DEFAULT, "vda", root).unwrap(),
            "the disk of the root filesystem"
        );
        assert_eq!(why(QEMU_DEFAULT, "vdc", root).unwrap(), "read-only (RO)");
        assert!(
            why(QEMU_DEFAULT, "vdd", root)
                .unwrap()
                .starts_with("smaller than 1 GiB")
        );
        // Without a root found (e.g. root on overlayfs) vda passes this filter; the blank
        // check then refuses it loudly, untouched.
        assert_eq!(why(QEMU_DEFAULT, "vda", None), None);
    }

    #[test]
    fn nvme_host_skips_usb_nbd_and_loop_but_keeps_a_hot_attached_nvme_volume() {
        let tree = parse(NVME_OLD_LSBLK).unwrap();
        let facts = Facts {
            root: Some("259:1".into()),
            allow_loop: false,
        };
        assert_eq!(candidates(&tree, &facts), vec![PathBuf::from("/dev/nvme1n1")]);
        let root = Some("259:1");
        assert_eq!(why(NVME_OLD_LSBLK, "sda", root).unwrap(), "removable (RM)");
        assert_eq!(
            why(NVME_OLD_LSBLK, "sdb", root).unwrap(),
            "hot-pluggable media on usb"
        );
        assert_eq!(
            why(NVME_OLD_LSBLK, "nbd0", root).unwrap(),
            "a network block device"
        );
        assert_eq!(why(NVME_OLD_LSBLK, "loop0", root).unwrap(), "a loop device");
        assert_eq!(
            why(NVME_OLD_LSBLK, "nvme0n1", root).unwrap(),
            "the disk of the root filesystem"
        );
    }

    #[test]
    fn md_members_and_both_disks_under_a_mirrored_root_are_not_candidates() {
        let tree = parse(MD).unwrap();
        let facts = Facts {
            root: Some("9:0".into()),
            allow_loop: false,
        };
        assert_eq!(candidates(&tree, &facts), vec![PathBuf::from("/dev/sdd")]);
        for d in ["sda", "sdb"] {
            assert_eq!(
                why(MD, d, Some("9:0")).unwrap(),
                "the disk of the root filesystem"
            );
        }
        assert_eq!(
            why(MD, "sdc", Some("9:0")).unwrap(),
            "a member of the md array /dev/md127 in use"
        );
    }

    #[test]
    fn a_listed_device_must_be_a_fit_whole_disk() {
        let tree = parse(NVME_OLD_LSBLK).unwrap();
        let facts = Facts {
            root: Some("259:1".into()),
            allow_loop: false,
        };
        let none = |_: &Path| None;
        let listed = |p: &[&str]| p.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            check_listed(&tree, &facts, &listed(&["/dev/nvme1n1"]), &none).unwrap(),
            listed(&["/dev/nvme1n1"])
        );
        let e = check_listed(
            &tree,
            &facts,
            &listed(&["/dev/loop0", "/dev/nvme0n1p1", "/dev/sda", "/dev/nope"]),
            &none,
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "/dev/loop0 is a loop device: it is never used for data",
                "/dev/nvme0n1p1 is not a whole disk (a partition or a volume on one): it is never used for data",
                "/dev/sda is removable (RM): it is never used for data",
                "/dev/nope is not a block device lsblk lists: it is never used for data",
            ]
        );
        // The test-only switch admits a loop device when named, never by discovery.
        let loops = Facts {
            allow_loop: true,
            ..facts
        };
        assert!(check_listed(&tree, &loops, &listed(&["/dev/loop0"]), &none).is_ok());
        assert!(!candidates(&tree, &loops).contains(&PathBuf::from("/dev/loop0")));
    }

    #[test]
    fn the_disk_of_a_partition() {
        let tree = parse(QEMU_DEFAULT).unwrap();
        assert_eq!(
            disk_of(&tree, Path::new("/dev/vda1")),
            Some(PathBuf::from("/dev/vda"))
        );
        assert_eq!(disk_of(&tree, Path::new("/dev/nope")), None);
    }
}
