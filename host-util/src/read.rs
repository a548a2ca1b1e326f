//! Reading a configuration file that an operator (or an attacker) named: a regular file only, and
//! no more than a stated number of bytes.
//!
//! `std::fs::read` on `/dev/zero` grows until memory runs out, on a FIFO it blocks until a writer
//! closes, and on a directory it fails with an unhelpful message. Here the file is opened without
//! blocking, its type is checked on the opened descriptor (so it cannot be swapped in between), and
//! at most `limit + 1` bytes are read.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The bytes of the regular file at `path` (symlinks followed), refused with an
/// `InvalidInput` error naming what it is instead (directory, FIFO, device, socket), or a
/// `FileTooLarge` error naming `limit` when it holds more than `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}, not a regular file", describe(kind)),
        ));
    }
    read_capped(file, limit)
}

fn read_capped(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let expected = file.metadata()?.len().min(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than the limit of {}", human(limit)),
        ));
    }
    Ok(bytes)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// `4 MiB`, `512 KiB`, `100 bytes`: limits are powers of two in practice.
fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(read_regular(&path, 3).unwrap(), b"abc");
        let e = read_regular(&path, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than the limit of 2 bytes");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_regular(&link, 10).unwrap(), b"abc");
    }

    #[test]
    fn other_file_types_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular(dir.path(), 10).unwrap_err();
        assert_eq!(e.to_string(), "a directory, not a regular file");
        let e = read_regular(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(e.to_string(), "a character device, not a regular file");
        let socket = dir.path().join("sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        // Opening a socket fails (ENXIO) before its type can be looked at; either way it is refused.
        assert!(read_regular(&socket, 10).is_err());
        assert_eq!(
            read_regular(&dir.path().join("none"), 10).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_fifo_is_refused_at_once_with_or_without_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let e = read_regular(&fifo, 10).unwrap_err();
        assert_eq!(e.to_string(), "a FIFO (named pipe), not a regular file");
        // A writer that never closes: a blocking read would wait for it forever.
        let _writer = OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
        assert_eq!(
            read_regular(&fifo, 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn limits_read_as_units() {
        assert_eq!(human(4 * 1024 * 1024), "4 MiB");
        assert_eq!(human(64 * 1024), "64 KiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
