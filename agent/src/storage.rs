//! Step `storage`: /volatile and /data, found by label or created on blank disks, mounted,
//! with the seed's directory tree.
//!
//! Layout (docs/agent.md): volatile is ext4 `LABEL=ecs-volatile` (p2 of the system disk);
//! data is ext4 `LABEL=ecs-data` on LV `permanent/data` (85% of the VG), the VG on one blank
//! disk or on an md RAID1 of two, tagged `ecs-appliance:<domain>` for its owner. Only whole,
//! fixed, writable disks are ever considered (`disks`); a VG `permanent` of another appliance
//! is refused before anything activates it (`owner`); a disk is blank only when blkid finds no
//! signature and its first and last MiB read as zeros. Everything is decided before anything
//! is written, so a refusal leaves every disk as it was.

mod disks;
mod owner;

pub use disks::{
    BlockDev, Facts, Lsblk, candidates, check_listed, facts, lsblk, parse as parse_lsblk, unfit,
};
pub use owner::{TAG_PREFIX, tag as owner_tag};

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use host_util::{CommandError, CommandExt};
use serde::Deserialize;

use crate::context::{Context, StorageMode};
use crate::envfile::Settings;
use crate::tools::{
    BLKID, FINDMNT, LVCREATE, MDADM, MKFS_EXT4, MOUNT, PARTX, PVCREATE, SFDISK, UDEVADM, VGCHANGE, VGCREATE,
};

pub const VOLATILE_LABEL: &str = "ecs-volatile";
pub const DATA_LABEL: &str = "ecs-data";
pub const ROOT_LABEL: &str = "cloudimg-rootfs";
pub const VG: &str = "permanent";
pub const LV: &str = "data";

/// The seed's directory tree.
pub const VOLATILE_DIRS: &[&str] = &[
    "tmp",
    "var/tmp",
    "docker",
    "ecs-log",
    "ecs-cache",
    "container/ecs-elasticsearch",
    "container/redis",
    "container/ecs-postfix",
];
pub const DATA_DIRS: &[&str] = &[
    "ecs-storage-vault",
    "container/ecs-postgres",
    "dump/ecs-postgres",
    "etc",
];

/// What a device carries, from `blkid -p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    Blank,
    /// TYPE, LABEL (may be empty), and PTTYPE for partition tables.
    Found {
        kind: String,
        label: String,
    },
    /// No signature, but the first or last MiB holds data: a disk in use in no known format.
    Data,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signature::Blank => write!(f, "nothing"),
            Signature::Data => write!(f, "data in no known format (its first or last MiB is not zeros)"),
            Signature::Found { kind, label } if label.is_empty() => write!(f, "{kind}"),
            Signature::Found { kind, label } => write!(f, "{kind} (LABEL={label})"),
        }
    }
}

/// How much of each end of a device must read as zeros for it to count as blank.
const ZERO_CHECK: u64 = 1 << 20;

/// Whether the first and last MiB of `dev` read as zeros. A device that cannot be opened or
/// read is an error naming it, never "blank".
pub fn ends_are_zero(dev: &Path) -> anyhow::Result<bool> {
    let err = |what: &str, e: std::io::Error| anyhow::anyhow!("cannot {what} {}: {e}", dev.display());
    let mut f = std::fs::File::open(dev).map_err(|e| err("open", e))?;
    let size = f.seek(SeekFrom::End(0)).map_err(|e| err("seek in", e))?;
    // An unbound loop device or an empty drive opens fine and reads nothing.
    if size == 0 {
        bail!("cannot read {}: it has no media (size 0)", dev.display());
    }
    let mut buf = vec![0u8; ZERO_CHECK.min(size) as usize];
    for at in [0, size.saturating_sub(ZERO_CHECK)] {
        f.seek(SeekFrom::Start(at)).map_err(|e| err("seek in", e))?;
        f.read_exact(&mut buf).map_err(|e| err("read", e))?;
        if buf.iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Probes the device itself (not the blkid cache) for filesystem, RAID, LVM and partition-table
/// signatures, and reads both ends: Blank means no signature and zeros there.
pub fn probe(dev: &Path) -> anyhow::Result<Signature> {
    // Read first: blkid's "nothing found" (exit 2) is also what it says for a path it cannot open.
    let zeros = ends_are_zero(dev)?;
    let out = BLKID
        .command()?
        .arg("-p")
        .arg("-o")
        .arg("export")
        .arg(dev)
        .run_checked();
    let blank = if zeros { Signature::Blank } else { Signature::Data };
    let text = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        // blkid exits 2 when it finds nothing.
        Err(CommandError::Failed { status, .. }) if status.code() == Some(2) => return Ok(blank),
        Err(e) => return Err(e).with_context(|| format!("probing {}", dev.display())),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_string()
    };
    // On a partition blkid also reports the partition table's entry for it (PART_ENTRY_*):
    // that describes the table, not the contents.
    let about_contents = text.lines().any(|l| {
        let key = l.split('=').next().unwrap_or("");
        !key.is_empty() && key != "DEVNAME" && !key.starts_with("PART_ENTRY_")
    });
    if !about_contents {
        return Ok(blank);
    }
    let kind = match (field("TYPE"), field("PTTYPE")) {
        (t, _) if !t.is_empty() => t,
        (_, p) if !p.is_empty() => format!("a {p} partition table"),
        _ => "an unknown signature".into(),
    };
    Ok(Signature::Found {
        kind,
        label: field("LABEL"),
    })
}

/// The refusal every formatting path goes through.
fn refusal(dev: &Path, sig: &Signature) -> String {
    let wipe = match sig {
        Signature::Data => format!("blkdiscard -z {} (or dd from /dev/zero)", dev.display()),
        _ => format!("wipefs -a {}", dev.display()),
    };
    format!(
        "{} carries {sig}, which the agent did not expect; it formats only blank disks. \
         If the disk is meant for the appliance, wipe it ({wipe}) and restart; otherwise detach it",
        dev.display(),
    )
}

fn refuse(dev: &Path, sig: &Signature) -> anyhow::Error {
    anyhow::anyhow!("{}", refusal(dev, sig))
}

/// Makes an ext4 filesystem with `label` on `dev`, which must be blank.
pub fn format_blank(dev: &Path, label: &str) -> anyhow::Result<()> {
    let sig = probe(dev)?;
    if sig != Signature::Blank {
        return Err(refuse(dev, &sig));
    }
    tracing::info!("making ext4 LABEL={label} on {}", dev.display());
    MKFS_EXT4
        .command()?
        .args(["-q", "-L", label, "-m", "1"])
        .arg(dev)
        .run_checked()
        .with_context(|| format!("formatting {}", dev.display()))?;
    Ok(())
}

/// The device carrying a filesystem label, if any; among `only` when given.
pub fn find_label_in(label: &str, only: Option<&[PathBuf]>) -> anyhow::Result<Option<PathBuf>> {
    let Some(devices) = only else {
        return find_label(label);
    };
    for d in devices {
        if let Signature::Found { label: l, .. } = probe(d)?
            && l == label
        {
            return Ok(Some(d.clone()));
        }
    }
    Ok(None)
}

/// The device carrying a filesystem label, if any.
pub fn find_label(label: &str) -> anyhow::Result<Option<PathBuf>> {
    match BLKID
        .command()?
        .args(["-l", "-o", "device", "-t"])
        .arg(format!("LABEL={label}"))
        .run_stdout()
    {
        Ok(s) => Ok(s
            .lines()
            .next()
            .map(|l| PathBuf::from(l.trim()))
            .filter(|p| !p.as_os_str().is_empty())),
        Err(CommandError::Failed { status, .. }) if status.code() == Some(2) => Ok(None),
        Err(e) => Err(e).context("searching devices by label"),
    }
}

/// The seed (NoCloud `cidata`): never a data disk, never refused either.
fn is_seed(sig: &Signature) -> bool {
    matches!(sig, Signature::Found { label, .. } if label.eq_ignore_ascii_case("cidata"))
}

/// Sorts disks into blank ones (to use) and refusals (each naming its device and what it
/// carries); the seed is skipped.
fn sort_disks(disks: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, Vec<String>)> {
    let mut blank = Vec::new();
    let mut refused = Vec::new();
    for d in disks {
        match probe(d)? {
            Signature::Blank => blank.push(d.clone()),
            s if is_seed(&s) => {}
            s => refused.push(refusal(d, &s)),
        }
    }
    Ok((blank, refused))
}

/// Decides what to do with the data disks: which blank ones to use, or why to stop.
pub fn plan_data_disks(disks: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let (mut blank, refused) = sort_disks(disks)?;
    if !refused.is_empty() {
        bail!("{}", refused.join("; "));
    }
    if blank.is_empty() {
        bail!("no data found (no LABEL={DATA_LABEL}) and no blank disk to create it on");
    }
    blank.truncate(2);
    Ok(blank)
}

/// Creates md RAID1 (two disks) → LVM VG `permanent` tagged for `domain` → LV `data` (85%) →
/// ext4 `ecs-data`.
fn create_data(disks: &[PathBuf], domain: &str, only: Option<&[PathBuf]>) -> anyhow::Result<PathBuf> {
    let pv = if disks.len() == 2 {
        // Named as `ecs-build disk data --raid1` names it: any host assembles it as /dev/md/permanent.
        let md = PathBuf::from(format!("/dev/md/{VG}"));
        MDADM
            .command()?
            .arg("--create")
            .arg(&md)
            .args([
                "--run",
                "--level=1",
                "--raid-devices=2",
                "--metadata=1.2",
                "--bitmap=internal",
                "--homehost=any",
                &format!("--name={VG}"),
            ])
            .args(disks)
            .run_checked()
            .context("creating the RAID1 mirror")?;
        md
    } else {
        disks[0].clone()
    };
    // A test context restricts lvm2 to its listed disks; the md device is then one of them.
    let mut devices: Option<Vec<PathBuf>> = only.map(<[PathBuf]>::to_vec);
    if let Some(d) = devices.as_mut()
        && !d.contains(&pv)
    {
        d.push(pv.clone());
    }
    let restrict = owner::restrict(devices.as_deref());
    PVCREATE
        .command()?
        .args(&restrict)
        .arg(&pv)
        .run_checked()
        .context("creating the LVM physical volume")?;
    VGCREATE
        .command()?
        .args(&restrict)
        .arg("--addtag")
        .arg(owner::tag(domain))
        .arg(VG)
        .arg(&pv)
        .run_checked()
        .context("creating the volume group")?;
    LVCREATE
        .command()?
        .args(&restrict)
        .args(["-y", "-W", "y", "-l", "85%VG", "-n", LV, VG])
        .run_checked()
        .context("creating the data volume")?;
    let lv = PathBuf::from(format!("/dev/{VG}/{LV}"));
    // The LV is new on a disk checked blank, its start wiped by lvcreate: no zero check here.
    MKFS_EXT4
        .command()?
        .args(["-q", "-L", DATA_LABEL, "-m", "1"])
        .arg(&lv)
        .run_checked()
        .with_context(|| format!("formatting {}", lv.display()))?;
    Ok(lv)
}

#[derive(Debug, Deserialize)]
struct SfdiskDump {
    partitiontable: PartitionTable,
}

#[derive(Debug, Deserialize)]
struct PartitionTable {
    #[serde(default)]
    partitions: Vec<Partition>,
}

#[derive(Debug, Deserialize)]
struct Partition {
    node: String,
    start: u64,
}

/// The system disk's partitions, by start sector.
fn partitions(disk: &Path) -> anyhow::Result<Vec<Partition>> {
    let json = SFDISK
        .command()?
        .arg("--json")
        .arg(disk)
        .run_stdout()
        .with_context(|| format!("reading the partition table of {}", disk.display()))?;
    let dump: SfdiskDump = serde_json::from_str(&json)
        .with_context(|| format!("parsing sfdisk --json output for {}", disk.display()))?;
    let mut parts = dump.partitiontable.partitions;
    parts.sort_by_key(|p| p.start);
    Ok(parts)
}

/// The partition number at the end of a node name (/dev/vda2 → 2, /dev/nvme0n1p3 → 3).
fn part_number(node: &str) -> anyhow::Result<String> {
    let digits = &node[node.trim_end_matches(|c: char| c.is_ascii_digit()).len()..];
    if digits.is_empty() {
        bail!("partition {node} has no number");
    }
    Ok(digits.to_string())
}

/// Waits until udev made the node of a partition the kernel was just told about.
fn wait_for_node(node: &Path) -> anyhow::Result<()> {
    if let Ok(mut c) = UDEVADM.command() {
        let _ = c.args(["settle", "--timeout=10"]).run_checked();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !node.exists() {
        if std::time::Instant::now() > deadline {
            bail!("{} did not appear after adding the partition", node.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// Adds the volatile partition in the free space after the last partition of the system disk
/// (a cloud image comes with root alone) and formats it. A blank last partition after root,
/// left by an earlier run that stopped before formatting, is used instead of adding another.
pub fn create_volatile(system_disk: &Path, root: &Path) -> anyhow::Result<PathBuf> {
    let before = partitions(system_disk)?;
    let root_start = before
        .iter()
        .find(|p| Path::new(&p.node) == root)
        .map(|p| p.start);
    let leftover = before
        .last()
        .filter(|p| root_start.is_some_and(|r| p.start > r) && Path::new(&p.node) != root);
    let node = match leftover {
        Some(p) if Path::new(&p.node).exists() && probe(Path::new(&p.node))? == Signature::Blank => {
            tracing::info!("using the blank partition {} left by an earlier run", p.node);
            PathBuf::from(&p.node)
        }
        _ => {
            // One Linux partition over the rest of the disk; the kernel is told by partx since
            // the disk is in use (root is mounted), which rules out a full re-read.
            SFDISK
                .command()?
                .args(["--append", "--no-reread", "--no-tell-kernel", "--quiet"])
                .arg(system_disk)
                .run_with_input(b",,L\n")
                .with_context(|| format!("adding the volatile partition to {}", system_disk.display()))?;
            let after = partitions(system_disk)?;
            let added = after
                .iter()
                .find(|p| !before.iter().any(|b| b.node == p.node))
                .with_context(|| format!("sfdisk added no partition to {}", system_disk.display()))?;
            let node = PathBuf::from(&added.node);
            let nr = part_number(&added.node)?;
            let add = PARTX
                .command()?
                .args(["--add", "--nr", &nr])
                .arg(system_disk)
                .run_checked();
            // The kernel may already hold an entry of that number (a partition deleted from
            // the table while the disk was in use): then it is updated to the new geometry.
            if let Err(e) = add {
                PARTX
                    .command()?
                    .args(["--update", "--nr", &nr])
                    .arg(system_disk)
                    .run_checked()
                    .map_err(|_| e)
                    .with_context(|| format!("telling the kernel about {}", node.display()))?;
            }
            node
        }
    };
    wait_for_node(&node)?;
    format_blank(&node, VOLATILE_LABEL)?;
    Ok(node)
}

fn is_mountpoint(dir: &Path) -> anyhow::Result<bool> {
    Ok(FINDMNT
        .command()?
        .arg("--mountpoint")
        .arg(dir)
        .run_checked()
        .is_ok())
}

/// /data and /volatile hold data, never device nodes or setuid programs: an attacker who can
/// write there (a container's volume) gains nothing from making one.
pub const MOUNT_OPTIONS: &str = "nodev,nosuid";

fn mount(dev: &Path, dir: &Path) -> anyhow::Result<()> {
    if is_mountpoint(dir)? {
        // Mounted by fstab or an older agent: make sure the options hold.
        MOUNT
            .command()?
            .args(["-o", &format!("remount,{MOUNT_OPTIONS}")])
            .arg(dir)
            .run_checked()
            .with_context(|| format!("remounting {} {MOUNT_OPTIONS}", dir.display()))?;
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    MOUNT
        .command()?
        .args(["-t", "ext4", "-o", MOUNT_OPTIONS])
        .arg(dev)
        .arg(dir)
        .run_checked()
        .with_context(|| format!("mounting {} on {}", dev.display(), dir.display()))?;
    Ok(())
}

/// The seed's directory tree under data and volatile.
pub fn make_tree(data: &Path, volatile: &Path) -> anyhow::Result<()> {
    for (base, dirs) in [(volatile, VOLATILE_DIRS), (data, DATA_DIRS)] {
        for d in dirs {
            let p = base.join(d);
            std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for t in ["tmp", "var/tmp"] {
        let p = volatile.join(t);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777))
            .with_context(|| format!("setting the mode of {}", p.display()))?;
    }
    Ok(())
}

/// Runs the step; returns the line for the status file.
pub fn run(ctx: &Context, settings: &Settings) -> anyhow::Result<String> {
    match ctx.storage {
        StorageMode::Directories => {
            for d in [&ctx.data_dir, &ctx.volatile_dir] {
                if !d.is_dir() {
                    bail!(
                        "{} is not a directory (storage: directories expects both to exist)",
                        d.display()
                    );
                }
            }
            make_tree(&ctx.data_dir, &ctx.volatile_dir)?;
            Ok(format!(
                "directories {} and {}",
                ctx.data_dir.display(),
                ctx.volatile_dir.display()
            ))
        }
        StorageMode::Devices => run_devices(ctx, settings),
    }
}

/// A directory on the root filesystem, for a filesystem env.yml says to ignore.
fn root_directory(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(format!(
        "{} is a directory on the root filesystem (appliance.storage.ignore)",
        dir.display()
    ))
}

/// What was decided for /data before anything is written.
enum DataPlan {
    Ignored,
    Found(PathBuf),
    Create(Vec<PathBuf>),
}

fn run_devices(ctx: &Context, settings: &Settings) -> anyhow::Result<String> {
    let policy = &settings.storage;
    let domain = settings.domain.as_str();
    let only = ctx.data_disks.as_deref();
    let mut notes = Vec::new();
    let tree = disks::lsblk()?;
    let facts = disks::facts(ctx.allow_loop_disks)?;

    // Data first, decided completely before anything is written or activated.
    let data = if policy.ignore.data {
        DataPlan::Ignored
    } else {
        let mut refused = Vec::new();
        // The owner tag, read from metadata before any activation.
        let rows = owner::physical_volumes(only)?;
        let (vg_pvs, vg_owner) = owner::owner(&rows, VG, domain);
        match &vg_owner {
            owner::Owner::Foreign(owners) if policy.adopt => {
                owner::adopt(VG, domain, owners, only)?;
                let from = if owners.is_empty() {
                    "untagged".to_string()
                } else {
                    format!("owner was {}", owners.join(", "))
                };
                tracing::warn!("adopted volume group {VG} on {} ({from})", vg_pvs.join(" + "));
                notes.push(format!("adopted {VG} on {} ({from})", vg_pvs.join(" + ")));
            }
            owner::Owner::Foreign(owners) => refused.push(owner::refusal(&vg_pvs, VG, owners, domain)),
            owner::Owner::Absent | owner::Owner::Ours => {}
        }
        let found = if refused.is_empty() && vg_owner != owner::Owner::Absent {
            VGCHANGE
                .command()?
                .args(owner::restrict(only))
                .args(["-ay", VG])
                .run_checked()
                .with_context(|| format!("activating volume group {VG}"))?;
            find_label_in(DATA_LABEL, only)?
        } else if refused.is_empty() {
            find_label_in(DATA_LABEL, only)?
        } else {
            None
        };
        match found {
            Some(d) => DataPlan::Found(d),
            None => {
                let listed = match only {
                    Some(list) => match check_listed(&tree, &facts, list, &disks::majmin) {
                        Ok(l) => l,
                        Err(r) => {
                            refused.extend(r);
                            Vec::new()
                        }
                    },
                    None => candidates(&tree, &facts),
                };
                // A refused VG's PVs are reported once, as the VG's.
                let listed: Vec<PathBuf> = listed
                    .into_iter()
                    .filter(|d| !vg_pvs.iter().any(|p| Path::new(p) == d))
                    .collect();
                let (blank, not_blank) = if policy.create {
                    sort_disks(&listed)?
                } else {
                    (Vec::new(), Vec::new())
                };
                refused.extend(not_blank);
                if !refused.is_empty() {
                    bail!("{}", refused.join("; "));
                }
                if !policy.create {
                    bail!(
                        "no filesystem LABEL={DATA_LABEL} found, and appliance.storage.create is false: \
                         nothing is created. Attach this appliance's data disk, or set create: true \
                         to make one on a blank disk"
                    );
                }
                if blank.is_empty() {
                    bail!("no data found (no LABEL={DATA_LABEL}) and no blank disk to create it on");
                }
                DataPlan::Create(blank.into_iter().take(2).collect())
            }
        }
    };

    // Volatile: by label, or a new partition after root on the disk mounted as `/`.
    let volatile = if policy.ignore.volatile {
        None
    } else {
        match find_label_in(VOLATILE_LABEL, only)? {
            Some(v) => Some((v, None)),
            None => {
                if !policy.create {
                    bail!(
                        "no filesystem LABEL={VOLATILE_LABEL} found, and appliance.storage.create is false: \
                         nothing is created"
                    );
                }
                let root = disks::root_source()?.with_context(|| {
                    format!("no LABEL={VOLATILE_LABEL} and / is not on a block device to add it to")
                })?;
                let system = disks::disk_of(&tree, &root).with_context(|| {
                    format!(
                        "no LABEL={VOLATILE_LABEL} and no disk found under / ({})",
                        root.display()
                    )
                })?;
                // A context that lists disks (tests) never has the host's system disk changed.
                if only.is_some_and(|l| !l.contains(&system)) {
                    bail!(
                        "no LABEL={VOLATILE_LABEL} among the context's data-disks, and the system disk {} is not listed",
                        system.display()
                    );
                }
                Some((PathBuf::new(), Some((system, root))))
            }
        }
    };

    let volatile_note = match volatile {
        None => root_directory(&ctx.volatile_dir)?,
        Some((found, create)) => {
            let dev = match create {
                Some((system, root)) => {
                    notes.push("created volatile".to_string());
                    create_volatile(&system, &root)?
                }
                None => found,
            };
            mount(&dev, &ctx.volatile_dir)?;
            format!("{} on {}", dev.display(), ctx.volatile_dir.display())
        }
    };
    let data_note = match data {
        DataPlan::Ignored => root_directory(&ctx.data_dir)?,
        DataPlan::Found(d) => {
            mount(&d, &ctx.data_dir)?;
            format!("{} on {}", d.display(), ctx.data_dir.display())
        }
        DataPlan::Create(plan) => {
            let names: Vec<String> = plan.iter().map(|p| p.display().to_string()).collect();
            notes.push(format!("created data on {}", names.join(" + ")));
            let d = create_data(&plan, domain, only)?;
            mount(&d, &ctx.data_dir)?;
            format!("{} on {}", d.display(), ctx.data_dir.display())
        }
    };
    make_tree(&ctx.data_dir, &ctx.volatile_dir)?;
    notes.push(format!("{volatile_note}, {data_note}"));
    Ok(notes.join("; "))
}

/// For tests and operators: the data disks this host would use, or the refusal.
pub fn check_disks(disks: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    plan_data_disks(disks)
}
