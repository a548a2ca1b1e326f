//! Writes that become visible under their final name only when complete.
//!
//! Files are created in the target directory with their final mode already set (secrets are
//! never briefly world-readable), synced, renamed into place, and the directory is synced.
//! Dropping an uncommitted file or directory removes it.
//!
//! [`Outputs`] adds the rules for files a command writes where its caller asked: an existing
//! file is replaced only when forced, links and special files never, and the mode follows the
//! caller's umask except for secrets (0600).

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

/// Why an output cannot be written where it was asked for. All but `Io` are the caller's to
/// fix (another path, or `--force`) and are checked before any work starts.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error(
        "{0} is a symbolic link; an output is never written through a link nor replaces one \
         (not even with --force): give the link's target or another name"
    )]
    Symlink(PathBuf),
    #[error("{path} is {what}, not a regular file; give a file name")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{0} is given twice as an output")]
    Twice(PathBuf),
    #[error("{path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: String,
        source: io::Error,
    },
}

impl OutputError {
    /// The caller named a wrong path or left out `--force` (exit 2), rather than an I/O failure.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, OutputError::Io { .. })
    }
}

fn output_io(path: &Path, doing: impl Into<String>) -> impl FnOnce(io::Error) -> OutputError {
    let path = path.to_path_buf();
    let doing = doing.into();
    move |source| OutputError::Io { path, doing, source }
}

/// What is at `target` now, as far as writing an output there goes.
fn check_target(target: &Path, force: bool) -> Result<(), OutputError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(output_io(target, "looking at it")(e)),
    };
    let t = meta.file_type();
    let what = if t.is_symlink() {
        return Err(OutputError::Symlink(target.to_path_buf()));
    } else if t.is_file() {
        return if force {
            Ok(())
        } else {
            Err(OutputError::Exists(target.to_path_buf()))
        };
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else {
        "a socket"
    };
    Err(OutputError::NotAFile {
        path: target.to_path_buf(),
        what,
    })
}

/// The process's umask, from /proc (reading it with umask(2) would briefly change it).
fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// The mode an output gets: 0600 for secrets whatever the umask, else 0666 less the umask.
pub fn output_mode(secret: bool) -> u32 {
    if secret { 0o600 } else { 0o666 & !umask() }
}

/// Renames one output into place; in a group, first keeps (a hard link to) the file it replaces,
/// to put it back if a later output fails.
fn move_into_place(p: &Planned, group: bool) -> Result<(), (&'static str, io::Error)> {
    if group && fs::symlink_metadata(&p.target).is_ok() {
        fs::hard_link(&p.target, &p.backup)
            .map_err(|e| ("keeping the old file until all are in place", e))?;
    }
    fs::rename(&p.temp, &p.target).map_err(|e| ("moving it into place", e))
}

struct Planned {
    target: PathBuf,
    /// The canonical directory of `target` and its file name: what makes two outputs the same.
    dir: PathBuf,
    name: std::ffi::OsString,
    /// False for scratch files, which are never committed.
    keep: bool,
    secret: bool,
    /// Where it is written until commit.
    temp: PathBuf,
    /// Where a replaced file is kept during a group commit.
    backup: PathBuf,
}

/// The files one command writes, checked before any work and moved into place together.
///
/// Each file is written in a private (0700) directory made next to its final name, so that
/// nobody else can read it while it is written, whichever tool writes it and with whichever
/// mode. `commit` gives it its final mode (see [`output_mode`]) and renames it into place;
/// when several files are committed and one fails, those already moved are put back as they
/// were. Dropping `Outputs` without commit (an error, a signal) removes every temporary.
///
/// An existing regular file is replaced only with `force`; symbolic links, directories and
/// special files (`/dev/null`) are always refused, so a link is never written through nor
/// replaced and the files `force` replaces are exactly the outputs.
pub struct Outputs {
    force: bool,
    files: Vec<Planned>,
    /// One private directory per (canonical) output directory.
    dirs: Vec<(PathBuf, tempfile::TempDir)>,
}

impl Outputs {
    pub fn new(force: bool) -> Outputs {
        Outputs {
            force,
            files: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// Checks `target` now and returns the temporary path to write its content to (the caller
    /// or a tool it runs creates the file there). `secret` files end up 0600.
    pub fn add(&mut self, target: &Path, secret: bool) -> Result<PathBuf, OutputError> {
        check_target(target, self.force)?;
        self.plan(target, secret, true)
    }

    /// A temporary path for an intermediate file that is needed beside the outputs in `dir`
    /// during the work and removed at the end.
    pub fn scratch(&mut self, dir: &Path, name: &str) -> Result<PathBuf, OutputError> {
        self.plan(&dir.join(name), true, false)
    }

    /// Writes `bytes` to the temporary path `add` returned.
    pub fn write(&self, temp: &Path, bytes: &[u8]) -> Result<(), OutputError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(temp)
            .map_err(output_io(temp, "creating"))?;
        f.write_all(bytes).map_err(output_io(temp, "writing"))
    }

    fn plan(&mut self, target: &Path, secret: bool, keep: bool) -> Result<PathBuf, OutputError> {
        let name = target
            .file_name()
            .ok_or_else(|| OutputError::NotAFile {
                path: target.to_path_buf(),
                what: "a directory",
            })?
            .to_os_string();
        let parent = parent_of(target);
        let canon = fs::canonicalize(parent)
            .map_err(output_io(target, format!("its directory {}", parent.display())))?;
        if self.files.iter().any(|p| p.dir == canon && p.name == name) {
            return Err(OutputError::Twice(target.to_path_buf()));
        }
        let private = match self.dirs.iter().find(|(c, _)| *c == canon) {
            Some((_, d)) => d.path().to_path_buf(),
            None => {
                let d = tempfile::Builder::new()
                    .prefix(&format!(".{}.", name.to_string_lossy()))
                    .suffix(".partial")
                    .tempdir_in(&canon)
                    .map_err(output_io(
                        target,
                        format!("making a private temporary directory in {}", parent.display()),
                    ))?;
                for sub in ["new", "old"] {
                    fs::create_dir(d.path().join(sub)).map_err(output_io(d.path(), "creating"))?;
                }
                let path = d.path().to_path_buf();
                self.dirs.push((canon.clone(), d));
                path
            }
        };
        let temp = private.join("new").join(&name);
        self.files.push(Planned {
            target: target.to_path_buf(),
            dir: canon,
            backup: private.join("old").join(&name),
            name,
            keep,
            secret,
            temp: temp.clone(),
        });
        Ok(temp)
    }

    /// Gives every output its final mode and moves it into place (in the order added), all or
    /// none; returns the final paths.
    pub fn commit(self) -> Result<Vec<PathBuf>, OutputError> {
        let kept: Vec<&Planned> = self.files.iter().filter(|p| p.keep).collect();
        for p in &kept {
            let file = File::open(&p.temp).map_err(output_io(&p.target, "opening what was written"))?;
            file.sync_all().map_err(output_io(&p.target, "syncing"))?;
            file.set_permissions(fs::Permissions::from_mode(output_mode(p.secret)))
                .map_err(output_io(&p.target, "setting its mode"))?;
            // Something may have appeared there while we worked.
            check_target(&p.target, self.force)?;
        }
        let group = kept.len() > 1;
        let mut done: Vec<&Planned> = Vec::new();
        for p in &kept {
            if let Err((doing, e)) = move_into_place(p, group) {
                for d in done.iter().rev() {
                    let _ = if d.backup.exists() {
                        fs::rename(&d.backup, &d.target)
                    } else {
                        fs::remove_file(&d.target)
                    };
                }
                let undone = if done.is_empty() {
                    ""
                } else {
                    " (the outputs already moved were put back as they were)"
                };
                return Err(output_io(&p.target, format!("{doing}{undone}"))(e));
            }
            done.push(p);
        }
        for (canon, _) in &self.dirs {
            sync_dir(canon).map_err(output_io(canon, "syncing"))?;
        }
        Ok(kept.iter().map(|p| p.target.clone()).collect())
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

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn chattr(flag: &str, path: &Path) {
        let ok = std::process::Command::new("chattr")
            .arg(flag)
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chattr {flag} {}", path.display());
    }

    #[test]
    fn outputs_refuse_existing_files_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.raw");
        fs::write(&target, b"old").unwrap();
        let err = Outputs::new(false).add(&target, false).unwrap_err();
        assert!(err.is_refusal());
        assert_eq!(
            err.to_string(),
            format!("{} exists; pass --force to replace it", target.display())
        );
        assert_eq!(listing(dir.path()), ["out.raw"], "a refusal creates nothing");

        let mut out = Outputs::new(true);
        let temp = out.add(&target, true).unwrap();
        out.write(&temp, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"old", "replaced only on commit");
        assert_eq!(out.commit().unwrap(), vec![target.clone()]);
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(listing(dir.path()), ["out.raw"]);
    }

    #[test]
    fn outputs_never_touch_links_directories_or_devices() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        for force in [false, true] {
            for path in [&link, &dangling] {
                let err = Outputs::new(force).add(path, false).unwrap_err();
                assert!(matches!(err, OutputError::Symlink(_)), "{err}");
            }
            let err = Outputs::new(force)
                .add(&dir.path().join("sub"), false)
                .unwrap_err();
            assert!(
                err.to_string()
                    .ends_with("sub is a directory, not a regular file; give a file name")
            );
            let err = Outputs::new(force)
                .add(Path::new("/dev/null"), false)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "/dev/null is a character device, not a regular file; give a file name"
            );
            assert!(err.is_refusal());
        }
        assert_eq!(fs::read(&real).unwrap(), b"keep");
        assert_eq!(fs::read_link(&link).unwrap(), real);
        assert_eq!(listing(dir.path()), ["dangling", "link", "real", "sub"]);
    }

    #[test]
    fn outputs_dropped_or_refused_at_commit_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let mut out = Outputs::new(false);
        let temp = out.add(&a, false).unwrap();
        out.write(&temp, b"x").unwrap();
        assert_eq!(listing(dir.path()).len(), 1, "the private directory");
        drop(out);
        assert!(listing(dir.path()).is_empty());

        // A file that appeared while the work ran is not replaced without force.
        let mut out = Outputs::new(false);
        let temp = out.add(&a, false).unwrap();
        out.write(&temp, b"new").unwrap();
        fs::write(&a, b"theirs").unwrap();
        assert!(matches!(out.commit(), Err(OutputError::Exists(_))));
        assert_eq!(fs::read(&a).unwrap(), b"theirs");
        assert_eq!(listing(dir.path()), ["a"]);

        let mut out = Outputs::new(false);
        out.add(&dir.path().join("b"), false).unwrap();
        let err = out.add(&dir.path().join("./b"), false).unwrap_err();
        assert!(matches!(err, OutputError::Twice(_)), "{err}");
    }

    /// Renaming the second of two outputs fails (an immutable file there): the first is put
    /// back as it was and no temporary remains.
    #[test]
    fn outputs_failing_mid_commit_are_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        fs::write(&a, b"old a").unwrap();
        fs::write(&b, b"old b").unwrap();
        let mut out = Outputs::new(true);
        for (path, bytes) in [(&a, b"new a"), (&c, b"new c"), (&b, b"new b")] {
            let temp = out.add(path, false).unwrap();
            out.write(&temp, bytes).unwrap();
        }
        chattr("+i", &b);
        let err = out.commit().unwrap_err();
        chattr("-i", &b);
        assert!(!err.is_refusal());
        assert!(err.to_string().contains("put back"), "{err}");
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert_eq!(fs::read(&b).unwrap(), b"old b");
        assert_eq!(listing(dir.path()), ["a", "b"]);
    }
}
