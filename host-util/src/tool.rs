//! Finding external programs once, with an error that says which Debian package provides them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// An external program and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

/// The program is neither on PATH nor in the sbin directories.
#[derive(Debug, thiserror::Error)]
#[error("{program} not found: install the Debian package `{package}` (or run `make deps`)")]
pub struct MissingTool {
    pub program: String,
    pub package: String,
}

/// sbin directories are searched too: an unprivileged user's PATH often lacks them,
/// yet mke2fs, sfdisk, pvck and mdadm live there and run fine without root.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

impl Tool {
    pub const fn new(program: &'static str, package: &'static str) -> Self {
        Tool { program, package }
    }

    /// The absolute path of the program, looked up once per process.
    pub fn path(&self) -> Result<PathBuf, MissingTool> {
        static CACHE: OnceLock<Mutex<HashMap<&'static str, Option<PathBuf>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        let found = cache
            .entry(self.program)
            .or_insert_with(|| lookup(self.program))
            .clone();
        found.ok_or_else(|| MissingTool {
            program: self.program.to_string(),
            package: self.package.to_string(),
        })
    }

    /// A `Command` for this program, or the missing-tool error.
    pub fn command(&self) -> Result<std::process::Command, MissingTool> {
        Ok(std::process::Command::new(self.path()?))
    }
}

fn lookup(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return is_executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_package_when_missing() {
        assert!(Tool::new("sh", "dash").path().is_ok());
        let err = Tool::new("no-such-tool-ecs", "ecs-pkg").path().unwrap_err();
        assert_eq!(
            err.to_string(),
            "no-such-tool-ecs not found: install the Debian package `ecs-pkg` (or run `make deps`)"
        );
    }
}
