//! Step `storage`: /volatile and /data, found by label or created on blank disks, mounted,
//! with the seed's directory tree.
//!
//! Layout (docs/agent.md): volatile is ext4 `LABEL=ecs-volatile` (p2 of the system disk);
//! data is ext4 `LABEL=ecs-data` on LV `permanent/data` (85% of the VG), the VG on one blank
//! disk or on an md RAID1 of two. The agent formats only disks that carry no signature at all
//! (checked with `blkid -p`); anything else it did not expect stops the step with a message.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use host_util::{CommandError, CommandExt};
use serde::Deserialize;

use crate::context::{Context, StorageMode};
use crate::tools::{
    BLKID, FINDMNT, LSBLK, LVCREATE, MDADM, MKFS_EXT4, MOUNT, PARTX, PVCREATE, SFDISK, UDEVADM, VGCHANGE,
    VGCREATE,
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
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signature::Blank => write!(f, "nothing"),
            Signature::Found { kind, label } if label.is_empty() => write!(f, "{kind}"),
            Signature::Found { kind, label } => write!(f, "{kind} (LABEL={label})"),
        }
    }
}

/// Probes the device itself (not the blkid cache) for filesystem, RAID, LVM and partition-table signatures.
pub fn probe(dev: &Path) -> anyhow::Result<Signature> {
    let out = BLKID
        .command()?
        .arg("-p")
        .arg("-o")
        .arg("export")
        .arg(dev)
        .run_checked();
    let text = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        // blkid exits 2 when it finds nothing.
        Err(CommandError::Failed { status, .. }) if status.code() == Some(2) => return Ok(Signature::Blank),
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
        return Ok(Signature::Blank);
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
fn refuse(dev: &Path, sig: &Signature) -> anyhow::Error {
    anyhow::anyhow!(
        "{} carries {sig}, which the agent did not expect; it formats only blank disks. \
         If the disk is meant for the appliance, wipe it (wipefs -a {}) and restart; otherwise detach it",
        dev.display(),
        dev.display()
    )
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

#[derive(Debug, Deserialize)]
struct Lsblk {
    blockdevices: Vec<BlockDev>,
}

#[derive(Debug, Deserialize)]
struct BlockDev {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ro: serde_json::Value,
    #[serde(default)]
    children: Vec<BlockDev>,
}

impl BlockDev {
    fn contains(&self, path: &str) -> bool {
        self.path == path || self.children.iter().any(|c| c.contains(path))
    }
}

/// Whole disks that could hold data: not read-only, not the system disk.
fn candidate_disks(ctx_disks: Option<&[PathBuf]>, system: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(list) = ctx_disks {
        return Ok(list.to_vec());
    }
    let json = LSBLK.command()?.args(["-J", "-o", "PATH,TYPE,RO"]).run_stdout()?;
    let tree: Lsblk = serde_json::from_str(&json).context("parsing lsblk output")?;
    let system = system.map(|p| p.display().to_string());
    Ok(tree
        .blockdevices
        .into_iter()
        .filter(|d| d.kind == "disk")
        .filter(|d| !(d.ro == serde_json::Value::Bool(true) || d.ro == serde_json::json!("1")))
        .filter(|d| system.as_deref().is_none_or(|s| !d.contains(s)))
        .map(|d| PathBuf::from(d.path))
        .collect())
}

/// A disk the agent may use or must leave alone.
fn is_seed(sig: &Signature) -> bool {
    matches!(sig, Signature::Found { label, .. } if label.eq_ignore_ascii_case("cidata"))
}

/// Decides what to do with the data disks: which blank ones to use, or why to stop.
pub fn plan_data_disks(disks: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut blank = Vec::new();
    for d in disks {
        match probe(d)? {
            Signature::Blank => blank.push(d.clone()),
            s if is_seed(&s) => {}
            s => return Err(refuse(d, &s)),
        }
    }
    if blank.is_empty() {
        bail!("no data found (no LABEL={DATA_LABEL}) and no blank disk to create it on");
    }
    blank.truncate(2);
    Ok(blank)
}

/// Creates md RAID1 (two disks) → LVM VG `permanent` → LV `data` (85%) → ext4 `ecs-data`.
fn create_data(disks: &[PathBuf]) -> anyhow::Result<PathBuf> {
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
    PVCREATE
        .command()?
        .arg(&pv)
        .run_checked()
        .context("creating the LVM physical volume")?;
    VGCREATE
        .command()?
        .arg(VG)
        .arg(&pv)
        .run_checked()
        .context("creating the volume group")?;
    LVCREATE
        .command()?
        .args(["-y", "-l", "85%VG", "-n", LV, VG])
        .run_checked()
        .context("creating the data volume")?;
    let lv = PathBuf::from(format!("/dev/{VG}/{LV}"));
    format_blank(&lv, DATA_LABEL)?;
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

fn mount(dev: &Path, dir: &Path) -> anyhow::Result<()> {
    if is_mountpoint(dir)? {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    MOUNT
        .command()?
        .args(["-t", "ext4"])
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
pub fn run(ctx: &Context, create: bool) -> anyhow::Result<String> {
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
        StorageMode::Devices => run_devices(ctx, create),
    }
}

fn run_devices(ctx: &Context, create: bool) -> anyhow::Result<String> {
    let mut notes = Vec::new();
    // An existing VG is activated so its LV label becomes visible; none is fine.
    if let Ok(mut c) = VGCHANGE.command() {
        let _ = c.args(["-ay", VG]).run_checked();
    }
    let only = ctx.data_disks.as_deref();
    let root = find_label_in(ROOT_LABEL, only)?;
    let system_disk = match &root {
        Some(p) => {
            let out = LSBLK.command()?.args(["-no", "PKNAME"]).arg(p).run_stdout()?;
            Some(PathBuf::from(format!("/dev/{}", out.trim())))
        }
        None => None,
    };
    let data = find_label_in(DATA_LABEL, only)?;
    let volatile = find_label_in(VOLATILE_LABEL, only)?;
    if (data.is_none() || volatile.is_none()) && !create {
        bail!(
            "no filesystem LABEL={DATA_LABEL} or LABEL={VOLATILE_LABEL}, and appliance.storage.create is false"
        );
    }
    // Decide everything before changing anything: a refusal leaves every disk as it was.
    let data_plan = match &data {
        Some(_) => None,
        None => Some(plan_data_disks(&candidate_disks(
            ctx.data_disks.as_deref(),
            system_disk.as_deref(),
        )?)?),
    };
    if volatile.is_none() && system_disk.is_none() {
        bail!("no LABEL={VOLATILE_LABEL} and no system disk (LABEL={ROOT_LABEL}) to add it to");
    }
    let volatile = match volatile {
        Some(d) => d,
        None => {
            notes.push("created volatile".to_string());
            create_volatile(
                system_disk.as_deref().expect("checked above"),
                root.as_deref().expect("the system disk was found through root"),
            )?
        }
    };
    mount(&volatile, &ctx.volatile_dir)?;
    let data = match (data, data_plan) {
        (Some(d), _) => d,
        (None, Some(plan)) => {
            let names: Vec<String> = plan.iter().map(|p| p.display().to_string()).collect();
            notes.push(format!("created data on {}", names.join(" + ")));
            create_data(&plan)?
        }
        (None, None) => bail!("no data volume and no plan to create one"),
    };
    mount(&data, &ctx.data_dir)?;
    make_tree(&ctx.data_dir, &ctx.volatile_dir)?;
    notes.push(format!(
        "{} on {}, {} on {}",
        volatile.display(),
        ctx.volatile_dir.display(),
        data.display(),
        ctx.data_dir.display()
    ));
    Ok(notes.join("; "))
}

/// For tests and operators: the data disks this host would use, or the refusal.
pub fn check_disks(disks: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    plan_data_disks(&candidate_disks(Some(disks), None)?)
}
