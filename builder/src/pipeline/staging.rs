//! The output directory during a build: every artifact is written under a hidden temporary
//! name and all of them are renamed to their final names together at the very end (manifest
//! last). Dropping an uncommitted `Staging` (error, interrupt) removes every temporary file, so a
//! failed build leaves nothing under a final name.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::error::BadInput;

pub struct Staging {
    dir: PathBuf,
    /// (temporary path, final name, keep): not kept = intermediate, removed at commit.
    files: Vec<(PathBuf, String, bool)>,
    committed: bool,
}

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

impl Staging {
    pub fn new(dir: &Path) -> Staging {
        Staging {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            committed: false,
        }
    }

    /// A temporary path for the artifact `name`; `keep` false marks an intermediate file.
    pub fn add(&mut self, name: &str, keep: bool) -> anyhow::Result<PathBuf> {
        if self.files.iter().any(|(_, n, _)| n == name) {
            bail!("artifact {name} staged twice");
        }
        let temp = self.dir.join(format!(".{name}.partial-{}", std::process::id()));
        let _ = fs::remove_file(&temp);
        self.files.push((temp.clone(), name.to_string(), keep));
        Ok(temp)
    }

    /// Writes a small artifact's bytes to its temporary path.
    pub fn write(&mut self, name: &str, bytes: &[u8], mode: u32) -> anyhow::Result<PathBuf> {
        let temp = self.add(name, true)?;
        host_util::write_atomic(&temp, bytes, mode).with_context(|| format!("writing {}", temp.display()))?;
        Ok(temp)
    }

    pub fn final_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Renames every kept artifact into place (in the order added), removes intermediates,
    /// and syncs the directory.
    pub fn commit(mut self) -> anyhow::Result<Vec<PathBuf>> {
        let mut done = Vec::new();
        for (temp, _, keep) in &self.files {
            if *keep {
                File::open(temp)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("syncing {}", temp.display()))?;
            }
        }
        for (temp, name, keep) in &self.files {
            if *keep {
                let target = self.dir.join(name);
                fs::rename(temp, &target)
                    .with_context(|| format!("renaming {} to {name}", temp.display()))?;
                done.push(target);
            } else {
                let _ = fs::remove_file(temp);
            }
        }
        self.committed = true;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", self.dir.display()))?;
        Ok(done)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            for (temp, _, _) in &self.files {
                let _ = fs::remove_file(temp);
            }
        }
    }
}
