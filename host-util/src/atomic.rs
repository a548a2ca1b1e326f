//! Writes that become visible under their final name only when complete.
//!
//! Files are created in the target directory with their final mode already set (secrets are
//! never briefly world-readable), synced, renamed into place, and the directory is synced.
//! Dropping an uncommitted file or directory removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with `mode` (e.g. 0o600 for secrets).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = AtomicFile::create(path, mode)?;
    f.write_all(bytes)?;
    f.commit()
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file being written under a temporary name next to its final path.
pub struct AtomicFile {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    pub fn create(target: &Path, mode: u32) -> io::Result<Self> {
        let temp = temp_name(target);
        let _ = fs::remove_file(&temp);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have narrowed the mode; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        Ok(AtomicFile {
            file: Some(file),
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The open file, e.g. for `set_len` and positioned writes of disk images.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until commit")
    }

    /// The temporary path, for tools that must write the file themselves.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Syncs and renames into place.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("commit once");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp, &self.target)?;
        sync_dir(parent_of(&self.target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// An output directory populated under a temporary name and renamed when complete.
pub struct AtomicDir {
    temp: Option<PathBuf>,
    target: PathBuf,
}

impl AtomicDir {
    /// Starts a new directory. Without `replace`, an existing target is an error
    /// (`io::ErrorKind::AlreadyExists`) raised before anything is written.
    pub fn create(target: &Path, mode: u32, replace: bool) -> io::Result<Self> {
        if !replace && fs::symlink_metadata(target).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists (use --force to replace it)", target.display()),
            ));
        }
        let temp = temp_name(target);
        if temp.exists() {
            fs::remove_dir_all(&temp)?;
        }
        fs::create_dir_all(parent_of(target))?;
        fs::create_dir(&temp)?;
        fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
        Ok(AtomicDir {
            temp: Some(temp),
            target: target.to_path_buf(),
        })
    }

    /// Where to write the contents until `commit`.
    pub fn path(&self) -> &Path {
        self.temp.as_deref().expect("path until commit")
    }

    /// Renames into place, replacing (and then removing) an existing target.
    pub fn commit(mut self) -> io::Result<()> {
        let temp = self.temp.take().expect("commit once");
        for entry in fs::read_dir(&temp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                File::open(entry.path())?.sync_all()?;
            }
        }
        let old = if fs::symlink_metadata(&self.target).is_ok() {
            let old = parent_of(&self.target).join(format!(
                ".{}.old-{}",
                self.target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            fs::rename(&self.target, &old)?;
            Some(old)
        } else {
            None
        };
        fs::rename(&temp, &self.target)?;
        sync_dir(parent_of(&self.target))?;
        if let Some(old) = old {
            fs::remove_dir_all(old)?;
        }
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_dir_all(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appears_only_on_commit_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        let mut f = AtomicFile::create(&target, 0o600).unwrap();
        f.write_all(b"x").unwrap();
        assert!(!target.exists());
        f.commit().unwrap();
        let meta = fs::metadata(&target).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        drop(AtomicFile::create(&target, 0o644).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn dir_refuses_existing_without_replace_and_replaces_with() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old"), b"1").unwrap();
        let err = AtomicDir::create(&target, 0o700, false).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let d = AtomicDir::create(&target, 0o700, true).unwrap();
        fs::write(d.path().join("new"), b"2").unwrap();
        d.commit().unwrap();
        assert!(target.join("new").exists() && !target.join("old").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
