//! Stage 5, convert: the raw image to qcow2 and vmdk with `qemu-img convert` (qemu-utils).
//! qcow2 output is deterministic for a given raw image; vmdk carries a random content id.

use std::path::Path;

use anyhow::Context;
use host_util::{CommandExt, Tool};

pub const QEMU_IMG: Tool = Tool::new("qemu-img", "qemu-utils");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Qcow2,
    Vmdk,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
        }
    }
}

/// Converts `raw` into `out` (which the caller renames into place when the build is complete).
pub fn convert(raw: &Path, out: &Path, format: Format) -> anyhow::Result<()> {
    let mut cmd = QEMU_IMG.command()?;
    cmd.args(["convert", "-f", "raw", "-O", format.extension()]);
    if format == Format::Vmdk {
        // Readable by VirtualBox, VMware Workstation and ESXi's import alike.
        cmd.args(["-o", "subformat=monolithicSparse"]);
    }
    cmd.arg(raw).arg(out);
    cmd.run_checked()
        .with_context(|| format!("converting {} to {}", raw.display(), format.extension()))?;
    Ok(())
}
