//! Data disks as the appliance uses them: an LVM2 PV on the whole disk (no partition table),
//! or on an md RAID1 device mirrored across two disks; volume group `permanent`, logical
//! volume `data` on the first `data_percent` of its extents, formatted ext4, and the rest of
//! the group left free for snapshots. The appliance agent looks for the PV on the whole disk
//! or on the md device, never on a partition.
//!
//! Everything is planned and validated first, then written into temporary sparse files and
//! renamed into place only when every disk is complete.

use std::fs::File;
use std::path::{Path, PathBuf};

use host_util::AtomicFile;

use crate::ext4::{Ext4Contents, Ext4Error, Ext4Spec, make_ext4_on_zeros};
use crate::lvm::{self, LvText, PvSpec, VgText};
use crate::md::{self, ArraySpec, MemberSpec};
use crate::plan::{DataDiskPlan, PlanError, Seed, Size};

/// Recorded as the creation host of the VG and LV: the build machine's name would make
/// images differ between machines.
pub const CREATION_HOST: &str = "ecs-build";
/// The volume group needs at least this many extents (16 MiB) to be worth creating.
pub const MIN_EXTENTS: u64 = 4;
/// The LV must get at least this many extents (8 MiB): room for an ext4 with a journal.
pub const MIN_LV_EXTENTS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DataDiskError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("formatting the LV in {}: {source}", path.display())]
    Ext4 {
        path: PathBuf,
        #[source]
        source: Ext4Error,
    },
}

/// What was written, for logs and for callers that place files or check the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDiskReport {
    pub vg_name: String,
    pub lv_name: String,
    /// Dashed LVM UUIDs as `pvs`/`vgs`/`lvs` print them.
    pub pv_uuid: String,
    pub vg_uuid: String,
    pub lv_uuid: String,
    /// Bytes per extent.
    pub extent_size: u64,
    /// Extents in the VG (on its one PV), given to the LV, and left free.
    pub extents: u64,
    pub lv_extents: u64,
    pub free_extents: u64,
    /// Byte offset of the PV in each output file: 0, or the md data offset.
    pub pv_offset: u64,
    /// Size of the PV's device in bytes: the disk, or the md array.
    pub pv_size: u64,
    /// Byte offset of the LV (and its ext4) in each output file, and its size.
    pub lv_offset: u64,
    pub lv_size: u64,
    /// Bytes left free in the VG for snapshots.
    pub free_bytes: u64,
    pub fs_uuid: String,
    pub fs_label: String,
    pub array: Option<ArrayReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayReport {
    /// As mdadm prints it: `xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx`.
    pub uuid: String,
    pub name: String,
    /// Byte offset of the array's data in each member.
    pub data_offset: u64,
    /// Size of the md device in bytes.
    pub size: u64,
    /// mdadm notation, one per member in output order.
    pub device_uuids: Vec<String>,
}

impl DataDiskPlan {
    /// The appliance's defaults: VG `permanent`, LV `data` at 85%, label `ecs-data`.
    pub fn new(size: Size, raid1: bool, seed: Seed, timestamp: u64) -> Self {
        DataDiskPlan {
            size,
            raid1,
            vg_name: "permanent".into(),
            lv_name: "data".into(),
            data_percent: 85,
            data_label: "ecs-data".into(),
            vg_tags: Vec::new(),
            seed,
            timestamp,
        }
    }
}

/// Everything computed from the plan before a byte is written.
struct Layout {
    report: DataDiskReport,
    metadata: String,
    pv_id: String,
    array: Option<ArraySpec>,
    members: Vec<MemberSpec>,
    fs: Ext4Spec,
}

/// Writes one data disk (`raid1` false, one output) or a RAID1 pair (two outputs). Nothing
/// appears under an output's name unless all of them were written completely.
pub fn write_data_disks(plan: &DataDiskPlan, outputs: &[PathBuf]) -> Result<DataDiskReport, DataDiskError> {
    check_outputs(plan, outputs)?;
    let layout = layout(plan)?;
    let mut files = Vec::with_capacity(outputs.len());
    for (i, path) in outputs.iter().enumerate() {
        let io = |source| DataDiskError::Io {
            path: path.clone(),
            source,
        };
        let mut out = AtomicFile::create(path, 0o644).map_err(io)?;
        write_disk(plan, &layout, i, out.file()).map_err(io)?;
        // mke2fs writes the same bytes into each member: same UUID, hash seed and times.
        // The file is fresh and sparse, so the LV reads as zeros and need not be zeroed.
        make_ext4_on_zeros(out.temp_path(), &layout.fs, &Ext4Contents::Empty).map_err(|source| {
            DataDiskError::Ext4 {
                path: path.clone(),
                source,
            }
        })?;
        files.push((path, out));
    }
    for (path, out) in files {
        out.commit().map_err(|source| DataDiskError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(layout.report)
}

fn write_disk(plan: &DataDiskPlan, layout: &Layout, index: usize, file: &mut File) -> std::io::Result<()> {
    file.set_len(plan.size.bytes())?;
    if let Some(array) = &layout.array {
        let sb = md::superblock(array, &layout.members[index]).map_err(std::io::Error::other)?;
        std::os::unix::fs::FileExt::write_all_at(&*file, &sb, md::SUPER_OFFSET_SECTORS * md::SECTOR)?;
    }
    let pv = PvSpec {
        pv_uuid: layout.pv_id.clone(),
        device_size: layout.report.pv_size,
        metadata: layout.metadata.clone(),
    };
    lvm::write_pv(file, layout.report.pv_offset, &pv)
}

fn check_outputs(plan: &DataDiskPlan, outputs: &[PathBuf]) -> Result<(), PlanError> {
    let want = if plan.raid1 { 2 } else { 1 };
    if outputs.len() != want {
        return Err(PlanError(if plan.raid1 {
            format!(
                "raid1 needs exactly 2 outputs (one per mirror member), got {}",
                outputs.len()
            )
        } else {
            format!(
                "a single data disk needs exactly 1 output, got {} (use raid1 for a mirrored pair)",
                outputs.len()
            )
        }));
    }
    if want == 2 && same_file(&outputs[0], &outputs[1]) {
        return Err(PlanError(format!(
            "the two raid1 outputs must differ, both are {}",
            outputs[0].display()
        )));
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        dir.canonicalize()
            .ok()
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    a == b || matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

/// lvm2's rule for VG and LV names: `[a-zA-Z0-9+_.-]`, not starting with `-`, not `.`/`..`.
fn check_lvm_name(what: &str, name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PlanError(format!(
            "{what} {name:?}: expected 1-127 characters from [a-zA-Z0-9+_.-], not starting with '-'"
        )))
    }
}

fn layout(plan: &DataDiskPlan) -> Result<Layout, PlanError> {
    let size = plan.size.bytes();
    if size == 0 || !size.is_multiple_of(512) {
        return Err(PlanError(format!(
            "data disk size {size} bytes: expected a positive multiple of 512"
        )));
    }
    if !(1..=100).contains(&plan.data_percent) {
        return Err(PlanError(format!(
            "data percent {}: expected 1 to 100 (share of the volume group for the LV)",
            plan.data_percent
        )));
    }
    check_lvm_name("volume group name", &plan.vg_name)?;
    check_lvm_name("logical volume name", &plan.lv_name)?;
    if plan.data_label.is_empty() || plan.data_label.len() > 16 {
        return Err(PlanError(format!(
            "data filesystem label {:?}: expected 1 to 16 bytes (ext4 limit)",
            plan.data_label
        )));
    }

    if let Some(bad) = plan.vg_tags.iter().find(|t| !lvm::valid_tag(t)) {
        return Err(PlanError(format!(
            "volume group tag {bad:?}: expected 1-1024 characters from [A-Za-z0-9_+.-/=!:&#], not starting with '-'"
        )));
    }

    let seed = &plan.seed;
    let (array, members, pv_offset, pv_size) = if plan.raid1 {
        let geometry = md::geometry(size)?;
        let array = ArraySpec {
            uuid: seed.bytes("md-array-uuid", 16).try_into().expect("16 bytes"),
            name: format!("any:{}", plan.vg_name),
            time: plan.timestamp,
            raid_disks: 2,
            geometry,
        };
        if array.name.len() > 32 {
            return Err(PlanError(format!(
                "volume group name {:?} is too long to name the md array (at most 28 bytes with raid1)",
                plan.vg_name
            )));
        }
        let members = (0..2)
            .map(|n| MemberSpec {
                dev_number: n,
                device_uuid: seed
                    .bytes(&format!("md-device-uuid-{n}"), 16)
                    .try_into()
                    .expect("16 bytes"),
            })
            .collect();
        let offset = geometry.data_offset * md::SECTOR;
        let pv_size = geometry.array_size * md::SECTOR;
        (Some(array), members, offset, pv_size)
    } else {
        (None, Vec::new(), 0, size)
    };

    let extents = lvm::pe_count(pv_size);
    let lv_extents = extents * u64::from(plan.data_percent) / 100;
    if extents < MIN_EXTENTS || lv_extents < MIN_LV_EXTENTS {
        let need = minimum_size(plan);
        return Err(PlanError(format!(
            "data disk size {} is too small: {} MiB of LVM metadata{} and {} extents of {} MiB \
             ({}% for the LV, at least {MIN_LV_EXTENTS}) need at least {} ({need} bytes)",
            plan.size,
            lvm::PE_START >> 20,
            if plan.raid1 {
                " plus the md superblock area"
            } else {
                ""
            },
            extents.max(MIN_EXTENTS),
            lvm::EXTENT_SIZE >> 20,
            plan.data_percent,
            Size(need),
        )));
    }

    let pv_id = lvm::lvm_uuid(seed, "lvm-pv-uuid");
    let vg_id = lvm::lvm_uuid(seed, "lvm-vg-uuid");
    let lv_id = lvm::lvm_uuid(seed, "lvm-lv-uuid");
    let metadata = VgText {
        name: plan.vg_name.clone(),
        id: vg_id.clone(),
        seqno: 1,
        pv_id: pv_id.clone(),
        pv_device_size: pv_size,
        pe_count: extents,
        lv: Some(LvText {
            name: plan.lv_name.clone(),
            id: lv_id.clone(),
            extent_count: lv_extents,
        }),
        creation_host: CREATION_HOST.into(),
        creation_time: plan.timestamp,
        tags: plan.vg_tags.clone(),
    }
    .render();
    lvm::check_metadata_fits(&metadata).map_err(|e| PlanError(e.to_string()))?;

    let lv_offset = pv_offset + lvm::PE_START;
    let lv_size = lv_extents * lvm::EXTENT_SIZE;
    let free_extents = extents - lv_extents;
    let fs = Ext4Spec {
        offset: lv_offset,
        size: lv_size,
        label: plan.data_label.clone(),
        uuid: seed.uuid_string("data-fs-uuid"),
        hash_seed: seed.uuid_string("data-fs-hash-seed"),
        timestamp: plan.timestamp,
    };
    let report = DataDiskReport {
        vg_name: plan.vg_name.clone(),
        lv_name: plan.lv_name.clone(),
        pv_uuid: lvm::format_lvm_uuid(&pv_id),
        vg_uuid: lvm::format_lvm_uuid(&vg_id),
        lv_uuid: lvm::format_lvm_uuid(&lv_id),
        extent_size: lvm::EXTENT_SIZE,
        extents,
        lv_extents,
        free_extents,
        pv_offset,
        pv_size,
        lv_offset,
        lv_size,
        free_bytes: free_extents * lvm::EXTENT_SIZE,
        fs_uuid: fs.uuid.clone(),
        fs_label: fs.label.clone(),
        array: array.as_ref().map(|a| ArrayReport {
            uuid: md::mdadm_uuid(&a.uuid),
            name: a.name.clone(),
            data_offset: pv_offset,
            size: pv_size,
            device_uuids: members
                .iter()
                .map(|m: &MemberSpec| md::mdadm_uuid(&m.device_uuid))
                .collect(),
        }),
    };
    Ok(Layout {
        report,
        metadata,
        pv_id,
        array,
        members,
        fs,
    })
}

/// The smallest disk size (a whole MiB) the plan accepts.
fn minimum_size(plan: &DataDiskPlan) -> u64 {
    let mut size = lvm::PE_START + MIN_EXTENTS * lvm::EXTENT_SIZE;
    loop {
        let pv_size = if plan.raid1 {
            match md::geometry(size) {
                Ok(g) => g.array_size * md::SECTOR,
                Err(_) => 0,
            }
        } else {
            size
        };
        let extents = lvm::pe_count(pv_size);
        if extents >= MIN_EXTENTS && extents * u64::from(plan.data_percent) / 100 >= MIN_LV_EXTENTS {
            return size;
        }
        size += Size::MIB;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(size: &str, raid1: bool) -> DataDiskPlan {
        DataDiskPlan::new(size.parse().unwrap(), raid1, Seed("s".into()), 1_700_000_000)
    }

    #[test]
    fn splits_extents_85_15_like_lvcreate_percent_vg() {
        let l = layout(&plan("256M", false)).unwrap().report;
        assert_eq!((l.extents, l.lv_extents, l.free_extents), (63, 53, 10));
        assert_eq!(l.lv_offset, 1 << 20);
        assert_eq!(l.lv_size, 53 * (4 << 20));
        assert_eq!(l.free_bytes, 10 * (4 << 20));
        let l = layout(&plan("20G", false)).unwrap().report;
        assert_eq!((l.extents, l.lv_extents), (5119, 4351));
    }

    #[test]
    fn raid1_puts_the_pv_at_the_md_data_offset() {
        let l = layout(&plan("20G", true)).unwrap().report;
        let a = l.array.unwrap();
        assert_eq!(l.pv_offset, 34816 * 512);
        assert_eq!(l.lv_offset, l.pv_offset + (1 << 20));
        assert_eq!(a.name, "any:permanent");
        assert_eq!(a.device_uuids.len(), 2);
        assert_ne!(a.device_uuids[0], a.device_uuids[1]);
    }

    #[test]
    fn bad_plans_name_the_value() {
        let e = |p: DataDiskPlan| layout(&p).err().unwrap().0;
        assert!(e(plan("1000", false)).contains("multiple of 512"));
        let msg = e(plan("8M", false));
        assert!(
            msg.contains("too small") && msg.contains("need at least 17M"),
            "{msg}"
        );
        let mut p = plan("1G", false);
        p.data_percent = 0;
        assert!(e(p).contains("data percent 0"));
        let mut p = plan("1G", false);
        p.vg_name = "-x".into();
        assert!(e(p).contains("volume group name \"-x\""));
        let mut p = plan("1G", false);
        p.data_label = "a-very-long-label-x".into();
        assert!(e(p).contains("16 bytes"));
    }

    #[test]
    fn output_count_must_match_raid1() {
        let one = vec![PathBuf::from("a.raw")];
        let two = vec![PathBuf::from("a.raw"), PathBuf::from("b.raw")];
        assert!(check_outputs(&plan("1G", false), &one).is_ok());
        assert!(
            check_outputs(&plan("1G", false), &two)
                .unwrap_err()
                .0
                .contains("exactly 1")
        );
        assert!(
            check_outputs(&plan("1G", true), &one)
                .unwrap_err()
                .0
                .contains("exactly 2")
        );
        let same = vec![PathBuf::from("a.raw"), PathBuf::from("./a.raw")];
        assert!(
            check_outputs(&plan("1G", true), &same)
                .unwrap_err()
                .0
                .contains("must differ")
        );
    }
}
