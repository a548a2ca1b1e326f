//! Stage 1, rootfs: the Debian base tree as mmdebstrap's tarball, made rootless
//! (`--mode=unshare`) and cached under a hash of everything that went into it.
//!
//! The cache lives in `$XDG_CACHE_HOME/ecs-build/rootfs` (else `~/.cache/ecs-build/rootfs`):
//! `<key>.tar` and `<key>.json` (inputs, package list, tar size). mmdebstrap writes to a
//! temporary name that is renamed only after it succeeded, so a failed or interrupted build
//! never leaves a usable-looking entry. Only what belongs to every appliance built from the same
//! package set is done here (network config, machine-id, host keys); the agent, units and
//! configuration are the overlay's job, so changing them reuses the cache.

use std::path::{Path, PathBuf};

use anyhow::Context;
use host_util::{CommandExt, Tool};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::packages::{self, Package};
use crate::machine::Machine;

pub const MMDEBSTRAP: Tool = Tool::new("mmdebstrap", "mmdebstrap");

/// Bump when the way the base is made changes in a way the inputs below do not show.
const CACHE_FORMAT: u32 = 2;

/// Runs before any package is unpacked: kernel upgrades keep /boot/vmlinuz and /boot/initrd.img
/// pointing at the newest kernel, so the static grub.cfg stays right without grub in the image.
const SETUP_HOOK: &str =
    r#"mkdir -p "$1/etc" && printf 'do_symlinks = yes\nlink_in_boot = yes\n' > "$1/etc/kernel-img.conf""#;

/// Runs after all packages are installed, inside the new tree's namespace.
///
/// No LVM volume group is autoactivated, neither by udev in the initramfs (which carries a copy
/// of /etc/lvm and lvm2's udev rules, hence the rebuild) nor after it: ecs-agent activates VG
/// `permanent` only after its owner tag says it is this appliance's, so another appliance's
/// data disk attached at boot stays inactive. An explicit `vgchange -ay` still works.
const CUSTOMIZE_HOOK: &str = r#"set -e
chroot "$1" systemctl enable systemd-networkd.service systemd-resolved.service
rm -f "$1"/etc/ssh/ssh_host_*
: > "$1/etc/machine-id"
rm -f "$1/var/lib/dbus/machine-id"
mkdir -p "$1/etc/lvm"
printf '# Written by ecs-build: nothing is autoactivated; ecs-agent activates VG permanent\n# after checking its owner tag (ecs-appliance:<domain>).\nactivation {\n\tauto_activation_volume_list = []\n}\n' > "$1/etc/lvm/lvmlocal.conf"
if [ -x "$1/usr/sbin/update-initramfs" ]; then chroot "$1" update-initramfs -u -k all; fi
"#;

/// What the cache key is computed from; also stored beside the tarball.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inputs {
    pub format: u32,
    pub distribution: String,
    pub suite: String,
    pub mirror: Option<String>,
    pub variant: String,
    pub packages: Vec<String>,
    pub mmdebstrap: String,
    pub setup_hook: String,
    pub customize_hook: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub inputs: Inputs,
    pub tar_size: u64,
    pub packages: Vec<Package>,
}

/// The base tree for a build.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub tarball: PathBuf,
    pub entry: Entry,
    pub cache_hit: bool,
}

/// `$XDG_CACHE_HOME/ecs-build` or `~/.cache/ecs-build`.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".cache"))
            .context("finding the cache directory: neither XDG_CACHE_HOME nor HOME is set")?,
    };
    Ok(base.join("ecs-build"))
}

pub fn inputs(machine: &Machine) -> anyhow::Result<Inputs> {
    let version = MMDEBSTRAP
        .command()?
        .arg("--version")
        .run_stdout()
        .context("asking mmdebstrap for its version")?;
    Ok(Inputs {
        format: CACHE_FORMAT,
        distribution: machine.base.distribution.clone(),
        suite: machine.base.suite.clone(),
        mirror: machine.base.mirror.clone(),
        variant: "apt".into(),
        packages: machine.package_list(),
        mmdebstrap: version.trim().to_string(),
        setup_hook: SETUP_HOOK.into(),
        customize_hook: CUSTOMIZE_HOOK.into(),
    })
}

pub fn key(inputs: &Inputs) -> String {
    let json = serde_json::to_vec(inputs).expect("inputs serialize");
    hex::encode(&Sha256::digest(&json)[..16])
}

/// Returns the cached base for `machine`, building it first on a miss (or with `refresh`).
pub fn ensure(
    machine: &Machine,
    cache_dir: &Path,
    timestamp: u64,
    refresh: bool,
    stage: &super::progress::Stage,
) -> anyhow::Result<Rootfs> {
    let inputs = inputs(machine)?;
    let key = key(&inputs);
    let dir = cache_dir.join("rootfs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating cache directory {}", dir.display()))?;
    let tarball = dir.join(format!("{key}.tar"));
    let meta = dir.join(format!("{key}.json"));
    if !refresh && let Some(entry) = cached(&tarball, &meta, &key, &inputs)? {
        return Ok(Rootfs {
            tarball,
            entry,
            cache_hit: true,
        });
    }
    stage.step(&format!(
        "mmdebstrap {} with {} packages (cache key {key})",
        machine.base.suite,
        inputs.packages.len()
    ));
    let temp = host_util::AtomicFile::create(&tarball, 0o644)
        .with_context(|| format!("creating {}", tarball.display()))?;
    let mut cmd = MMDEBSTRAP.command()?;
    let mode = if host_util::is_root() {
        "--mode=root"
    } else {
        "--mode=unshare"
    };
    cmd.env("SOURCE_DATE_EPOCH", timestamp.to_string())
        .args([mode, "--variant=apt", "--format=tar", "--quiet"])
        .arg(format!("--include={}", inputs.packages.join(",")))
        .arg(format!("--setup-hook={SETUP_HOOK}"))
        .arg(format!("--customize-hook={CUSTOMIZE_HOOK}"))
        .arg(&machine.base.suite)
        .arg(temp.temp_path());
    if let Some(mirror) = &machine.base.mirror {
        cmd.arg(mirror);
    }
    let result = cmd.run_checked();
    super::interrupt::check()?;
    result.context("building the base tree (is the mirror reachable and base.packages right?)")?;
    let tar_size = std::fs::metadata(temp.temp_path())
        .with_context(|| format!("reading {}", temp.temp_path().display()))?
        .len();
    stage.step("reading the package list");
    let packages = packages::from_tarball(temp.temp_path())?;
    let entry = Entry {
        key: key.clone(),
        inputs,
        tar_size,
        packages,
    };
    temp.commit()
        .with_context(|| format!("writing {}", tarball.display()))?;
    write_meta(&meta, &entry)?;
    Ok(Rootfs {
        tarball,
        entry,
        cache_hit: false,
    })
}

/// A complete entry, or None. A tarball whose size differs from what was recorded is ignored.
fn cached(tarball: &Path, meta: &Path, key: &str, inputs: &Inputs) -> anyhow::Result<Option<Entry>> {
    let Ok(tar_meta) = std::fs::metadata(tarball) else {
        return Ok(None);
    };
    let recorded = std::fs::read(meta)
        .ok()
        .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
    match recorded {
        Some(e) if e.tar_size == tar_meta.len() && &e.inputs == inputs => Ok(Some(e)),
        Some(_) => {
            tracing::warn!("rootfs cache entry {key} does not match its record: rebuilding it");
            Ok(None)
        }
        None => {
            // The record is written after the tarball; recreate it if a crash fell in between.
            let entry = Entry {
                key: key.to_string(),
                inputs: inputs.clone(),
                tar_size: tar_meta.len(),
                packages: packages::from_tarball(tarball)?,
            };
            write_meta(meta, &entry)?;
            Ok(Some(entry))
        }
    }
}

fn write_meta(meta: &Path, entry: &Entry) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(entry).context("serializing the cache record")?;
    host_util::write_atomic(meta, &json, 0o644).with_context(|| format!("writing {}", meta.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inputs {
        Inputs {
            format: CACHE_FORMAT,
            distribution: "debian".into(),
            suite: "trixie".into(),
            mirror: None,
            variant: "apt".into(),
            packages: vec!["a".into(), "b".into()],
            mmdebstrap: "mmdebstrap 1.3.5".into(),
            setup_hook: SETUP_HOOK.into(),
            customize_hook: CUSTOMIZE_HOOK.into(),
        }
    }

    #[test]
    fn key_changes_with_every_input() {
        let base = key(&sample());
        assert_eq!(base.len(), 32);
        let mut m = sample();
        m.mirror = Some("http://127.0.0.1:9/debian".into());
        assert_ne!(key(&m), base);
        let mut p = sample();
        p.packages.push("c".into());
        assert_ne!(key(&p), base);
        let mut v = sample();
        v.mmdebstrap = "mmdebstrap 1.4".into();
        assert_ne!(key(&v), base);
        assert_eq!(key(&sample()), base);
    }
}
