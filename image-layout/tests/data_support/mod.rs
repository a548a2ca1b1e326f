//! Shared by the data disk tests: the reference tools (lvm2, mdadm, util-linux, e2fsprogs)
//! and loop devices that are always detached, also when a test panics.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use host_util::{CommandExt, Tool};
use image_layout::{DataDiskPlan, Seed, Size};

pub const LVM: Tool = Tool::new("lvm", "lvm2");
pub const PVCK: Tool = Tool::new("pvck", "lvm2");
pub const MDADM: Tool = Tool::new("mdadm", "mdadm");
pub const LOSETUP: Tool = Tool::new("losetup", "mount");
pub const BLKID: Tool = Tool::new("blkid", "util-linux");
pub const E2FSCK: Tool = Tool::new("e2fsck", "e2fsprogs");

/// A `Command` for a tool, or a panic naming its Debian package.
pub fn tool(t: Tool) -> Command {
    t.command().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs and returns stdout, or panics with argv and stderr.
pub fn run(cmd: &mut Command) -> String {
    cmd.run_stdout().unwrap_or_else(|e| panic!("{e}"))
}

pub fn plan(size: &str, raid1: bool, seed: &str) -> DataDiskPlan {
    DataDiskPlan::new(
        size.parse::<Size>().unwrap(),
        raid1,
        Seed(seed.into()),
        1_700_000_000,
    )
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A loop device over (a byte range of) an image file, detached on drop.
pub struct Loop {
    pub dev: PathBuf,
}

impl Loop {
    /// `losetup -f --show -r [-o offset] [--sizelimit size] image`: read-only, the tests only
    /// look. Panics saying that root is needed when it is not root.
    pub fn attach(image: &Path, offset: u64, sizelimit: Option<u64>) -> Loop {
        Self::attach_with(image, offset, sizelimit, true)
    }

    /// A writable loop device over the whole image, for the reference tools to write on.
    pub fn attach_rw(image: &Path) -> Loop {
        Self::attach_with(image, 0, None, false)
    }

    fn attach_with(image: &Path, offset: u64, sizelimit: Option<u64>, read_only: bool) -> Loop {
        assert_eq!(
            effective_uid(),
            Some(0),
            "this test needs root: it attaches {} with losetup for lvm2 and e2fsck (CI runs as root)",
            image.display()
        );
        let mut cmd = tool(LOSETUP);
        cmd.args(["-f", "--show", "-o", &offset.to_string()]);
        if read_only {
            cmd.arg("-r");
        }
        if let Some(n) = sizelimit {
            cmd.args(["--sizelimit", &n.to_string()]);
        }
        cmd.arg(image);
        // Other tests grab loop devices concurrently: a free device found by `-f` can be
        // taken before losetup binds it, which it reports as busy. Try again a few times.
        let mut attempts = 0;
        let dev = loop {
            match cmd.run_stdout() {
                Ok(out) => break out.trim().to_string(),
                Err(e) if attempts < 5 && e.to_string().contains("busy") => attempts += 1,
                Err(e) => panic!("{e}"),
            }
        };
        assert!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        Loop { dev: dev.into() }
    }

    /// An lvm2 command restricted to this device, ignoring the host's devices file and
    /// writing no metadata backups or archives into the host's /etc/lvm.
    pub fn lvm(&self, subcommand: &str) -> Command {
        let mut cmd = tool(LVM);
        cmd.env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .arg(subcommand)
            .args([
                "--config",
                "devices{use_devicesfile=0} backup{backup=0 archive=0}",
                "--devices",
            ])
            .arg(&self.dev);
        cmd
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Ok(mut cmd) = LOSETUP.command() {
            let _ = cmd.arg("-d").arg(&self.dev).run_checked();
        }
    }
}

/// Parses `--reportformat json` output and returns the rows of `report[0][key]`.
pub fn report_rows(json: &str, key: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("lvm JSON report: {e}\n{json}"));
    v["report"][0][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .clone()
}

pub fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `e2fsck -fn` on the filesystem in `offset..offset + size`, through a read-only loop device
/// over that range (e2fsck has no offset option). Returns its output; panics when unclean.
pub fn e2fsck_at(image: &Path, offset: u64, size: u64) -> String {
    let lo = Loop::attach(image, offset, Some(size));
    run(tool(E2FSCK).arg("-fn").arg(&lo.dev))
}
