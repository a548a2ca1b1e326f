//! `ecs-agent backup` (the daily timer, or the operator): the database as a `pg_dump -Fc`
//! beside the storage vault, then duplicity of the vault, the dump and the active env.yml to
//! `appliance.backup.url`, encrypted to the `ecs_backup` key, a new full backup when the last
//! is older than `full_if_older_than`, the chains beyond `keep_full` removed. Not signed: with
//! duplicity 0.8.22 a signed backup failed its restore here ("BAD signature"), and the restore
//! must work above all.
//!
//! It runs in the lifecycle frame (lock, record, report). It refuses, changing nothing, when
//! the database has no tables or the vault no files while the last good backup had some: a
//! wiped appliance must not push an empty backup over the good ones. The dump is written under
//! a temporary name and renamed when complete, so the previous dump survives a failed one (a
//! full disk). What the backup holds is what `recover::restore_backup` reads:
//!
//! - `ecs-storage-vault/`
//! - `dump/ecs-postgres/<database>.pgdump`
//! - `ecs-agent-backup/env.yml` (the restore leaves it in its scratch directory; the copy
//!   exists under /data, 0600 in a 0700 directory, only while duplicity runs)

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use host_util::CommandExt;
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::database::{Db, DbState, RemoveOnDrop, dump_name};
use crate::gnupg::{self, Scratch};
use crate::lifecycle::{self, Job, Refused};
use crate::tools::{DUPLICITY, SYSTEMCTL};

/// The timer that runs `ecs-agent backup`.
pub const TIMER: &str = "ecs-agent-backup.timer";
/// The fact (lifecycle.json `facts`) holding what the last good backup saw.
pub const LAST_GOOD: &str = "backup-last-ok";
/// Where env.yml is staged under /data while duplicity runs (and its path in the backup).
const ENV_STAGE: &str = "ecs-agent-backup";
/// duplicity's statistics recorded in the record's `duplicity` detail.
const STATISTICS: &[&str] = &[
    "ElapsedTime",
    "SourceFiles",
    "SourceFileSize",
    "NewFiles",
    "DeletedFiles",
    "ChangedFiles",
    "TotalDestinationSizeChange",
    "Errors",
];

pub fn run(job: &mut Job) -> anyhow::Result<String> {
    job.require_running()?;
    let ctx = job.ctx;
    let settings = job.env.settings.clone();
    let url = settings
        .backup_url
        .clone()
        .context("appliance.backup.url is not set")?;
    let shown = host_util::redact_url(&url);
    job.detail("target", shown.clone());

    let (compose, def) = crate::start::project(ctx, &job.env)?;
    let db = Db {
        compose: &compose,
        def: &def,
        name: settings.database.clone(),
    };
    let tables = match db.state()? {
        DbState::Populated(n) => n,
        DbState::Missing | DbState::Empty => 0,
    };
    let vault = ctx.data_dir.join("ecs-storage-vault");
    let vault_files = count_files(&vault)?;
    job.detail("tables", tables);
    job.detail("vault_files", vault_files);
    let last = lifecycle::read(ctx)?.facts.get(LAST_GOOD).cloned();
    check_not_emptied(last.as_ref(), &settings.database, tables, vault_files)?;

    // The keys before the dump: an unusable key changes nothing.
    let home = gnupg::Home::new(&ctx.run_dir, "gnupg-backup-run")?;
    let key = settings
        .backup_key
        .as_deref()
        .context("appliance.backup.encrypt (the ecs_backup key) is missing")?;
    let encrypt = home.import(key, "appliance.backup.encrypt")?;
    job.checkpoint();

    let (dump, size) = dump(ctx, &db)?;
    job.detail("dump", dump.display().to_string());
    job.detail("dump_bytes", size);
    job.checkpoint();

    let _staged = stage_env(ctx)?;
    let mut args: Vec<String> = vec![
        "--full-if-older-than".into(),
        settings.backup_full_if_older_than.clone(),
        "--encrypt-key".into(),
        encrypt,
        // Imported keys carry no trust; they are the ones env.yml names.
        "--gpg-options=--trust-model=always".into(),
        // A restored appliance (another hostname) continues the chain.
        "--allow-source-mismatch".into(),
    ];
    args.extend(
        settings
            .backup_options
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string),
    );
    let data = &ctx.data_dir;
    for include in [vault.clone(), dump.clone(), data.join(ENV_STAGE)] {
        args.push("--include".into());
        args.push(include.display().to_string());
    }
    args.extend([
        "--exclude".into(),
        "**".into(),
        data.display().to_string(),
        url.clone(),
    ]);
    tracing::info!("duplicity to {shown}");
    let out = duplicity(ctx, &home, &url, &args)
        .with_context(|| format!("backing up to {shown} with duplicity"))?;
    let stats = statistics(&out);
    let kind = if out.contains("Last full backup date: none") || out.contains("forcing full backup") {
        "full"
    } else {
        "incremental"
    };
    job.detail("kind", kind);
    job.detail("duplicity", Value::Object(stats.clone()));
    job.checkpoint();
    if stats.get("Errors").and_then(Value::as_f64).unwrap_or(0.0) > 0.0 {
        bail!(
            "duplicity reported {} errors backing up to {shown}; see the journal",
            stats["Errors"]
        );
    }

    let keep = settings.backup_keep_full.max(1).to_string();
    duplicity(
        ctx,
        &home,
        &url,
        &[
            "remove-all-but-n-full".into(),
            keep.clone(),
            "--force".into(),
            url.clone(),
        ],
    )
    .with_context(|| format!("removing the full backups beyond the last {keep} at {shown}"))?;
    job.detail("keep_full", settings.backup_keep_full);

    lifecycle::update(ctx, |l| {
        l.facts.insert(
            LAST_GOOD.into(),
            json!({ "tables": tables, "vault_files": vault_files, "finished": crate::status::now() }),
        );
    })?;
    let num = |k: &str| stats.get(k).cloned().unwrap_or(Value::Null);
    Ok(format!(
        "{kind} backup to {shown}: {tables} tables (dump {size} bytes), {vault_files} vault files; \
         {} new files, {} bytes sent, {}s",
        num("NewFiles"),
        num("TotalDestinationSizeChange"),
        num("ElapsedTime"),
    ))
}

/// Refuses when the database or the vault is empty but the last good backup (`last`, the
/// `LAST_GOOD` fact) saw content there.
fn check_not_emptied(
    last: Option<&Value>,
    database: &str,
    tables: u64,
    vault_files: u64,
) -> anyhow::Result<()> {
    let had = |k: &str| last.and_then(|l| l[k].as_u64()).unwrap_or(0);
    let keep = "nothing was backed up: the previous backup and dump are kept. If the data is gone, \
                restore it (`ecs-agent recover`); if it is meant to be empty, remove the fact \
                `backup-last-ok` from /data/etc/ecs-agent/lifecycle.json";
    if tables == 0 && had("tables") > 0 {
        return Err(Refused(format!(
            "the database {database} has no tables, but the last good backup had {}; {keep}",
            had("tables")
        ))
        .into());
    }
    if vault_files == 0 && had("vault_files") > 0 {
        return Err(Refused(format!(
            "the storage vault is empty, but the last good backup had {} files in it; {keep}",
            had("vault_files")
        ))
        .into());
    }
    Ok(())
}

/// Regular files under `dir` (none if it does not exist).
fn count_files(dir: &Path) -> anyhow::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            n += count_files(&entry.path())?;
        } else if kind.is_file() {
            n += 1;
        }
    }
    Ok(n)
}

/// `pg_dump -Fc` in the database container to a temporary name in the dump directory (no
/// `.pgdump` in it: the restore never picks it), fsynced, renamed to `<database>.pgdump`.
/// On failure the temporary file is removed and the previous dump is untouched.
fn dump(ctx: &Context, db: &Db) -> anyhow::Result<(PathBuf, u64)> {
    let dir = ctx.dump_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = dump_name(&db.name);
    let temp_name = format!(".{}.dump-in-progress", db.name);
    let temp = RemoveOnDrop(dir.join(&temp_name));
    let _ = std::fs::remove_file(&temp.0);
    let d = &db.def.database;
    let inside = format!("{}/{temp_name}", d.dump_dir.trim_end_matches('/'));
    tracing::info!("dumping database {} to {}", db.name, dir.join(&name).display());
    db.compose
        .exec(
            &d.service,
            &["pg_dump", "-U", &d.superuser, "-Fc", "-f", &inside, &db.name],
        )
        .with_context(|| {
            format!(
                "dumping database {} (pg_dump -Fc in service {}) to {}; the previous dump is kept",
                db.name,
                d.service,
                dir.display()
            )
        })?;
    let file = std::fs::File::open(&temp.0).with_context(|| format!("opening {}", temp.0.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {} to disk", temp.0.display()))?;
    let size = file.metadata()?.len();
    let dest = dir.join(&name);
    std::fs::rename(&temp.0, &dest)
        .with_context(|| format!("renaming the new dump to {}", dest.display()))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok((dest, size))
}

/// The active env.yml copied to `/data/ecs-agent-backup/env.yml` (0600 in 0700) for duplicity;
/// removed when the value is dropped.
fn stage_env(ctx: &Context) -> anyhow::Result<Scratch> {
    let dir = gnupg::fresh_dir(ctx.data_dir.join(ENV_STAGE), 0o700)?;
    let text =
        std::fs::read(&ctx.active_env).with_context(|| format!("reading {}", ctx.active_env.display()))?;
    host_util::write_atomic(&dir.0.join("env.yml"), &text, 0o600)
        .context("staging env.yml for the backup")?;
    Ok(dir)
}

/// Runs duplicity with the private GnuPG home; returns its stdout. Errors show the URL with
/// its password hidden.
fn duplicity(ctx: &Context, home: &gnupg::Home, url: &str, args: &[String]) -> anyhow::Result<String> {
    let archive = ctx.volatile_dir.join("duplicity");
    std::fs::create_dir_all(&archive).with_context(|| format!("creating {}", archive.display()))?;
    let out = DUPLICITY
        .command()?
        .arg("--archive-dir")
        .arg(&archive)
        .args(args)
        .env("GNUPGHOME", home.path())
        .env("PASSPHRASE", "")
        .env("SIGN_PASSPHRASE", "")
        .run_stdout();
    out.map_err(|e| anyhow::anyhow!("{}", hide(&e.to_string(), url)))
}

/// `text` with `url` and any password in it hidden.
fn hide(text: &str, url: &str) -> String {
    let shown = host_util::redact_url(url);
    let mut text = host_util::redact_urls(&text.replace(url, &shown));
    // The password alone, as a backend may print it.
    if let Some(rest) = url.split_once("://").map(|(_, r)| r)
        && let Some((userinfo, _)) = rest.split_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        text = text.replace(password, host_util::redact::HIDDEN);
    }
    text
}

/// The numbers of duplicity's `--------------[ Backup Statistics ]--------------` block.
fn statistics(out: &str) -> Map<String, Value> {
    let mut stats = Map::new();
    let mut inside = false;
    for line in out.lines() {
        if line.contains("[ Backup Statistics ]") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with("---") {
            break;
        }
        let mut words = line.split_whitespace();
        if let (Some(key), Some(value)) = (words.next(), words.next())
            && STATISTICS.contains(&key)
        {
            let v = value
                .parse::<u64>()
                .map(Value::from)
                .or_else(|_| value.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::from(value));
            stats.insert(key.to_string(), v);
        }
    }
    stats
}

/// The backup timer's drop-in: env.yml's schedule replaces the unit's OnCalendar=.
pub fn render_dropin(schedule: &str) -> String {
    format!(
        "# Written by `ecs-agent start` from env.yml appliance.backup.schedule.\n\
         [Timer]\nOnCalendar=\nOnCalendar={schedule}\n"
    )
}

/// Writes `<run_dir>/ecs-agent-backup.timer.d/schedule.conf`; true when it changed.
pub fn write_dropin(systemd_run_dir: &Path, schedule: &str) -> anyhow::Result<bool> {
    let dir = systemd_run_dir.join(format!("{TIMER}.d"));
    let file = dir.join("schedule.conf");
    let text = render_dropin(schedule);
    if std::fs::read_to_string(&file).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    host_util::write_atomic(&file, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(true)
}

/// At start: the backup timer follows env.yml's schedule (only where systemd runs).
pub fn apply_schedule(ctx: &Context, schedule: &str) -> anyhow::Result<()> {
    let Some(dir) = ctx.systemd_run_dir.as_deref().filter(|d| d.is_dir()) else {
        return Ok(());
    };
    if write_dropin(dir, schedule)? {
        SYSTEMCTL
            .command()?
            .arg("daemon-reload")
            .run_checked()
            .context("reloading systemd for the backup schedule")?;
        tracing::info!("{TIMER}: OnCalendar={schedule}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_parsed_from_duplicitys_block() {
        let out = "Local and Remote metadata are synchronized, no sync needed.\n\
                   Last full backup date: none\n\
                   --------------[ Backup Statistics ]--------------\n\
                   StartTime 1764930000.12 (Sat Dec  5 10:20:00 2026)\n\
                   EndTime 1764930001.50 (Sat Dec  5 10:20:01 2026)\n\
                   ElapsedTime 1.38 (1.38 seconds)\n\
                   SourceFiles 7\n\
                   SourceFileSize 123456 (121 KB)\n\
                   NewFiles 7\n\
                   TotalDestinationSizeChange 4567 (4.46 KB)\n\
                   Errors 0\n\
                   -------------------------------------------------\n\
                   Errors 9\n";
        let s = statistics(out);
        assert_eq!(s["ElapsedTime"], 1.38);
        assert_eq!(s["SourceFiles"], 7);
        assert_eq!(s["SourceFileSize"], 123456);
        assert_eq!(s["TotalDestinationSizeChange"], 4567);
        assert_eq!(s["Errors"], 0);
        assert!(!s.contains_key("StartTime"));
        assert!(statistics("no block\nErrors 3\n").is_empty());
    }

    #[test]
    fn an_emptied_database_or_vault_is_refused_only_after_a_good_backup_saw_content() {
        assert!(check_not_emptied(None, "ecs", 0, 0).is_ok());
        let last = json!({"tables": 12, "vault_files": 3});
        assert!(check_not_emptied(Some(&last), "ecs", 12, 3).is_ok());
        let e = check_not_emptied(Some(&last), "ecs", 0, 3).unwrap_err();
        assert!(e.is::<Refused>());
        assert!(
            e.to_string()
                .starts_with("the database ecs has no tables, but the last good backup had 12"),
            "{e}"
        );
        let e = check_not_emptied(Some(&last), "ecs", 12, 0).unwrap_err();
        assert!(e.to_string().contains("vault is empty"), "{e}");
        let empty = json!({"tables": 0, "vault_files": 0});
        assert!(check_not_emptied(Some(&empty), "ecs", 0, 0).is_ok());
    }

    #[test]
    fn passwords_are_hidden_in_errors() {
        let url = "sftp://backup:s3cret@host:2222/ecs";
        let text = format!("running duplicity {url}: login for backup with s3cret failed");
        let h = hide(&text, url);
        assert!(!h.contains("s3cret"), "{h}");
        assert!(h.contains("sftp://backup:***@host:2222/ecs"), "{h}");
    }

    #[test]
    fn the_dropin_replaces_the_units_schedule_and_is_rewritten_only_on_change() {
        assert_eq!(
            render_dropin("Sun *-*-* 02:00:00"),
            "# Written by `ecs-agent start` from env.yml appliance.backup.schedule.\n\
             [Timer]\nOnCalendar=\nOnCalendar=Sun *-*-* 02:00:00\n"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(write_dropin(dir.path(), "*-*-* 01:00:00").unwrap());
        assert!(!write_dropin(dir.path(), "*-*-* 01:00:00").unwrap());
        let file = dir.path().join("ecs-agent-backup.timer.d/schedule.conf");
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .ends_with("OnCalendar=*-*-* 01:00:00\n")
        );
        assert!(write_dropin(dir.path(), "*-*-* 03:00:00").unwrap());
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .ends_with("OnCalendar=*-*-* 03:00:00\n")
        );
    }
}
