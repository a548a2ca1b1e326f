//! Snapshots of the data volume: what a migration or an update can be rolled back to.
//!
//! On the appliance /data is ext4 on LV `permanent/data`, and a snapshot is an LVM snapshot
//! LV beside it (`permanent/PRE_MIGRATE`) in the room the VG keeps free (the data LV takes 85%).
//! Rolling back merges the snapshot into its origin (`lvconvert --merge`): /data is unmounted
//! for it, so every container that uses /data must be stopped first.
//!
//! With `storage: directories` (host tests, hosts that mount /data themselves) there is no
//! LVM: a snapshot is a copy of the data directory beside it (`<data>.snapshots/<name>`), and
//! rolling back copies it back. The callers cannot tell the two apart.
//!
//! A snapshot is taken with the app stopped and the database checkpointed (the callers'
//! business), so it is as consistent as a clean shutdown.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use host_util::CommandExt as _;

use crate::context::{Context, StorageMode};
use crate::lifecycle::Refused;
use crate::storage::{LV, VG};
use crate::tools::{CP, DF, FINDMNT, LVCONVERT, LVCREATE, LVREMOVE, LVS, MOUNT, UMOUNT, VGS};

/// The snapshot `database-migrate` takes before the migration hooks run.
pub const PRE_MIGRATE: &str = "PRE_MIGRATE";

/// The smallest snapshot, as a share of the data volume, that can hold what a migration and the
/// following days change; less free room in the VG is refused rather than risking a snapshot
/// that overflows (an overflowed snapshot is invalid and cannot be merged).
const MIN_SHARE_PERCENT: u64 = 10;

/// Takes snapshot `name` of the data volume, replacing an older one of that name. Refuses
/// (changing nothing) when there is no room for it. Returns a sentence for the record.
pub fn take(ctx: &Context, name: &str) -> anyhow::Result<String> {
    check_name(name)?;
    match ctx.storage {
        StorageMode::Devices => lvm::take(ctx, name),
        StorageMode::Directories => dirs::take(ctx, name),
    }
}

/// Whether snapshot `name` exists.
pub fn exists(ctx: &Context, name: &str) -> anyhow::Result<bool> {
    check_name(name)?;
    match ctx.storage {
        StorageMode::Devices => lvm::exists(name),
        StorageMode::Directories => Ok(dirs::path(ctx, name).is_dir()),
    }
}

/// Removes snapshot `name`; false when there was none.
pub fn remove(ctx: &Context, name: &str) -> anyhow::Result<bool> {
    check_name(name)?;
    match ctx.storage {
        StorageMode::Devices => lvm::remove(name),
        StorageMode::Directories => dirs::remove(ctx, name),
    }
}

/// Puts the data volume back to snapshot `name`, which is used up by it. Every container
/// that uses the data directory must be stopped (the database too).
pub fn merge_back(ctx: &Context, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    match ctx.storage {
        StorageMode::Devices => lvm::merge_back(ctx, name),
        StorageMode::Directories => dirs::merge_back(ctx, name),
    }
}

/// When the LVM snapshot `name` was taken (seconds since the epoch), from its
/// `ecs-snapshot-taken:<epoch>` tag; a snapshot without one counts as taken now.
pub fn taken_at(name: &str) -> anyhow::Result<f64> {
    check_name(name)?;
    let tags = LVS
        .command()?
        .args(["--noheadings", "-o", "lv_tags"])
        .arg(format!("{VG}/{name}"))
        .run_stdout()
        .with_context(|| format!("reading the tags of {VG}/{name}"))?;
    Ok(tags
        .trim()
        .split(',')
        .find_map(|t| t.strip_prefix("ecs-snapshot-taken:"))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(crate::status::now))
}

/// Snapshot names go into LV names and paths: letters, digits, `_` and `-` only.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.starts_with('-')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || name == LV
    {
        bail!("{name:?} is not a snapshot name (expected letters, digits, _ and -, not {LV:?})");
    }
    Ok(())
}

/// `what` bytes in MiB, for messages.
fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

mod lvm {
    use super::*;

    fn lv(name: &str) -> String {
        format!("{VG}/{name}")
    }

    /// One number from an LVM report (`--units b --nosuffix`).
    fn number(text: &str, what: &str) -> anyhow::Result<u64> {
        text.trim()
            .parse()
            .with_context(|| format!("reading {what} from LVM: {:?}", text.trim()))
    }

    pub fn exists(name: &str) -> anyhow::Result<bool> {
        let out = LVS
            .command()?
            .args(["--noheadings", "-o", "lv_name", VG])
            .run_stdout()
            .with_context(|| format!("listing the volumes of {VG}"))?;
        Ok(out.lines().any(|l| l.trim() == name))
    }

    /// /data must be the LV this module snapshots: anything else (plain ext4, the root fs) has
    /// no snapshot to fall back on, and the caller must not go ahead thinking it has one.
    fn check_data_is_the_lv(ctx: &Context) -> anyhow::Result<()> {
        let source = FINDMNT
            .command()?
            .args(["-n", "-o", "SOURCE", "--mountpoint"])
            .arg(&ctx.data_dir)
            .run_stdout()
            .unwrap_or_default();
        let source = source.trim();
        let expected = [format!("/dev/mapper/{VG}-{LV}"), format!("/dev/{VG}/{LV}")];
        if !expected.iter().any(|e| e == source) {
            return Err(Refused(format!(
                "{} is {}, not LVM volume {VG}/{LV}: there is nothing to take a snapshot of, so \
                 no rollback would be possible",
                ctx.data_dir.display(),
                if source.is_empty() {
                    "not a mount point".to_string()
                } else {
                    format!("mounted from {source}")
                }
            ))
            .into());
        }
        Ok(())
    }

    /// `vg_free` and `vg_extent_size` of the VG, in bytes.
    fn vg_room() -> anyhow::Result<(u64, u64)> {
        let vg = VGS
            .command()?
            .args([
                "--noheadings",
                "--units",
                "b",
                "--nosuffix",
                "-o",
                "vg_free,vg_extent_size",
                VG,
            ])
            .run_stdout()
            .with_context(|| format!("reading the free room of {VG}"))?;
        let mut cols = vg.split_whitespace();
        let free = number(cols.next().unwrap_or(""), "vg_free")?;
        let extent = number(cols.next().unwrap_or(""), "vg_extent_size")?.max(1);
        Ok((free, extent))
    }

    fn lv_size(name: &str) -> anyhow::Result<u64> {
        number(
            &LVS.command()?
                .args(["--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size"])
                .arg(lv(name))
                .run_stdout()
                .with_context(|| format!("reading the size of {}", lv(name)))?,
            "lv_size",
        )
    }

    pub fn take(ctx: &Context, name: &str) -> anyhow::Result<String> {
        check_data_is_the_lv(ctx)?;
        let (free, extent) = vg_room()?;
        let origin = lv_size(LV)?;
        // An older snapshot of this name gives its room back, but only once the new one is
        // known to fit: a refusal leaves it as it was.
        let older = if exists(name)? { lv_size(name)? } else { 0 };
        let least = origin * MIN_SHARE_PERCENT / 100;
        if free + older < least {
            return Err(Refused(format!(
                "volume group {VG} has {} free{}, and a snapshot of {} needs at least {} \
                 ({MIN_SHARE_PERCENT}% of it): add a disk to the volume group (vgextend) or \
                 remove other volumes, then run it again",
                mib(free),
                if older > 0 {
                    format!(" (with the older {name}'s {} that would be freed)", mib(older))
                } else {
                    String::new()
                },
                lv(LV),
                mib(least)
            ))
            .into());
        }
        let mut replaced = String::new();
        if older > 0 {
            remove(name)?;
            replaced = format!(", replacing the older {name}");
        }
        let (free, _) = vg_room()?;
        // All the free room, up to the origin's size (more could never be used): a snapshot that
        // fills up becomes invalid, and the VG keeps its room for this one.
        let extents = free.min(origin) / extent;
        LVCREATE
            .command()?
            .args(["-y", "-s", "-n", name, "-l", &extents.to_string()])
            .arg("--addtag")
            .arg(format!("ecs-snapshot-taken:{}", crate::status::now() as u64))
            .arg(lv(LV))
            .run_checked()
            .with_context(|| format!("creating the snapshot {}", lv(name)))?;
        Ok(format!(
            "snapshot {} of {} ({}{replaced})",
            lv(name),
            lv(LV),
            mib(extents * extent)
        ))
    }

    pub fn remove(name: &str) -> anyhow::Result<bool> {
        if !exists(name)? {
            return Ok(false);
        }
        LVREMOVE
            .command()?
            .args(["-y", &lv(name)])
            .run_checked()
            .with_context(|| format!("removing the snapshot {}", lv(name)))?;
        Ok(true)
    }

    pub fn merge_back(ctx: &Context, name: &str) -> anyhow::Result<()> {
        if !exists(name)? {
            bail!("there is no snapshot {} to roll back to", lv(name));
        }
        let attr = LVS
            .command()?
            .args(["--noheadings", "-o", "lv_attr"])
            .arg(lv(name))
            .run_stdout()
            .with_context(|| format!("reading the state of {}", lv(name)))?;
        // lv_attr's fifth character: `I` an invalid (overflowed) snapshot.
        if attr.trim().chars().nth(4) == Some('I') {
            bail!(
                "the snapshot {} overflowed and is invalid: it cannot be merged back; restore \
                 from the backup instead (ecs-agent recover)",
                lv(name)
            );
        }
        let mounted = FINDMNT
            .command()?
            .arg("--mountpoint")
            .arg(&ctx.data_dir)
            .run_checked()
            .is_ok();
        if mounted {
            UMOUNT
                .command()?
                .arg(&ctx.data_dir)
                .run_checked()
                .with_context(|| {
                    format!(
                        "unmounting {} to merge {} back (something still uses it: `fuser -vm {}`)",
                        ctx.data_dir.display(),
                        lv(name),
                        ctx.data_dir.display()
                    )
                })?;
        }
        // With the origin closed the merge starts at once; lvconvert waits for its end.
        let merged = LVCONVERT
            .command()?
            .args(["-y", "--merge", "-i", "5"])
            .arg(lv(name))
            .run_checked()
            .with_context(|| format!("merging {} back into {}", lv(name), lv(LV)));
        // Mount again whatever happened: the data the app runs on must be back in place.
        let device = PathBuf::from(format!("/dev/{VG}/{LV}"));
        let remount = MOUNT
            .command()?
            .args(["-t", "ext4"])
            .arg(&device)
            .arg(&ctx.data_dir)
            .run_checked()
            .with_context(|| {
                format!(
                    "mounting {} on {} again",
                    device.display(),
                    ctx.data_dir.display()
                )
            });
        merged?;
        remount?;
        if exists(name)? {
            bail!("{} still exists after its merge", lv(name));
        }
        Ok(())
    }
}

mod dirs {
    use super::*;

    /// `<data>.snapshots/<name>`, beside the data directory (not in it: a snapshot of a tree
    /// must not contain itself).
    pub fn path(ctx: &Context, name: &str) -> PathBuf {
        let mut base = ctx.data_dir.clone().into_os_string();
        base.push(".snapshots");
        PathBuf::from(base).join(name)
    }

    /// Bytes used under `dir`, not following links.
    fn used(dir: &Path) -> anyhow::Result<u64> {
        let mut total = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else {
                    total += meta.len();
                }
            }
        }
        Ok(total)
    }

    fn available(dir: &Path) -> anyhow::Result<u64> {
        let out = DF
            .command()?
            .args(["--output=avail", "-B1"])
            .arg(dir)
            .run_stdout()
            .with_context(|| format!("reading the free room of {}", dir.display()))?;
        out.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("reading the free room of {}: df printed {out:?}", dir.display()))
    }

    /// `cp -a` of the contents of `from` into the new directory `to` (ownership, modes, times,
    /// links kept; reflinked where the filesystem can).
    fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        let mut src = from.as_os_str().to_owned();
        src.push("/.");
        CP.command()?
            .args(["-a", "--reflink=auto"])
            .arg(src)
            .arg(to)
            .run_checked()
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(())
    }

    pub fn take(ctx: &Context, name: &str) -> anyhow::Result<String> {
        let dest = path(ctx, name);
        let base = dest.parent().expect("a snapshot path has a parent");
        std::fs::create_dir_all(base).with_context(|| format!("creating {}", base.display()))?;
        let need = used(&ctx.data_dir)?;
        let old = if dest.is_dir() { used(&dest)? } else { 0 };
        let free = available(base)? + old;
        if free < need {
            return Err(Refused(format!(
                "{} has {} free, and a copy of {} needs {}: free some room, then run it again",
                base.display(),
                mib(free),
                ctx.data_dir.display(),
                mib(need)
            ))
            .into());
        }
        let replaced = remove(ctx, name)?;
        // Copied under a temporary name: a snapshot that exists is a whole one.
        let partial = base.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        if let Err(e) = copy_tree(&ctx.data_dir, &partial) {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
        std::fs::rename(&partial, &dest).with_context(|| format!("renaming {}", partial.display()))?;
        Ok(format!(
            "snapshot {} of {} ({}{})",
            dest.display(),
            ctx.data_dir.display(),
            mib(need),
            if replaced {
                format!(", replacing the older {name}")
            } else {
                String::new()
            }
        ))
    }

    pub fn remove(ctx: &Context, name: &str) -> anyhow::Result<bool> {
        let p = path(ctx, name);
        if !p.exists() {
            return Ok(false);
        }
        std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        Ok(true)
    }

    pub fn merge_back(ctx: &Context, name: &str) -> anyhow::Result<()> {
        let snap = path(ctx, name);
        if !snap.is_dir() {
            bail!("there is no snapshot {} to roll back to", snap.display());
        }
        // The data directory itself may be a mount point: empty it rather than replace it.
        for entry in
            std::fs::read_dir(&ctx.data_dir).with_context(|| format!("reading {}", ctx.data_dir.display()))?
        {
            let p = entry?.path();
            let removed = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.with_context(|| format!("removing {}", p.display()))?;
        }
        copy_tree(&snap, &ctx.data_dir)?;
        std::fs::remove_dir_all(&snap).with_context(|| format!("removing {}", snap.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn ctx(root: &Path) -> Context {
        Context {
            data_dir: root.join("data"),
            storage: StorageMode::Directories,
            ..Context::default()
        }
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "-x", "a/b", "..", "data", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name(PRE_MIGRATE).unwrap();
    }

    #[test]
    fn a_directory_snapshot_is_whole_replaces_the_older_and_merges_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let data = &ctx.data_dir;
        std::fs::create_dir_all(data.join("vault/a")).unwrap();
        std::fs::write(data.join("vault/a/f"), b"before").unwrap();
        std::fs::set_permissions(data.join("vault/a/f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(!exists(&ctx, PRE_MIGRATE).unwrap());
        let msg = take(&ctx, PRE_MIGRATE).unwrap();
        assert!(msg.starts_with("snapshot "), "{msg}");
        assert!(exists(&ctx, PRE_MIGRATE).unwrap());
        std::fs::write(data.join("vault/a/f"), b"after").unwrap();
        std::fs::write(data.join("new"), b"x").unwrap();
        let msg = take(&ctx, PRE_MIGRATE).unwrap();
        assert!(msg.contains("replacing the older PRE_MIGRATE"), "{msg}");
        std::fs::write(data.join("vault/a/f"), b"broken by a migration").unwrap();
        std::fs::remove_file(data.join("new")).unwrap();
        merge_back(&ctx, PRE_MIGRATE).unwrap();
        assert_eq!(std::fs::read(data.join("vault/a/f")).unwrap(), b"after");
        assert_eq!(std::fs::read(data.join("new")).unwrap(), b"x");
        let mode = std::fs::metadata(data.join("vault/a/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(
            !exists(&ctx, PRE_MIGRATE).unwrap(),
            "a merged snapshot is used up"
        );
        let e = merge_back(&ctx, PRE_MIGRATE).unwrap_err().to_string();
        assert!(e.contains("there is no snapshot"), "{e}");
        assert!(!remove(&ctx, PRE_MIGRATE).unwrap());
    }
}
