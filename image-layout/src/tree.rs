//! The root filesystem's contents as one tar stream for `mke2fs -d -`: the tree (a directory
//! walked in byte order, or a tarball copied entry by entry) followed by the caller's extra
//! files. An extra replaces a base entry of the same path (the base entry is left out of the
//! stream; an extra directory only updates the base directory's owner and mode), and missing
//! parent directories are created root-owned 0755. Paths through a symlink of the base (such
//! as `/lib` -> `usr/lib` on merged-/usr systems) are resolved first.
//!
//! A directory tree is read with its ownership as it is; xattrs are not carried (use a tarball
//! for those). mtimes of directory entries and extras are clamped to the plan's timestamp.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::plan::{ExtraFile, ExtraKind, TreeSource};
use crate::tar::{self, Header, Kind, Scanned};
use crate::walk::walk_dir;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("tree {0}: no such file or directory (expected a directory or an uncompressed tar archive)")]
    NotFound(PathBuf),
    #[error("tree {path}: {format}-compressed; expected an uncompressed tar archive (decompress it first)")]
    Compressed { path: PathBuf, format: &'static str },
    #[error("tree {path}: not a tar archive {source}")]
    NotTar {
        path: PathBuf,
        #[source]
        source: tar::ScanError,
    },
    #[error("extra file {path:?}: {what}")]
    BadExtra { path: String, what: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being copied (size {expected} became {got})")]
    Changed { path: PathBuf, expected: u64, got: u64 },
    #[error("writing the tree to mke2fs: {0}")]
    Write(#[source] io::Error),
}

impl TreeError {
    /// True when the caller's input is wrong (as opposed to a failing read or write).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            TreeError::NotFound(_)
                | TreeError::Compressed { .. }
                | TreeError::NotTar { .. }
                | TreeError::BadExtra { .. }
        )
    }
}

/// What the tree needs in the filesystem, counted the way ext4 allocates it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Inodes: one per entry except hard links.
    pub inodes: u64,
    /// 4 KiB blocks for file data, each directory's first block and long symlinks.
    pub blocks: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Bytes of directory entries (8 bytes plus the name, 4-byte aligned), which spill into
    /// further directory blocks.
    pub dirent_bytes: u64,
}

impl TreeStats {
    fn add(&mut self, typeflag: u8, size: u64, path: &str, link_len: usize) {
        let name_len = path.rsplit('/').next().unwrap_or(path).len() as u64;
        self.dirent_bytes += (8 + name_len).div_ceil(4) * 4;
        if typeflag == b'1' {
            return;
        }
        self.inodes += 1;
        match typeflag {
            b'5' => self.blocks += 1,
            // Targets up to 59 bytes live in the inode.
            b'2' if link_len >= 60 => self.blocks += 1,
            b'0' | 0 | b'7' => {
                self.bytes += size;
                self.blocks += size.div_ceil(4096);
            }
            _ => {}
        }
    }

    /// All 4 KiB blocks the tree takes, directory spill-over included.
    pub fn total_blocks(&self) -> u64 {
        self.blocks + self.dirent_bytes.div_ceil(4096)
    }
}

enum Base {
    Dir { entries: Vec<(Header, Option<PathBuf>)> },
    Tarball { path: PathBuf, entries: Vec<Scanned> },
}

/// The base tree indexed, the extras resolved: ready to be measured and streamed.
pub struct PreparedTree {
    base: Base,
    /// Base paths replaced by extras.
    dropped: HashSet<String>,
    extras: Vec<(Header, Option<ExtraData>)>,
    stats: TreeStats,
}

enum ExtraData {
    Bytes(Vec<u8>),
    File(PathBuf),
}

fn compression(head: &[u8]) -> Option<&'static str> {
    match head {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some("xz"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [b'B', b'Z', b'h', ..] => Some("bzip2"),
        _ => None,
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// What a base path is, for resolving extras' parents.
enum BaseKind {
    Dir,
    Symlink(String),
    Other,
}

fn typeflag(kind: &Kind) -> u8 {
    match kind {
        Kind::File { .. } => b'0',
        Kind::Dir => b'5',
        Kind::Symlink(_) => b'2',
        Kind::Hardlink(_) => b'1',
        Kind::Char(..) => b'3',
        Kind::Block(..) => b'4',
        Kind::Fifo => b'6',
    }
}

fn base_kind(typeflag: u8, link: &str) -> BaseKind {
    match typeflag {
        b'5' => BaseKind::Dir,
        b'2' => BaseKind::Symlink(link.to_string()),
        _ => BaseKind::Other,
    }
}

/// `path` with every symlink of the base in its parent components followed; the last
/// component is kept as it is (an extra replaces a symlink rather than writing through it).
fn resolve(path: &str, base: &HashMap<String, BaseKind>) -> Result<String, String> {
    let mut queue: std::collections::VecDeque<String> = path.split('/').map(str::to_string).collect();
    let mut out: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                out.pop();
                continue;
            }
            _ => {}
        }
        let candidate = if out.is_empty() {
            c.clone()
        } else {
            format!("{}/{c}", out.join("/"))
        };
        if !queue.is_empty()
            && let Some(BaseKind::Symlink(target)) = base.get(&candidate)
        {
            hops += 1;
            if hops > 40 {
                return Err(format!("too many symlinks resolving {candidate}"));
            }
            if target.starts_with('/') {
                out.clear();
            }
            for t in target.split('/').rev() {
                queue.push_front(t.to_string());
            }
            continue;
        }
        out.push(c);
    }
    Ok(out.join("/"))
}

impl PreparedTree {
    /// Indexes `tree` and resolves `extras` against it; nothing is read beyond headers and metadata.
    pub fn prepare(tree: &TreeSource, extras: &[ExtraFile], timestamp: u64) -> Result<Self, TreeError> {
        let mut kinds: HashMap<String, BaseKind> = HashMap::new();
        let base = match tree {
            TreeSource::Dir(root) => {
                if !root.is_dir() {
                    return Err(TreeError::NotFound(root.clone()));
                }
                let entries = walk_dir(root, timestamp)?;
                for (h, _) in &entries {
                    let link = match &h.kind {
                        Kind::Symlink(t) => t.as_str(),
                        _ => "",
                    };
                    kinds.insert(h.path.clone(), base_kind(typeflag(&h.kind), link));
                }
                Base::Dir { entries }
            }
            TreeSource::Tarball(path) => {
                let mut f = File::open(path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => TreeError::NotFound(path.clone()),
                    _ => TreeError::Read {
                        path: path.clone(),
                        source: e,
                    },
                })?;
                let mut head = [0u8; 8];
                let n = f.read(&mut head).map_err(read_err(path))?;
                if let Some(format) = compression(&head[..n]) {
                    return Err(TreeError::Compressed {
                        path: path.clone(),
                        format,
                    });
                }
                let mut r = io::BufReader::with_capacity(64 * 1024, f);
                let entries = tar::scan(&mut r).map_err(|source| match source {
                    tar::ScanError::Io(e) => TreeError::Read {
                        path: path.clone(),
                        source: e,
                    },
                    other => TreeError::NotTar {
                        path: path.clone(),
                        source: other,
                    },
                })?;
                for e in &entries {
                    kinds.insert(e.path.clone(), base_kind(e.typeflag, &e.link));
                }
                Base::Tarball {
                    path: path.clone(),
                    entries,
                }
            }
        };
        let mut prepared = PreparedTree {
            base,
            dropped: HashSet::new(),
            extras: Vec::new(),
            stats: TreeStats::default(),
        };
        prepared.add_extras(extras, &kinds, timestamp)?;
        prepared.stats = prepared.count();
        Ok(prepared)
    }

    fn add_extras(
        &mut self,
        extras: &[ExtraFile],
        kinds: &HashMap<String, BaseKind>,
        timestamp: u64,
    ) -> Result<(), TreeError> {
        let mut made: BTreeMap<String, ()> = BTreeMap::new();
        for x in extras {
            let bad = |what: String| TreeError::BadExtra {
                path: x.path.clone(),
                what,
            };
            if !x.path.starts_with('/')
                || x.path.split('/').any(|c| c == "..")
                || tar::normalise(&x.path).is_empty()
            {
                return Err(bad("expected an absolute path below / without `..`".into()));
            }
            if x.mode > 0o7777 {
                return Err(bad(format!(
                    "mode {:o}: expected permission bits only (at most 7777)",
                    x.mode
                )));
            }
            let path = resolve(&tar::normalise(&x.path), kinds).map_err(bad)?;
            // Parents: existing directories are kept, missing ones made root-owned 0755.
            let comps: Vec<&str> = path.split('/').collect();
            for i in 1..comps.len() {
                let parent = comps[..i].join("/");
                match kinds.get(&parent) {
                    Some(BaseKind::Dir) => {}
                    Some(_) => {
                        return Err(bad(format!(
                            "its parent /{parent} is not a directory in the tree"
                        )));
                    }
                    None if made.contains_key(&parent) => {}
                    None => {
                        made.insert(parent.clone(), ());
                        let h = Header {
                            path: parent,
                            kind: Kind::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                            mtime: timestamp,
                        };
                        self.extras.push((h, None));
                    }
                }
            }
            let (kind, data) = match &x.kind {
                ExtraKind::Bytes(b) => (
                    Kind::File { size: b.len() as u64 },
                    Some(ExtraData::Bytes(b.clone())),
                ),
                ExtraKind::File(host) => {
                    let m =
                        fs::metadata(host).map_err(|e| bad(format!("reading {}: {e}", host.display())))?;
                    if !m.is_file() {
                        return Err(bad(format!("{} is not a regular file", host.display())));
                    }
                    (Kind::File { size: m.len() }, Some(ExtraData::File(host.clone())))
                }
                ExtraKind::Symlink(t) => (Kind::Symlink(t.clone()), None),
                ExtraKind::Dir => (Kind::Dir, None),
            };
            match (kinds.get(&path), &kind) {
                (Some(BaseKind::Dir), Kind::Dir) | (None, _) => {}
                (Some(BaseKind::Dir), _) => return Err(bad(format!("/{path} is a directory in the tree"))),
                (Some(_), Kind::Dir) => return Err(bad(format!("/{path} is not a directory in the tree"))),
                (Some(_), _) => {
                    self.dropped.insert(path.clone());
                }
            }
            if kind == Kind::Dir {
                made.insert(path.clone(), ());
            }
            let h = Header {
                path,
                kind,
                mode: x.mode,
                uid: x.uid,
                gid: x.gid,
                mtime: timestamp,
            };
            self.extras.push((h, data));
        }
        Ok(())
    }

    fn count(&self) -> TreeStats {
        let mut s = TreeStats::default();
        match &self.base {
            Base::Dir { entries, .. } => {
                for (h, _) in entries.iter().filter(|(h, _)| !self.dropped.contains(&h.path)) {
                    add_header(&mut s, h);
                }
            }
            Base::Tarball { entries, .. } => {
                for e in entries.iter().filter(|e| !self.dropped.contains(&e.path)) {
                    s.add(e.typeflag, e.size, &e.path, e.link.len());
                }
            }
        }
        for (h, _) in &self.extras {
            add_header(&mut s, h);
        }
        s
    }

    pub fn stats(&self) -> TreeStats {
        self.stats
    }

    /// Writes the whole archive (base, extras, end marker) to `w`.
    pub fn stream<W: Write>(&self, w: &mut W) -> Result<(), TreeError> {
        match &self.base {
            Base::Dir { entries } => {
                for (h, data) in entries.iter().filter(|(h, _)| !self.dropped.contains(&h.path)) {
                    tar::write_header(w, h).map_err(TreeError::Write)?;
                    if let (Some(host), Kind::File { size }) = (data, &h.kind) {
                        copy_file(host, *size, w)?;
                    }
                }
            }
            Base::Tarball { path, entries } => {
                let mut f = File::open(path).map_err(read_err(path))?;
                // Copy runs of kept entries in one go (the kernel splices file to pipe).
                let mut run: Option<(u64, u64)> = None;
                for e in entries {
                    let keep = !self.dropped.contains(&e.path);
                    match (&mut run, keep) {
                        (Some((_, end)), true) if *end == e.start => *end = e.end,
                        (_, true) => {
                            if let Some((s, t)) = run.replace((e.start, e.end)) {
                                copy_range(&mut f, path, s, t, w)?;
                            }
                        }
                        (_, false) => {
                            if let Some((s, t)) = run.take() {
                                copy_range(&mut f, path, s, t, w)?;
                            }
                        }
                    }
                }
                if let Some((s, t)) = run {
                    copy_range(&mut f, path, s, t, w)?;
                }
            }
        }
        for (h, data) in &self.extras {
            tar::write_header(w, h).map_err(TreeError::Write)?;
            match (data, &h.kind) {
                (Some(ExtraData::Bytes(b)), _) => {
                    w.write_all(b).map_err(TreeError::Write)?;
                    tar::pad(w, b.len() as u64).map_err(TreeError::Write)?;
                }
                (Some(ExtraData::File(host)), Kind::File { size }) => copy_file(host, *size, w)?,
                _ => {}
            }
        }
        tar::finish(w).map_err(TreeError::Write)?;
        w.flush().map_err(TreeError::Write)
    }
}

fn add_header(s: &mut TreeStats, h: &Header) {
    let (size, link) = match &h.kind {
        Kind::File { size } => (*size, 0),
        Kind::Symlink(t) => (0, t.len()),
        _ => (0, 0),
    };
    s.add(typeflag(&h.kind), size, &h.path, link);
}

fn copy_file<W: Write>(host: &Path, size: u64, w: &mut W) -> Result<(), TreeError> {
    let f = File::open(host).map_err(read_err(host))?;
    let got = io::copy(&mut f.take(size), w).map_err(TreeError::Write)?;
    if got != size {
        return Err(TreeError::Changed {
            path: host.to_path_buf(),
            expected: size,
            got,
        });
    }
    tar::pad(w, size).map_err(TreeError::Write)
}

fn copy_range<W: Write>(f: &mut File, path: &Path, start: u64, end: u64, w: &mut W) -> Result<(), TreeError> {
    f.seek(SeekFrom::Start(start)).map_err(read_err(path))?;
    let got = io::copy(&mut (&*f).take(end - start), w).map_err(TreeError::Write)?;
    if got != end - start {
        return Err(TreeError::Changed {
            path: path.to_path_buf(),
            expected: end,
            got: start + got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(v: &[(&str, BaseKind)]) -> HashMap<String, BaseKind> {
        v.iter()
            .map(|(p, k)| {
                let k = match k {
                    BaseKind::Dir => BaseKind::Dir,
                    BaseKind::Symlink(t) => BaseKind::Symlink(t.clone()),
                    BaseKind::Other => BaseKind::Other,
                };
                (p.to_string(), k)
            })
            .collect()
    }

    #[test]
    fn resolves_parents_through_base_symlinks_only() {
        let k = kinds(&[
            ("lib", BaseKind::Symlink("usr/lib".into())),
            ("usr", BaseKind::Dir),
            ("usr/lib", BaseKind::Dir),
            ("vmlinuz", BaseKind::Symlink("boot/vmlinuz-6".into())),
            ("abs", BaseKind::Symlink("/usr".into())),
        ]);
        assert_eq!(
            resolve("lib/systemd/x.service", &k).unwrap(),
            "usr/lib/systemd/x.service"
        );
        assert_eq!(resolve("vmlinuz", &k).unwrap(), "vmlinuz");
        assert_eq!(resolve("abs/lib/a", &k).unwrap(), "usr/lib/a");
        let loop_ = kinds(&[("a", BaseKind::Symlink("a".into()))]);
        assert!(resolve("a/b", &loop_).unwrap_err().contains("too many symlinks"));
    }

    #[test]
    fn extras_replace_base_entries_and_make_parents() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/hostname"), "base\n").unwrap();
        let extras = [
            ExtraFile {
                path: "/etc/hostname".into(),
                kind: ExtraKind::Bytes(b"new\n".to_vec()),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            ExtraFile {
                path: "/opt/a/b".into(),
                kind: ExtraKind::Symlink("x".into()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        ];
        let t = PreparedTree::prepare(&TreeSource::Dir(dir.path().into()), &extras, 5).unwrap();
        assert!(t.dropped.contains("etc/hostname"));
        let paths: Vec<&str> = t.extras.iter().map(|(h, _)| h.path.as_str()).collect();
        assert_eq!(paths, ["etc/hostname", "opt", "opt/a", "opt/a/b"]);
        let mut buf = Vec::new();
        t.stream(&mut buf).unwrap();
        let got = tar::scan(&mut io::Cursor::new(&buf)).unwrap();
        let names: Vec<&str> = got.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(names, ["", "etc", "etc/hostname", "opt", "opt/a", "opt/a/b"]);
        let bad = [ExtraFile {
            path: "etc/x".into(),
            kind: ExtraKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }];
        let e = PreparedTree::prepare(&TreeSource::Dir(dir.path().into()), &bad, 5)
            .err()
            .unwrap();
        assert!(e.to_string().contains("expected an absolute path"), "{e}");
        let bad = [ExtraFile {
            path: "/etc/hostname/x".into(),
            kind: ExtraKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }];
        let e = PreparedTree::prepare(&TreeSource::Dir(dir.path().into()), &bad, 5)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn compressed_tarballs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tar.gz");
        fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
        let e = PreparedTree::prepare(&TreeSource::Tarball(p), &[], 0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("gzip-compressed"), "{e}");
    }
}
