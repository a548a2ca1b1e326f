//! Free space, for messages: a tool that failed without a word (its stderr could not be
//! written either) most often hit a full disk.

use std::path::Path;

use crate::{CommandExt, Tool};

const DF: Tool = Tool::new("df", "coreutils");

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub fn available_bytes(path: &Path) -> Option<u64> {
    let out = DF
        .command()
        .ok()?
        .args(["--output=avail", "-B1"])
        .arg(path)
        .run_stdout()
        .ok()?;
    out.lines().nth(1)?.trim().parse().ok()
}

/// " (N MiB free on the filesystem of `path`)", or nothing when df cannot tell.
pub fn free_space_note(path: &Path) -> String {
    match available_bytes(path) {
        Some(b) => format!(" ({} MiB free on the filesystem of {})", b >> 20, path.display()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_dir_has_some_space() {
        let b = available_bytes(&std::env::temp_dir()).expect("df answers for the temp dir");
        assert!(b > 0);
        assert!(free_space_note(&std::env::temp_dir()).contains(" MiB free on the filesystem of "));
        assert_eq!(available_bytes(Path::new("/nonexistent/dir")), None);
    }
}
