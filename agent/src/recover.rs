//! Restoring the backup: duplicity from env.yml's `appliance.backup.url`, decrypted with the
//! `ecs_backup` key from env.yml imported into a private GnuPG home (0700, removed afterwards);
//! and `ecs-agent recover`, the operator's restore on a running appliance (`run`).
//!
//! The backup (`ecs-agent backup`, see backup.rs) holds /data/ecs-storage-vault,
//! /data/dump/ecs-postgres/<database>.pgdump and a copy of env.yml (ecs-agent-backup/env.yml,
//! which stays in the scratch directory and goes with it). Vault and dump are restored into a scratch directory on the data disk and moved
//! into place only when duplicity has finished, so a failed restore leaves nothing half-done.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use host_util::CommandExt;

use crate::appdef::AppDef;
use crate::context::Context;
use crate::database::{self, Source};
use crate::docker::Compose;
use crate::envfile::{LoadedEnv, Settings};
use crate::frontend::{self, Mode, Public};
use crate::gnupg::{self, Scratch, fresh_dir};
use crate::lifecycle::{Job, Refused};
use crate::tools::DUPLICITY;

/// A backup restored into scratch on the data disk (`/data/.restore`), not yet in place:
/// fetching touches none of the appliance's data, so `ecs-agent recover` fetches while the
/// app still serves. Dropped without `install`, the scratch copy is removed.
pub struct Fetched {
    scratch: Scratch,
    /// The backup URL with its password hidden, for messages.
    pub shown: String,
    /// The application database: its dump is `<database>.pgdump` (database::dump_name).
    database: String,
}

/// Restores files and dump from the backup (the newest, or the one at `time`, in duplicity's
/// time format) into scratch.
pub fn fetch_backup(ctx: &Context, settings: &Settings, time: Option<&str>) -> anyhow::Result<Fetched> {
    let url = settings
        .backup_url
        .as_deref()
        .context("appliance.backup.url is missing: there is no backup to restore")?;
    let key = settings.backup_key.as_deref().context(
        "appliance.backup.encrypt (the ecs_backup key) is missing: the backup cannot be decrypted",
    )?;
    let home = gnupg::Home::new(&ctx.run_dir, "gnupg-backup")?;
    home.import(key, "appliance.backup.encrypt")?;
    let scratch = fresh_dir(ctx.data_dir.join(".restore"), 0o700)?;
    let target = scratch.0.join("data");
    let archive = ctx.volatile_dir.join("duplicity");
    std::fs::create_dir_all(&archive).with_context(|| format!("creating {}", archive.display()))?;
    let shown = host_util::redact_url(url);
    tracing::info!(
        "restoring the backup from {shown}{}",
        time.map(|t| format!(" at time {t}")).unwrap_or_default()
    );
    let mut cmd = DUPLICITY.command()?;
    cmd.arg("restore").arg("--archive-dir").arg(&archive);
    if let Some(t) = time {
        cmd.arg("--time").arg(t);
    }
    cmd.args(
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
    if !target.join("dump/ecs-postgres").is_dir() {
        bail!("the backup at {shown} holds no dump/ecs-postgres directory");
    }
    Ok(Fetched {
        scratch,
        shown,
        database: settings.database.clone(),
    })
}

impl Fetched {
    /// Moves the fetched vault into /data/ecs-storage-vault (which must be empty or missing)
    /// and the dumps into the dump directory; returns the dump's path on the host.
    pub fn install(self, ctx: &Context) -> anyhow::Result<PathBuf> {
        let target = self.scratch.0.join("data");
        let restored_vault = target.join("ecs-storage-vault");
        let restored_dumps = target.join("dump/ecs-postgres");
        let vault = ctx.data_dir.join("ecs-storage-vault");
        if restored_vault.is_dir() {
            match std::fs::remove_dir(&vault) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing the empty {}", vault.display())),
            }
            std::fs::rename(&restored_vault, &vault)
                .with_context(|| format!("moving the restored files to {}", vault.display()))?;
        }
        let dump_dir = ctx.dump_dir();
        std::fs::create_dir_all(&dump_dir).with_context(|| format!("creating {}", dump_dir.display()))?;
        let ours = crate::database::dump_name(&self.database);
        let mut dump = None;
        for entry in std::fs::read_dir(&restored_dumps)
            .with_context(|| format!("reading {}", restored_dumps.display()))?
        {
            let entry = entry?;
            let dest = dump_dir.join(entry.file_name());
            std::fs::rename(entry.path(), &dest).with_context(|| format!("moving {}", dest.display()))?;
            // The one `ecs-agent backup` wrote; an older backup's other *.pgdump* if it has none.
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ours || (dump.is_none() && name.contains(".pgdump")) {
                dump = Some(dest);
            }
        }
        dump.with_context(|| {
            format!(
                "the backup at {} holds no *.pgdump in dump/ecs-postgres",
                self.shown
            )
        })
    }
}

// `ecs-agent recover`: the boot's restore (database::restore), run on a running appliance with
// its current data moved aside first, and moved back when anything fails.

/// What `recover --from` restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// The backup at appliance.backup.url: the vault's files and the database's dump.
    Backup,
    /// A dump in the dump directory: the database only; the vault's files stay.
    Dump,
}

pub struct Request {
    pub from: From,
    /// duplicity's `--time`: restore the backup as it was then (default: the newest).
    pub time: Option<String>,
    /// The dump to restore, in the dump directory (default: the newest).
    pub dump: Option<String>,
}

/// Where the replaced data goes, on the data volume (a rename, so no copy and no second volume).
pub fn aside_root(ctx: &Context) -> PathBuf {
    ctx.data_dir.join(".recover-aside")
}

/// A directory moved aside: where it was, where it is.
struct Moved {
    from: PathBuf,
    to: PathBuf,
}

/// Seconds each phase took, in the record's details.
#[derive(Default)]
struct Phases(BTreeMap<String, f64>);

impl Phases {
    fn done(&mut self, name: &str, since: Instant) {
        let secs = (since.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        tracing::info!("recover: {name} took {secs:.1}s");
        self.0.insert(name.into(), secs);
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }
}

fn refuse(text: String) -> anyhow::Error {
    Refused(text).into()
}

/// The command: refuses (changing nothing) unless the source exists and the database's data
/// can be found; fetches a backup while the app still serves; then, with the maintenance page
/// up: stops the project, moves the replaced data aside, restores, migrates, starts, waits
/// for health. A failure after the stop puts the old data back and starts it again.
pub fn run(job: &mut Job, req: &Request) -> anyhow::Result<String> {
    let ctx = job.ctx;
    let settings = job.env.settings.clone();
    match (req.from, &req.time, &req.dump) {
        (From::Dump, Some(_), _) => {
            return Err(refuse(
                "--time picks a backup; it does not apply to --from dump".into(),
            ));
        }
        (From::Backup, _, Some(_)) => {
            return Err(refuse(
                "--dump names a dump in the dump directory; use it with --from dump".into(),
            ));
        }
        _ => {}
    }
    if let Some(t) = &req.time
        && (t.is_empty() || t.starts_with('-'))
    {
        return Err(refuse(format!(
            "--time {t:?}: expected a time duplicity understands (e.g. 2026-11-30T02:00:00, 3D, or seconds since the epoch)"
        )));
    }
    let dump = match req.from {
        From::Dump => {
            job.detail("source", "dump");
            let dump = database::find_dump(ctx, req.dump.as_deref())
                .map_err(|e| refuse(format!("{e:#}; nothing was stopped")))?;
            job.detail("dump", dump.display().to_string());
            Some(dump)
        }
        From::Backup => {
            job.detail("source", "backup");
            let Some(url) = &settings.backup_url else {
                return Err(refuse(
                    "appliance.backup.url is not set in env.yml: there is no backup to recover from; nothing was stopped"
                        .into(),
                ));
            };
            if settings.backup_key.is_none() {
                return Err(refuse("appliance.backup.encrypt (the ecs_backup key) is not set in env.yml: the backup cannot be decrypted; nothing was stopped".into()));
            }
            job.detail("url", host_util::redact_url(url));
            if let Some(t) = &req.time {
                job.detail("time", t.as_str());
            }
            None
        }
    };
    let (compose, def) = crate::start::project(ctx, &job.env)?;
    let replaced = replaced_dirs(ctx, &compose, &def, req.from)?;
    let root = aside_root(ctx);
    let older = older_copies(&root);
    let aside = root.join(utc_stamp(crate::status::now() as i64));
    if aside.exists() {
        return Err(refuse(format!(
            "{} exists (a recover in the same second?); run it again",
            aside.display()
        )));
    }
    job.detail(
        "replaced",
        replaced
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
    );
    job.detail("aside", aside.display().to_string());
    let mut phases = Phases::default();

    // A backup is fetched into scratch while the old app still serves: its download and
    // decryption are no downtime, and a backup that cannot be fetched changes nothing.
    let source = match dump {
        Some(d) => Source::Dump(d),
        None => {
            let t = Instant::now();
            let fetched = fetch_backup(ctx, &settings, req.time.as_deref())
                .context("fetching the backup (nothing was stopped or moved)")?;
            phases.done("fetch", t);
            Source::Backup(fetched)
        }
    };
    job.detail("phases", phases.json());
    job.checkpoint();

    page(ctx, &settings, Public::Updating);
    let down = Instant::now();
    let mut moved = Vec::new();
    let result = replace(
        ctx,
        &job.env,
        &compose,
        &def,
        &replaced,
        &aside,
        &mut moved,
        source,
        &mut phases,
    );
    job.detail("phases", phases.json());
    match result {
        Ok(how) => {
            let downtime = down.elapsed().as_secs_f64();
            job.detail("downtime", (downtime * 10.0).round() / 10.0);
            let mut msg = format!(
                "{how}; app healthy after {downtime:.1}s of downtime. The replaced data is in {a}: remove it with `rm -rf {a}` once the restored data is checked",
                a = aside.display()
            );
            if !older.is_empty() {
                let bytes: u64 = older.iter().map(|(_, b)| b).sum();
                msg.push_str(&format!(
                    "; {} older cop{} in {} take {} MB",
                    older.len(),
                    if older.len() == 1 { "y" } else { "ies" },
                    root.display(),
                    bytes / 1_000_000
                ));
            }
            Ok(msg)
        }
        Err(e) => {
            tracing::error!("recover failed: {e:#}; putting the previous data back");
            let t = Instant::now();
            let back = put_back(&compose, &moved, &aside).and_then(|()| {
                database::start(ctx, &compose, &def, &settings.database_password)?;
                crate::start::containers(ctx, &compose, &def)?;
                frontend::apply(ctx, &settings.domain, &Mode::Service)
                    .context("switching the frontend to the app")
            });
            phases.done("roll-back", t);
            job.detail("phases", phases.json());
            job.detail("rolled-back", back.is_ok());
            let outcome = match back {
                Ok(()) => "the previous data is back in place and the appliance runs it again".to_string(),
                Err(b) => {
                    page(ctx, &settings, Public::Failed);
                    let left: Vec<String> = moved
                        .iter()
                        .filter(|m| m.to.exists())
                        .map(|m| format!("{} (belongs in {})", m.to.display(), m.from.display()))
                        .collect();
                    format!(
                        "restoring the previous state failed too ({}); previous data still aside: {}; see docs/runbook.md, recover",
                        host_util::redact_urls(&format!("{b:#}")),
                        if left.is_empty() {
                            "none".into()
                        } else {
                            left.join(", ")
                        }
                    )
                }
            };
            Err(e.context(outcome))
        }
    }
}

fn page(ctx: &Context, settings: &Settings, state: Public) {
    let mode = Mode::Maintenance { state, reason: None };
    if let Err(e) = frontend::apply(ctx, &settings.domain, &mode) {
        tracing::warn!("updating the maintenance page: {e:#}");
    }
}

/// The downtime: everything between the stop and the app healthy again.
#[allow(clippy::too_many_arguments)]
fn replace(
    ctx: &Context,
    env: &LoadedEnv,
    compose: &Compose,
    def: &AppDef,
    replaced: &[PathBuf],
    aside: &Path,
    moved: &mut Vec<Moved>,
    source: Source,
    phases: &mut Phases,
) -> anyhow::Result<String> {
    let t = Instant::now();
    compose.stop_all()?;
    phases.done("stop", t);
    let t = Instant::now();
    for dir in replaced {
        move_aside(ctx, dir, aside, moved)?;
    }
    phases.done("move-aside", t);
    let t = Instant::now();
    database::start(ctx, compose, def, &env.settings.database_password)?;
    phases.done("database-start", t);
    let t = Instant::now();
    let how = database::restore(ctx, compose, def, &env.settings, source)?;
    phases.done("restore-migrate", t);
    let t = Instant::now();
    crate::appdirs::run(&ctx.data_dir, def, &env.vars)?;
    phases.done("app-dirs", t);
    // The restored data dir has the app's CA as it was (or none yet: seeded again).
    let t = Instant::now();
    crate::client_ca::run(ctx, &env.settings, def)?;
    phases.done("client-ca", t);
    let t = Instant::now();
    crate::start::containers(ctx, compose, def)?;
    frontend::apply(ctx, &env.settings.domain, &Mode::Service)
        .context("switching the frontend to the app")?;
    phases.done("app-start", t);
    Ok(how)
}

/// The data directory, canonical (docker names bind sources by their real paths).
fn data_dir(ctx: &Context) -> PathBuf {
    ctx.data_dir
        .canonicalize()
        .unwrap_or_else(|_| ctx.data_dir.clone())
}

/// What the restore replaces: the directories under the data dir the database service mounts
/// (as its container has them; the dump directory, a restore's source, stays), and for a
/// backup also what it holds: the vault and the dump directory.
fn replaced_dirs(ctx: &Context, compose: &Compose, def: &AppDef, from: From) -> anyhow::Result<Vec<PathBuf>> {
    let svc = &def.database.service;
    let data = data_dir(ctx);
    let dumps = data.join("dump/ecs-postgres");
    let containers = compose.docker.project_containers(&compose.project)?;
    let Some(c) = containers.iter().find(|c| &c.service == svc) else {
        return Err(refuse(format!(
            "the database service {svc} has no container: recover replaces the data of a started appliance; run `ecs-agent start` first"
        )));
    };
    let mut dirs: Vec<PathBuf> = c
        .binds
        .iter()
        .filter(|p| p.starts_with(&data) && **p != data && !p.starts_with(&dumps) && !dumps.starts_with(p))
        .cloned()
        .collect();
    if dirs.is_empty() {
        return Err(refuse(format!(
            "the database service {svc} mounts no directory under {}: recover cannot move its data aside",
            data.display()
        )));
    }
    if from == From::Backup {
        dirs.push(data.join("ecs-storage-vault"));
        dirs.push(dumps);
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Renames `dir` into `aside` (same relative path) and leaves an empty directory with the
/// same owner and mode in its place, for the restore to fill.
fn move_aside(ctx: &Context, dir: &Path, aside: &Path, moved: &mut Vec<Moved>) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let rel = dir.strip_prefix(data_dir(ctx)).unwrap_or(dir);
    let to = aside.join(rel.strip_prefix("/").unwrap_or(rel));
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        std::fs::set_permissions(aside, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", aside.display()))?;
    }
    std::fs::rename(dir, &to).with_context(|| {
        format!(
            "moving {} aside to {} (both must be on the data volume)",
            dir.display(),
            to.display()
        )
    })?;
    moved.push(Moved {
        from: dir.to_path_buf(),
        to,
    });
    std::fs::create_dir(dir).with_context(|| format!("creating the empty {}", dir.display()))?;
    std::os::unix::fs::chown(dir, Some(meta.uid()), Some(meta.gid()))
        .with_context(|| format!("setting the owner of {}", dir.display()))?;
    std::fs::set_permissions(dir, meta.permissions())
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    Ok(())
}

/// Undoes the moves: stops what runs, removes the new data, renames the old back, removes the
/// then empty aside directory.
fn put_back(compose: &Compose, moved: &[Moved], aside: &Path) -> anyhow::Result<()> {
    if let Err(e) = compose.stop_all() {
        tracing::warn!("{e:#}");
    }
    for m in moved.iter().rev() {
        match std::fs::symlink_metadata(&m.from) {
            Ok(_) => std::fs::remove_dir_all(&m.from)
                .with_context(|| format!("removing the failed restore's {}", m.from.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", m.from.display())),
        }
        std::fs::rename(&m.to, &m.from)
            .with_context(|| format!("moving {} back to {}", m.to.display(), m.from.display()))?;
    }
    remove_empty_dirs(aside);
    Ok(())
}

/// Removes `dir` and the directories in it, as long as they hold nothing else.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The aside copies of earlier recovers, with their sizes in bytes.
fn older_copies(root: &Path) -> Vec<(PathBuf, u64)> {
    fn size(p: &Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|es| es.flatten().map(|e| size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let mut out: Vec<(PathBuf, u64)> = std::fs::read_dir(root)
        .map(|es| es.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let s = size(&p);
            (p, s)
        })
        .collect();
    out.sort();
    out
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch (UTC): aside copies sort by time.
pub fn utc_stamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_796_470_055), "20261205T112735Z");
    }

    #[test]
    fn put_back_restores_the_old_tree_and_drops_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = data.join("container/db");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("old"), b"old").unwrap();
        let ctx = Context {
            data_dir: data.clone(),
            ..Context::default()
        };
        let aside = aside_root(&ctx).join("x");
        let mut moved = Vec::new();
        move_aside(&ctx, &db.canonicalize().unwrap(), &aside, &mut moved).unwrap();
        assert!(aside.join("container/db/old").is_file());
        assert_eq!(std::fs::read_dir(&db).unwrap().count(), 0, "left empty");
        std::fs::write(db.join("new"), b"new").unwrap();
        let compose = Compose {
            docker: crate::docker::Docker {
                host: "unix:///nonexistent".into(),
            },
            argv: vec!["false".into()],
            project: "p".into(),
            file: dir.path().join("c.yml"),
            env: BTreeMap::new(),
        };
        put_back(&compose, &moved, &aside).unwrap();
        assert_eq!(std::fs::read(db.join("old")).unwrap(), b"old");
        assert!(!db.join("new").exists());
        assert!(!aside.exists(), "the emptied aside directory is removed");
    }
}
