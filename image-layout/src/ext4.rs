//! ext4 filesystems made by `mke2fs` straight into a byte range of the disk file.
//!
//! mke2fs writes only the blocks it uses, so the disk stays sparse (on a fresh file,
//! `make_ext4_on_zeros` also skips zeroing journal and inode tables). Contents come from
//! `mke2fs -d`: a directory, a tarball, or a tar stream on stdin (e2fsprogs >= 1.47.1 with
//! libarchive), whose ownership is taken from the archive; that is how a rootless build gets
//! root-owned files. The system disk streams its root this way (`tree`).
//! UUID and hash seed come from the plan's seed, and every timestamp mke2fs makes itself
//! from `SOURCE_DATE_EPOCH`/`E2FSPROGS_FAKE_TIME`, so the same inputs give the same bytes.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use host_util::{CommandError, CommandExt, MissingTool, Tool};

pub const MKE2FS: Tool = Tool::new("mke2fs", "e2fsprogs");

/// Our own mke2fs.conf, so the host's never changes the result. ext4 as Debian defines it,
/// minus `metadata_csum_seed` and `orphan_file`, which GRUB 2.06 cannot read.
const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error(transparent)]
    Missing(#[from] MissingTool),
    #[error("writing mke2fs.conf: {0}")]
    Config(#[source] std::io::Error),
    #[error("making ext4 {label:?} at offset {offset}: {source}")]
    Mke2fs {
        label: String,
        offset: u64,
        #[source]
        source: CommandError,
    },
}

/// One ext4 filesystem inside a disk image file.
#[derive(Debug, Clone)]
pub struct Ext4Spec {
    /// Byte offset of the partition (or LV) in the image file.
    pub offset: u64,
    /// Filesystem size in bytes; a multiple of 4096.
    pub size: u64,
    pub label: String,
    pub uuid: String,
    pub hash_seed: String,
    /// Seconds since the epoch for the times mke2fs stamps itself.
    pub timestamp: u64,
}

/// What `mke2fs -d` reads: a directory, a tarball path, or `-` for a tarball on stdin.
#[derive(Debug, Clone)]
pub enum Ext4Contents {
    Empty,
    Dir(PathBuf),
    Tarball(PathBuf),
    /// A tar archive written to mke2fs's stdin (`-d -`), see `make_ext4_streamed`.
    Stdin,
}

/// The mke2fs command for `spec` writing into `image`; the caller may attach stdin (for `-d -`).
/// The returned temp file holds the mke2fs.conf the command points at; keep it alive until it ran.
pub fn mke2fs_command(
    image: &Path,
    spec: &Ext4Spec,
    contents: &Ext4Contents,
) -> Result<(Command, tempfile::NamedTempFile), Ext4Error> {
    command_with(image, spec, contents, "")
}

/// mke2fs takes only one `-E`: `extended` (e.g. `,assume_storage_prezeroed=1`) is appended to ours.
fn command_with(
    image: &Path,
    spec: &Ext4Spec,
    contents: &Ext4Contents,
    extended: &str,
) -> Result<(Command, tempfile::NamedTempFile), Ext4Error> {
    let mut conf = tempfile::NamedTempFile::new().map_err(Ext4Error::Config)?;
    std::io::Write::write_all(&mut conf, MKE2FS_CONF.as_bytes()).map_err(Ext4Error::Config)?;
    let mut cmd = MKE2FS.command()?;
    cmd.env("SOURCE_DATE_EPOCH", spec.timestamp.to_string())
        .env("E2FSPROGS_FAKE_TIME", spec.timestamp.to_string())
        // Never read the host's /etc/mke2fs.conf: builds must not depend on the build machine.
        .env("MKE2FS_CONFIG", conf.path())
        // libarchive refuses non-ASCII tar names in the C locale; names are bytes to us.
        .env("LC_ALL", "C.UTF-8")
        .args([
            "-q", "-F", "-t", "ext4", "-T", "default", "-b", "4096", "-I", "256", "-m", "0",
        ])
        .args(["-L", &spec.label, "-U", &spec.uuid])
        .arg("-E")
        .arg(format!(
            "offset={},hash_seed={},root_owner=0:0,nodiscard,lazy_itable_init=0,lazy_journal_init=0{extended}",
            spec.offset, spec.hash_seed
        ));
    match contents {
        Ext4Contents::Empty => {}
        Ext4Contents::Dir(p) | Ext4Contents::Tarball(p) => {
            cmd.arg("-d").arg(p);
        }
        Ext4Contents::Stdin => {
            cmd.args(["-d", "-"]);
        }
    }
    cmd.arg(image).arg(format!("{}k", spec.size / 1024));
    Ok((cmd, conf))
}

/// Like `make_ext4` for a byte range known to read as zeros (a fresh sparse file): mke2fs then
/// skips zeroing the journal and inode tables (`assume_storage_prezeroed`), so they stay holes
/// and a 10G filesystem costs megabytes, not hundreds of them.
pub fn make_ext4_on_zeros(image: &Path, spec: &Ext4Spec, contents: &Ext4Contents) -> Result<(), Ext4Error> {
    let (mut cmd, _conf) = command_with(image, spec, contents, PREZEROED)?;
    cmd.run_checked().map_err(|source| Ext4Error::Mke2fs {
        label: spec.label.clone(),
        offset: spec.offset,
        source,
    })?;
    Ok(())
}

const PREZEROED: &str = ",assume_storage_prezeroed=1";

/// Makes the filesystem and fills it from `contents`.
pub fn make_ext4(image: &Path, spec: &Ext4Spec, contents: &Ext4Contents) -> Result<(), Ext4Error> {
    let (mut cmd, _conf) = mke2fs_command(image, spec, contents)?;
    cmd.run_checked().map_err(|source| Ext4Error::Mke2fs {
        label: spec.label.clone(),
        offset: spec.offset,
        source,
    })?;
    Ok(())
}

/// A failed streamed mke2fs: mke2fs itself, or the code feeding it.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Ext4(#[from] Ext4Error),
    #[error(transparent)]
    Feed(E),
}

/// Makes the filesystem from a tar archive that `feed` writes to mke2fs's stdin. When mke2fs
/// fails, its error wins over the feed's (which is then usually a broken pipe). The byte range
/// must read as zeros, as for `make_ext4_on_zeros`.
pub fn make_ext4_streamed<E: std::error::Error + 'static>(
    image: &Path,
    spec: &Ext4Spec,
    feed: impl FnOnce(&mut std::process::ChildStdin) -> Result<(), E>,
) -> Result<(), StreamError<E>> {
    let (mut cmd, _conf) = command_with(image, spec, &Ext4Contents::Stdin, PREZEROED)?;
    let argv = cmd.argv_string();
    let spawn_err = |source| Ext4Error::Mke2fs {
        label: spec.label.clone(),
        offset: spec.offset,
        source: CommandError::Spawn {
            argv: argv.clone(),
            source,
        },
    };
    // stderr goes to a file: a pipe could fill up and stall mke2fs while we block on stdin.
    let mut log = tempfile::tempfile().map_err(spawn_err)?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log.try_clone().map_err(spawn_err)?)
        .spawn()
        .map_err(spawn_err)?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let fed = feed(&mut stdin);
    drop(stdin);
    let status = child.wait().map_err(spawn_err)?;
    if !status.success() {
        let mut text = String::new();
        let _ = log.seek(SeekFrom::Start(0));
        let _ = log.read_to_string(&mut text);
        let text = text.trim();
        let tail = &text[text.floor_char_boundary(text.len().saturating_sub(1024))..];
        let tail = if tail.is_empty() {
            let dir = image.parent().unwrap_or(Path::new("."));
            format!("mke2fs printed nothing{}", host_util::free_space_note(dir))
        } else {
            tail.to_string()
        };
        return Err(StreamError::Ext4(Ext4Error::Mke2fs {
            label: spec.label.clone(),
            offset: spec.offset,
            source: CommandError::Failed {
                argv,
                status,
                stderr: tail.replace('\n', " | "),
            },
        }));
    }
    fed.map_err(StreamError::Feed)
}

/// What an ext4 filesystem of `size` bytes made by `mke2fs_command` offers for contents,
/// estimated slightly low: 4 KiB blocks left after journal, inode tables, bitmaps and group
/// descriptors, and the number of inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub blocks: u64,
    pub inodes: u64,
}

/// mke2fs's default journal size (in blocks) for a filesystem of `blocks` 4 KiB blocks.
fn journal_blocks(blocks: u64) -> u64 {
    match blocks {
        0..2048 => 0,
        2048..32768 => 1024,
        32768..262_144 => 4096,
        262_144..524_288 => 8192,
        524_288..4_194_304 => 16384,
        4_194_304..8_388_608 => 32768,
        8_388_608..16_777_216 => 65536,
        16_777_216..33_554_432 => 131_072,
        _ => 262_144,
    }
}

pub fn capacity(size: u64) -> Capacity {
    let blocks = size / 4096;
    let groups = blocks.div_ceil(32768);
    let inodes = size / 16384;
    // Reserved GDT blocks and their backups grow slowly with the size; measured on 16M..50G.
    let slack = blocks / 256 + 64;
    let overhead = journal_blocks(blocks) + inodes * 256 / 4096 + groups * 2 + slack;
    Capacity {
        blocks: blocks.saturating_sub(overhead),
        // The first 11 inodes are reserved.
        inodes: inodes.saturating_sub(11),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use host_util::CommandExt;

    #[test]
    fn makes_clean_ext4_at_offset_without_grub_incompatible_features() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/hostname"), "x\n").unwrap();
        let img = dir.path().join("disk.raw");
        std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
        let spec = Ext4Spec {
            offset: 1 << 20,
            size: 32 << 20,
            label: "t-root".into(),
            uuid: "11111111-2222-4333-8444-555555555555".into(),
            hash_seed: "11111111-2222-4333-8444-555555555556".into(),
            timestamp: 1_700_000_000,
        };
        make_ext4(&img, &spec, &Ext4Contents::Dir(tree)).unwrap();
        let blkid = Command::new("blkid")
            .args(["-p", "-O", "1048576", "-o", "export"])
            .arg(&img)
            .run_stdout()
            .expect("blkid (util-linux)");
        assert!(
            blkid.contains("TYPE=ext4") && blkid.contains("LABEL=t-root"),
            "{blkid}"
        );
        let dumpe2fs = Command::new("debugfs")
            .args(["-R", "stats"])
            .arg(format!("{}?offset=1048576", img.display()))
            .run_stdout()
            .expect("debugfs (e2fsprogs)");
        let features = dumpe2fs
            .lines()
            .find(|l| l.starts_with("Filesystem features"))
            .unwrap();
        assert!(
            features.contains("extent") && features.contains("has_journal"),
            "{features}"
        );
        assert!(
            !features.contains("metadata_csum_seed") && !features.contains("orphan_file"),
            "{features}"
        );
        assert!(dumpe2fs.contains("Block size:               4096"), "{dumpe2fs}");
    }

    #[test]
    fn capacity_estimate_is_a_little_below_what_mke2fs_leaves() {
        let dir = tempfile::tempdir().unwrap();
        for size in [16u64 << 20, 256 << 20, 4 << 30] {
            let img = dir.path().join(format!("{size}.raw"));
            std::fs::File::create(&img).unwrap().set_len(size).unwrap();
            let spec = Ext4Spec {
                offset: 0,
                size,
                label: "cap".into(),
                uuid: "11111111-2222-4333-8444-555555555555".into(),
                hash_seed: "11111111-2222-4333-8444-555555555556".into(),
                timestamp: 0,
            };
            make_ext4_on_zeros(&img, &spec, &Ext4Contents::Empty).unwrap();
            let h = Command::new("dumpe2fs")
                .arg("-h")
                .arg(&img)
                .run_stdout()
                .expect("dumpe2fs (e2fsprogs)");
            let field = |k: &str| -> u64 {
                let l = h
                    .lines()
                    .find(|l| l.starts_with(k))
                    .unwrap_or_else(|| panic!("{k}: {h}"));
                l[k.len()..].trim().parse().unwrap()
            };
            let (free, inodes) = (field("Free blocks:"), field("Free inodes:"));
            let c = capacity(size);
            assert!(
                c.blocks <= free && c.blocks * 100 >= free * 90,
                "{size}: estimate {c:?}, free {free}"
            );
            assert!(c.inodes <= inodes, "{size}: estimate {c:?}, free inodes {inodes}");
            assert!(
                std::fs::metadata(&img)
                    .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                    .unwrap()
                    < size / 50
            );
        }
    }
}
