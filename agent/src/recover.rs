//! Restoring the backup: duplicity from env.yml's `appliance.backup.url`, decrypted with the
//! `ecs_backup` key from env.yml imported into a private GnuPG home (0700, removed afterwards).
//!
//! The backup holds /data/ecs-storage-vault and /data/dump/ecs-postgres (the dump the backup
//! command writes). Both are restored into a scratch directory on the data disk and moved
//! into place only when duplicity has finished, so a failed restore leaves nothing half-done.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use host_util::CommandExt;

use crate::context::Context;
use crate::envfile::Settings;
use crate::tools::{DUPLICITY, GPG};

/// A directory removed on drop (GnuPG home, scratch restore).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fresh_dir(path: PathBuf, mode: u32) -> anyhow::Result<Scratch> {
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(Scratch(path))
}

/// Imports the backup key into a private GnuPG home.
fn gnupg_home(ctx: &Context, key: &str) -> anyhow::Result<Scratch> {
    let home = fresh_dir(ctx.run_dir.join("gnupg-backup"), 0o700)?;
    let keyfile = home.0.join("ecs_backup.asc");
    host_util::write_atomic(&keyfile, key.as_bytes(), 0o600).context("writing the backup key")?;
    GPG.command()?
        .args(["--batch", "--homedir"])
        .arg(&home.0)
        .arg("--import")
        .arg(&keyfile)
        .run_checked()
        .context("importing appliance.backup.encrypt")?;
    std::fs::remove_file(&keyfile).context("removing the key file")?;
    Ok(home)
}

/// Restores files and dump from the backup; returns the dump's path on the host.
pub fn restore_backup(ctx: &Context, settings: &Settings) -> anyhow::Result<PathBuf> {
    let url = settings
        .backup_url
        .as_deref()
        .context("ecs.recover.from_backup is set but appliance.backup.url is missing")?;
    let key = settings.backup_key.as_deref().context(
        "ecs.recover.from_backup is set but appliance.backup.encrypt (the ecs_backup key) is missing",
    )?;
    let home = gnupg_home(ctx, key)?;
    let scratch = fresh_dir(ctx.data_dir.join(".restore"), 0o700)?;
    let target = scratch.0.join("data");
    let archive = ctx.volatile_dir.join("duplicity");
    std::fs::create_dir_all(&archive).with_context(|| format!("creating {}", archive.display()))?;
    let shown = host_util::redact_url(url);
    tracing::info!("restoring the backup from {shown}");
    DUPLICITY
        .command()?
        .arg("restore")
        .arg("--archive-dir")
        .arg(&archive)
        .args(
            settings
                .backup_options
                .as_deref()
                .unwrap_or("")
                .split_whitespace(),
        )
        .arg(url)
        .arg(&target)
        .env("GNUPGHOME", &home.0)
        .env("PASSPHRASE", "")
        .run_checked()
        // duplicity's argv carries the URL: keep a password in it out of every message.
        .map_err(|e| anyhow::anyhow!("{}", host_util::redact_urls(&e.to_string().replace(url, &shown))))
        .with_context(|| format!("restoring the backup from {shown}"))?;
    let restored_vault = target.join("ecs-storage-vault");
    let restored_dumps = target.join("dump/ecs-postgres");
    if !restored_dumps.is_dir() {
        bail!("the backup at {shown} holds no dump/ecs-postgres directory");
    }
    let vault = ctx.data_dir.join("ecs-storage-vault");
    if restored_vault.is_dir() {
        std::fs::remove_dir(&vault).with_context(|| format!("removing the empty {}", vault.display()))?;
        std::fs::rename(&restored_vault, &vault)
            .with_context(|| format!("moving the restored files to {}", vault.display()))?;
    }
    let dump_dir = ctx.dump_dir();
    let mut dump = None;
    for entry in
        std::fs::read_dir(&restored_dumps).with_context(|| format!("reading {}", restored_dumps.display()))?
    {
        let entry = entry?;
        let dest = dump_dir.join(entry.file_name());
        std::fs::rename(entry.path(), &dest).with_context(|| format!("moving {}", dest.display()))?;
        if entry.file_name().to_string_lossy().contains(".pgdump") {
            dump = Some(dest);
        }
    }
    dump.with_context(|| format!("the backup at {shown} holds no *.pgdump in dump/ecs-postgres"))
}
