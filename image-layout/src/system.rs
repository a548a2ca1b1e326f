//! The bootable system disk in one call: validate the plan, build GRUB, fill root (from the
//! tree, the extras and a grub.cfg) and volatile ext4, write the ESP on GPT, then the
//! partition table and the boot code. Written into a temporary file that is sparse
//! (`set_len`, then only used blocks written) and renamed to the final name only when complete.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use host_util::{AtomicFile, MissingTool};

use crate::esp::{self, EspError};
use crate::ext4::{self, Ext4Error, Ext4Spec, StreamError};
use crate::grub::{self, BiosBoot, GrubError};
use crate::layout::{Layout, Part, Role, SECTOR};
use crate::plan::{ExtraFile, ExtraKind, PlanError, Seed, Size, SystemDiskPlan, TableKind, TreeSource};
use crate::seed::format_uuid;
use crate::tree::{PreparedTree, TreeError, TreeStats};
use crate::{gpt, mbr};

pub const DEFAULT_ROOT_LABEL: &str = "cloudimg-rootfs";
pub const DEFAULT_VOLATILE_LABEL: &str = "ecs-volatile";
pub const DEFAULT_KERNEL_CMDLINE: &str = "console=ttyS0,115200 console=tty0";
/// Where the root filesystem's GRUB config goes; added unless the extras carry one.
pub const GRUB_CFG_PATH: &str = "/boot/grub/grub.cfg";

impl SystemDiskPlan {
    /// The appliance's defaults: 10G root `cloudimg-rootfs`, 10G volatile, serial + VGA console.
    pub fn new(table: TableKind, seed: Seed, timestamp: u64) -> SystemDiskPlan {
        SystemDiskPlan {
            table,
            root_size: Size::gib(10),
            volatile_size: Size::gib(10),
            root_label: DEFAULT_ROOT_LABEL.into(),
            volatile_label: DEFAULT_VOLATILE_LABEL.into(),
            kernel_cmdline: DEFAULT_KERNEL_CMDLINE.into(),
            seed,
            timestamp,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemDiskError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Missing(#[from] MissingTool),
    #[error(transparent)]
    Ext4(#[from] Ext4Error),
    #[error(transparent)]
    Grub(#[from] GrubError),
    #[error(transparent)]
    Esp(#[from] EspError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl SystemDiskError {
    /// True when the plan, the tree or the extras are wrong (exit code 2 in a CLI).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SystemDiskError::Plan(_) => true,
            SystemDiskError::Tree(t) => t.is_bad_input(),
            _ => false,
        }
    }
}

/// One partition as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub number: u32,
    pub role: Role,
    /// Byte offset and size.
    pub start: u64,
    pub size: u64,
    /// Filesystem label (ext4, FAT) or GPT name (BIOS boot).
    pub label: String,
    /// ext4 UUID, or the FAT volume id as `XXXX-XXXX`; None for the BIOS boot partition.
    pub fs_uuid: Option<String>,
    /// GPT unique partition GUID, or the MBR PARTUUID (`<signature>-<nn>`).
    pub part_uuid: String,
}

/// What `write_system_disk` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDiskReport {
    pub table: TableKind,
    pub partitions: Vec<PartitionReport>,
    /// Apparent size of the disk file.
    pub total_bytes: u64,
    /// Bytes the sparse file occupies (st_blocks * 512).
    pub used_bytes: u64,
    pub tree: TreeStats,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SystemDiskError {
    let what = what.into();
    move |source| SystemDiskError::Io { what, source }
}

fn fs_uuid(seed: &Seed, role: Role) -> String {
    seed.uuid_string(match role {
        Role::Root => "root-fs-uuid",
        _ => "volatile-fs-uuid",
    })
}

fn hash_seed(seed: &Seed, role: Role) -> String {
    seed.uuid_string(match role {
        Role::Root => "root-fs-hash-seed",
        _ => "volatile-fs-hash-seed",
    })
}

fn esp_volume_id(seed: &Seed) -> u32 {
    seed.u32("esp-volume-id")
}

/// Checks that the tree fits the root partition with ext4's overhead taken off.
pub fn check_tree_fits(tree: &TreeSource, stats: &TreeStats, root: &Part) -> Result<(), PlanError> {
    let fits = |size: u64| {
        let c = ext4::capacity(size);
        // Extent index blocks of fragmented large files: 1% of the data.
        stats.total_blocks() + stats.blocks / 100 + 16 <= c.blocks && stats.inodes <= c.inodes
    };
    if fits(root.size) {
        return Ok(());
    }
    let mut need = Size::MIB * 64;
    while !fits(need) {
        need += Size::MIB * 64;
    }
    let cap = ext4::capacity(root.size);
    let what = match tree {
        TreeSource::Dir(p) | TreeSource::Tarball(p) => p.display().to_string(),
    };
    Err(PlanError(format!(
        "tree {what} needs about {} in {} inodes, but root_size {} holds about {} in {} inodes after ext4 overhead: \
         expected root_size of at least {}",
        Size(stats.total_blocks() * 4096),
        stats.inodes,
        Size(root.size),
        Size(cap.blocks * 4096),
        cap.inodes,
        Size(need)
    )))
}

/// Writes the system disk for `plan` to `out`: nothing appears under `out` unless all of it
/// succeeded. `extra` lands in the root filesystem over the tree; a grub.cfg booting
/// `root=LABEL=<root_label>` is added unless `extra` has `/boot/grub/grub.cfg`.
pub fn write_system_disk(
    plan: &SystemDiskPlan,
    tree: &TreeSource,
    extra: &[ExtraFile],
    out: &Path,
) -> Result<SystemDiskReport, SystemDiskError> {
    let layout = Layout::system(plan)?;
    let mut extras = extra.to_vec();
    if !extras.iter().any(|x| x.path == GRUB_CFG_PATH) {
        extras.push(ExtraFile {
            path: GRUB_CFG_PATH.into(),
            kind: ExtraKind::Bytes(grub::grub_cfg(&plan.root_label, &plan.kernel_cmdline).into_bytes()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    let prepared = PreparedTree::prepare(tree, &extras, plan.timestamp)?;
    let root = layout.part(Role::Root).expect("system layouts have a root");
    check_tree_fits(tree, &prepared.stats(), root)?;
    // Every tool is found before the output file exists.
    ext4::MKE2FS.path()?;
    let bios = BiosBoot::build(&plan.root_label)?;
    let efi = match plan.table {
        TableKind::Gpt => {
            esp::MKFS_VFAT.path()?;
            esp::MCOPY.path()?;
            Some(grub::efi_image(&plan.root_label)?)
        }
        TableKind::Mbr => None,
    };

    let mut file = AtomicFile::create(out, 0o644).map_err(io_err(format!("creating {}", out.display())))?;
    let temp = file.temp_path().to_path_buf();
    file.file().set_len(layout.disk_size).map_err(io_err(format!(
        "sizing {} to {} bytes",
        temp.display(),
        layout.disk_size
    )))?;

    let signature = plan.seed.u32("mbr-disk-signature");
    let mut partitions = Vec::new();
    for p in &layout.parts {
        let part_uuid = match plan.table {
            TableKind::Gpt => format_uuid(&gpt::partition_guid(&plan.seed, p.number)),
            TableKind::Mbr => format!("{signature:08x}-{:02x}", p.number),
        };
        let mut fs = None;
        match p.role {
            Role::Root | Role::Volatile => {
                let spec = Ext4Spec {
                    offset: p.start,
                    size: p.size,
                    label: p.name.clone(),
                    uuid: fs_uuid(&plan.seed, p.role),
                    hash_seed: hash_seed(&plan.seed, p.role),
                    timestamp: plan.timestamp,
                };
                if p.role == Role::Root {
                    ext4::make_ext4_streamed(&temp, &spec, |stdin| prepared.stream(stdin)).map_err(|e| {
                        match e {
                            StreamError::Ext4(e) => SystemDiskError::Ext4(e),
                            StreamError::Feed(e) => SystemDiskError::Tree(e),
                        }
                    })?;
                } else {
                    ext4::make_ext4_on_zeros(&temp, &spec, &ext4::Ext4Contents::Empty)?;
                }
                fs = Some(spec.uuid);
            }
            Role::Esp => {
                let id = esp_volume_id(&plan.seed);
                let image = efi.as_deref().expect("GPT builds the EFI image");
                esp::make_esp(&temp, p.start, p.size, id, plan.timestamp, image)?;
                fs = Some(format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF));
            }
            Role::BiosBoot => {}
        }
        partitions.push(PartitionReport {
            number: p.number,
            role: p.role,
            start: p.start,
            size: p.size,
            label: match p.role {
                Role::Esp => "EFI".into(),
                _ => p.name.clone(),
            },
            fs_uuid: fs,
            part_uuid,
        });
    }

    // Tables and boot code last: nothing the filesystem tools write can touch them.
    write_boot_area(file.file(), &layout, &plan.seed, signature, &bios).map_err(|e| match e {
        BootAreaError::Io(source) => SystemDiskError::Io {
            what: format!("writing {}", temp.display()),
            source,
        },
        BootAreaError::Grub(g) => SystemDiskError::Grub(g),
    })?;
    file.flush()
        .map_err(io_err(format!("writing {}", temp.display())))?;
    let used = file
        .file()
        .metadata()
        .map_err(io_err(format!("reading {}", temp.display())))?
        .blocks()
        * 512;
    file.commit().map_err(io_err(format!(
        "renaming {} to {}",
        temp.display(),
        out.display()
    )))?;
    Ok(SystemDiskReport {
        table: plan.table,
        partitions,
        total_bytes: layout.disk_size,
        used_bytes: used,
        tree: prepared.stats(),
    })
}

enum BootAreaError {
    Io(io::Error),
    Grub(GrubError),
}

/// Sector 0 (table + boot.img), core.img, and on GPT the primary and backup tables.
fn write_boot_area(
    f: &File,
    layout: &Layout,
    seed: &Seed,
    signature: u32,
    bios: &BiosBoot,
) -> Result<(), BootAreaError> {
    let mut sector0 = [0u8; 512];
    mbr::write_table(&mut sector0, signature, &mbr::entries(layout));
    let (core_at, room) = match layout.table {
        TableKind::Mbr => (1, layout.parts[0].start_lba() - 1),
        TableKind::Gpt => {
            let p = layout
                .part(Role::BiosBoot)
                .expect("GPT layouts have a BIOS boot partition");
            (p.start_lba(), p.sectors())
        }
    };
    let core = bios.placed_core(core_at, room).map_err(BootAreaError::Grub)?;
    bios.patch_boot_sector(&mut sector0, core_at);
    f.write_all_at(&sector0, 0).map_err(BootAreaError::Io)?;
    f.write_all_at(&core, core_at * SECTOR)
        .map_err(BootAreaError::Io)?;
    if layout.table == TableKind::Gpt {
        for (offset, bytes) in gpt::writes(layout, seed) {
            f.write_all_at(&bytes, offset).map_err(BootAreaError::Io)?;
        }
    }
    Ok(())
}
