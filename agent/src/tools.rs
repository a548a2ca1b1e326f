//! The external programs the agent runs, each with the Debian package that ships it.

use host_util::Tool;

pub const BLKID: Tool = Tool::new("blkid", "util-linux");
pub const LSBLK: Tool = Tool::new("lsblk", "util-linux");
pub const WIPEFS: Tool = Tool::new("wipefs", "util-linux");
pub const MOUNT: Tool = Tool::new("mount", "mount");
pub const FINDMNT: Tool = Tool::new("findmnt", "util-linux");
pub const SFDISK: Tool = Tool::new("sfdisk", "fdisk");
pub const PARTX: Tool = Tool::new("partx", "util-linux");
pub const UDEVADM: Tool = Tool::new("udevadm", "udev");
pub const MKFS_EXT4: Tool = Tool::new("mkfs.ext4", "e2fsprogs");
pub const PVCREATE: Tool = Tool::new("pvcreate", "lvm2");
pub const VGCREATE: Tool = Tool::new("vgcreate", "lvm2");
pub const LVCREATE: Tool = Tool::new("lvcreate", "lvm2");
pub const VGCHANGE: Tool = Tool::new("vgchange", "lvm2");
pub const PVS: Tool = Tool::new("pvs", "lvm2");
pub const MDADM: Tool = Tool::new("mdadm", "mdadm");
pub const XORRISO: Tool = Tool::new("xorriso", "xorriso");
pub const MCOPY: Tool = Tool::new("mcopy", "mtools");
pub const SYSTEMCTL: Tool = Tool::new("systemctl", "systemd");
pub const DOCKER: Tool = Tool::new("docker", "docker.io");
pub const DOCKER_COMPOSE: Tool = Tool::new("docker-compose", "docker-compose");
pub const DUPLICITY: Tool = Tool::new("duplicity", "duplicity");
pub const GPG: Tool = Tool::new("gpg", "gnupg");
pub const CURL: Tool = Tool::new("curl", "curl");
pub const NGINX: Tool = Tool::new("nginx", "nginx-light");
pub const OPENSSL: Tool = Tool::new("openssl", "openssl");
pub const LVS: Tool = Tool::new("lvs", "lvm2");
pub const VGS: Tool = Tool::new("vgs", "lvm2");
pub const LVREMOVE: Tool = Tool::new("lvremove", "lvm2");
pub const LVCONVERT: Tool = Tool::new("lvconvert", "lvm2");
pub const LVCHANGE: Tool = Tool::new("lvchange", "lvm2");
pub const UMOUNT: Tool = Tool::new("umount", "mount");
pub const SYSTEMD_RUN: Tool = Tool::new("systemd-run", "systemd");
pub const CP: Tool = Tool::new("cp", "coreutils");
pub const DF: Tool = Tool::new("df", "coreutils");
