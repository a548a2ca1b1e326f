//! Restoring the backup: duplicity from env.yml's `appliance.backup.url`, decrypted with the
//! `ecs_backup` key from env.yml imported into a private GnuPG home (0700, removed afterwards).
//!
//! The backup (`ecs-agent backup`, see backup.rs) holds /data/ecs-storage-vault,
//! /data/dump/ecs-postgres/<database>.pgdump and a copy of env.yml (ecs-agent-backup/env.yml,
//! which stays in the scratch directory and goes with it). Vault and dump are restored into a scratch directory on the data disk and moved
//! into place only when duplicity has finished, so a failed restore leaves nothing half-done.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use host_util::CommandExt;

use crate::context::Context;
use crate::envfile::Settings;
use crate::gnupg::{self, fresh_dir};
use crate::tools::DUPLICITY;

/// Restores files and dump from the backup; returns the dump's path on the host.
pub fn restore_backup(ctx: &Context, settings: &Settings) -> anyhow::Result<PathBuf> {
    let url = settings
        .backup_url
        .as_deref()
        .context("ecs.recover.from_backup is set but appliance.backup.url is missing")?;
    let key = settings.backup_key.as_deref().context(
        "ecs.recover.from_backup is set but appliance.backup.encrypt (the ecs_backup key) is missing",
    )?;
    let home = gnupg::Home::new(&ctx.run_dir, "gnupg-backup")?;
    home.import(key, "appliance.backup.encrypt")?;
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
        .env("GNUPGHOME", home.path())
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
    // The one `ecs-agent backup` wrote; an older backup's other *.pgdump* if it has none.
    let ours = crate::database::dump_name(&settings.database);
    let mut dump = None;
    for entry in
        std::fs::read_dir(&restored_dumps).with_context(|| format!("reading {}", restored_dumps.display()))?
    {
        let entry = entry?;
        let dest = dump_dir.join(entry.file_name());
        std::fs::rename(entry.path(), &dest).with_context(|| format!("moving {}", dest.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ours || (dump.is_none() && name.contains(".pgdump")) {
            dump = Some(dest);
        }
    }
    dump.with_context(|| format!("the backup at {shown} holds no *.pgdump in dump/ecs-postgres"))
}
