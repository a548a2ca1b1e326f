//! The output directory of a build, made and proven writable before the long work starts. The
//! artifacts themselves go through `crate::output` (private temporaries, renamed together at the
//! very end, manifest last; nothing left behind on failure).

use std::fs::{self, File};
use std::path::Path;

use anyhow::Context;

use crate::error::BadInput;

/// Creates the output directory if needed and proves it writable before any long work starts.
pub fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let unwritable = |e: std::io::Error| {
        BadInput::new(format!(
            "outputs.dir {}: not writable ({e}): choose a directory you can write, e.g. with --out",
            dir.display()
        ))
    };
    fs::create_dir_all(dir).map_err(unwritable)?;
    let probe = dir.join(format!(".ecs-build-probe-{}", std::process::id()));
    File::create(&probe).map_err(unwritable)?;
    fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))?;
    Ok(())
}
