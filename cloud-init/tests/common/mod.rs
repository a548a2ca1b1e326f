//! Helpers shared by the integration tests: the reference tools, and seed files to pack.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use host_util::{CommandExt, Tool};

pub const BLKID: Tool = Tool::new("blkid", "util-linux");
pub const ISOINFO: Tool = Tool::new("isoinfo", "genisoimage");
pub const XORRISO: Tool = Tool::new("xorriso", "xorriso");
pub const CLOUD_LOCALDS: Tool = Tool::new("cloud-localds", "cloud-image-utils");
pub const FSCK_FAT: Tool = Tool::new("fsck.fat", "dosfstools");
pub const MCOPY: Tool = Tool::new("mcopy", "mtools");
pub const PYTHON3: Tool = Tool::new("/usr/bin/python3", "python3-yaml");

/// 2023-11-14 22:13:20 UTC.
pub const TS: u64 = 1_700_000_000;

/// A command for `tool`, or a panic naming the Debian package to install.
pub fn cmd(tool: Tool) -> Command {
    tool.command().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the command; a failure panics with argv and stderr.
pub fn stdout(c: &mut Command) -> String {
    c.run_stdout().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the command and returns its raw stdout; a failure panics with argv and stderr.
pub fn stdout_bytes(c: &mut Command) -> Vec<u8> {
    c.run_checked().unwrap_or_else(|e| panic!("{e}")).stdout
}

/// Deterministic bytes that are not all alike, so misplaced sectors show.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

pub fn sample() -> cloud_init::SeedFiles {
    cloud_init::SeedFiles {
        user_data: b"#cloud-config\nappliance:\n  domain: on.example.org\n".to_vec(),
        meta_data: cloud_init::meta_data("iid-on.example.org", "on.example.org").into_bytes(),
        network_config: Some(b"version: 2\nethernets: {}\n".to_vec()),
    }
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
