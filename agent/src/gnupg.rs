//! A private GnuPG home for the backup keys from env.yml: created 0700 under the run
//! directory, the keys imported from a 0600 file that is removed at once, and the whole home
//! (and its gpg-agent) gone when the value is dropped. Shared by `backup` and the restore.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use host_util::CommandExt;

use crate::tools::{GPG, GPGCONF};

/// A directory removed on drop (GnuPG home, scratch restore).
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new empty directory with `mode`, replacing what a killed run left there.
pub fn fresh_dir(path: PathBuf, mode: u32) -> anyhow::Result<Scratch> {
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(Scratch(path))
}

pub struct Home {
    dir: Scratch,
}

impl Drop for Home {
    fn drop(&mut self) {
        // The agent gpg started for the secret keys would outlive its deleted home.
        if let Ok(mut c) = GPGCONF.command() {
            let _ = c
                .arg("--homedir")
                .arg(&self.dir.0)
                .args(["--kill", "gpg-agent"])
                .run_checked();
        }
    }
}

impl Home {
    /// An empty home `run_dir/<name>`.
    pub fn new(run_dir: &Path, name: &str) -> anyhow::Result<Home> {
        Ok(Home {
            dir: fresh_dir(run_dir.join(name), 0o700)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir.0
    }

    /// Imports an armored key; `what` names its env.yml key in errors. Returns the
    /// fingerprint of its primary key.
    pub fn import(&self, key: &str, what: &str) -> anyhow::Result<String> {
        let keyfile = self.dir.0.join("import.asc");
        host_util::write_atomic(&keyfile, key.as_bytes(), 0o600)
            .with_context(|| format!("writing {what} for GnuPG"))?;
        let out = GPG
            .command()?
            .args(["--batch", "--status-fd", "1", "--homedir"])
            .arg(&self.dir.0)
            .arg("--import")
            .arg(&keyfile)
            .run_stdout();
        std::fs::remove_file(&keyfile).context("removing the key file")?;
        let out = out
            .with_context(|| format!("importing {what} (is it an OpenPGP secret key without passphrase?)"))?;
        // `[GNUPG:] IMPORT_OK <flags> <fingerprint>`; flags 16 marks the secret key.
        let mut secret = None;
        let mut any = None;
        for words in out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()) {
            if let ["[GNUPG:]", "IMPORT_OK", flags, fpr] = words.as_slice() {
                any.get_or_insert(fpr.to_string());
                if flags.parse::<u32>().is_ok_and(|f| f & 16 != 0) {
                    secret.get_or_insert(fpr.to_string());
                }
            }
        }
        match (secret, any) {
            (Some(fpr), _) => Ok(fpr),
            (None, Some(_)) => bail!("{what} holds a public key only; it must be the secret key"),
            (None, None) => bail!("{what}: GnuPG imported no key from it"),
        }
    }
}
