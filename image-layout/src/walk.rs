//! A directory tree as tar headers: walked depth-first in byte order of names (parents before
//! children), with owners, modes and device numbers as they are on disk, hard links found by
//! inode, sockets left out, and mtimes clamped to the plan's timestamp.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::tar::{Header, Kind};
use crate::tree::TreeError;

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}
fn dev_minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

/// Walks `root` in byte order of names, parents before children.
pub fn walk_dir(root: &Path, clamp: u64) -> Result<Vec<(Header, Option<PathBuf>)>, TreeError> {
    let mut out = Vec::new();
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let meta = fs::symlink_metadata(root).map_err(read_err(root))?;
    out.push((
        Header {
            path: String::new(),
            kind: Kind::Dir,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime().max(0) as u64).min(clamp),
        },
        None,
    ));
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(read_err(&dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err(&dir))?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        let mut subdirs = Vec::new();
        for name in names {
            let host = dir.join(&name);
            let name = name.to_str().ok_or_else(|| TreeError::Read {
                path: host.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, "file name is not UTF-8"),
            })?;
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let m = fs::symlink_metadata(&host).map_err(read_err(&host))?;
            let ft = m.file_type();
            let mut data = None;
            let kind = if ft.is_dir() {
                subdirs.push((host.clone(), path.clone()));
                Kind::Dir
            } else if ft.is_symlink() {
                let t = fs::read_link(&host).map_err(read_err(&host))?;
                Kind::Symlink(t.to_string_lossy().into_owned())
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = links.get(&(m.dev(), m.ino())) {
                        out.push((header(&path, Kind::Hardlink(first.clone()), &m, clamp), None));
                        continue;
                    }
                    links.insert((m.dev(), m.ino()), path.clone());
                }
                data = Some(host.clone());
                Kind::File { size: m.len() }
            } else if ft.is_char_device() {
                Kind::Char(dev_major(m.rdev()), dev_minor(m.rdev()))
            } else if ft.is_block_device() {
                Kind::Block(dev_major(m.rdev()), dev_minor(m.rdev()))
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                continue; // sockets are not file-system content
            };
            out.push((header(&path, kind, &m, clamp), data));
        }
        // Depth-first in name order: push in reverse so the smallest name is walked first.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

fn header(path: &str, kind: Kind, m: &fs::Metadata, clamp: u64) -> Header {
    Header {
        path: path.to_string(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime().max(0) as u64).min(clamp),
    }
}
