//! Disk layouts written as plain files: no root, no loop devices, no mounting, no VM.
//!
//! It owns the on-disk formats of an appliance's disks: MBR and GPT partition tables, ext4
//! filesystems (filled by `mke2fs -d` straight into a partition's byte range), LVM2 physical
//! volume labels and metadata, md RAID1 v1.2 superblocks and the GRUB BIOS boot code.
//! Every structure is checked in tests by the reference tool that reads it on a real system.
//!
//! It knows nothing of ECS: callers hand it a typed plan (`plan`) and a filesystem tree.

pub mod data;
pub mod esp;
pub mod ext4;
pub mod gpt;
pub mod grub;
pub mod layout;
pub mod lvm;
pub mod mbr;
pub mod md;
pub mod plan;
pub mod seed;
pub mod system;
pub mod tar;
pub mod tree;
pub mod walk;

pub use data::{ArrayReport, DataDiskError, DataDiskReport, write_data_disks};
pub use plan::{
    DataDiskPlan, ExtraFile, ExtraKind, PlanError, Seed, Size, SystemDiskPlan, TableKind, TreeSource,
};
pub use system::{PartitionReport, SystemDiskError, SystemDiskReport, write_system_disk};
