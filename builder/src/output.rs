//! The files a command writes where the operator asked, all the same way: each is checked
//! before any work starts (an existing file needs `--force`; links, directories and devices are
//! refused), written privately under a temporary name, and moved into place at the end with its
//! final mode (0600 for secrets, else 0666 less the umask). SIGINT or SIGTERM stops the command
//! before anything is moved into place, and every temporary is removed.
//! The rules live in `host_util::atomic::Outputs`; this wraps them in the command's exit codes.

use std::path::{Path, PathBuf};

use host_util::atomic::{self, OutputError};

use crate::error::BadInput;
use crate::pipeline::interrupt;

/// A refusal (wrong path, missing `--force`) is the operator's to fix: exit 2.
fn error(e: OutputError) -> anyhow::Error {
    if e.is_refusal() {
        BadInput::new(e.to_string()).into()
    } else {
        anyhow::Error::new(e)
    }
}

pub struct Outputs(atomic::Outputs);

impl Outputs {
    /// Starts a command's outputs; from here on a signal stops it cleanly.
    pub fn new(force: bool) -> Outputs {
        interrupt::install();
        Outputs(atomic::Outputs::new(force))
    }

    /// Checks `target` and returns where to write it until `commit`.
    pub fn add(&mut self, target: &Path, secret: bool) -> anyhow::Result<PathBuf> {
        self.0.add(target, secret).map_err(error)
    }

    /// An intermediate file beside the outputs in `dir`, removed at the end.
    pub fn scratch(&mut self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        self.0.scratch(dir, name).map_err(error)
    }

    /// Writes `bytes` to a temporary path `add` returned.
    pub fn write(&self, temp: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        self.0.write(temp, bytes).map_err(error)
    }

    /// Moves every output into place, unless a signal arrived meanwhile.
    pub fn commit(self) -> anyhow::Result<Vec<PathBuf>> {
        interrupt::check()?;
        self.0.commit().map_err(error)
    }
}
