//! `ecs-agent database-migrate`: the app's migrations behind a snapshot of the data volume.
//!
//! With the app stopped and the database checkpointed, a snapshot `PRE_MIGRATE` of the data
//! volume is taken (replacing an older one); then the definition's migrate and bootstrap hooks
//! run. The snapshot is what `update-ecs` rolls back to when the new version fails, and what the
//! operator can roll back to by hand for a week: a transient timer removes it after 7 days (and
//! does nothing if it is gone by then). A VG without room for it refuses the migration: no
//! migration runs without a way back.

use std::time::Duration;

use anyhow::Context as _;
use host_util::CommandExt as _;

use crate::appdef::AppDef;
use crate::context::{Context, StorageMode};
use crate::database;
use crate::docker::Compose;
use crate::frontend::{self, Mode, Public};
use crate::lifecycle::Job;
use crate::snapshot::{self, PRE_MIGRATE};
use crate::tools::{SYSTEMCTL, SYSTEMD_RUN};

/// How long PRE_MIGRATE is kept.
pub const KEEP_SNAPSHOT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The transient timer (and its service) that removes PRE_MIGRATE.
pub const EXPIRY_UNIT: &str = "ecs-agent-expire-pre-migrate";

/// Writes every dirty buffer of the database to disk, so that the snapshot taken next holds a
/// database that needs no crash recovery.
pub fn checkpoint(compose: &Compose, def: &AppDef) -> anyhow::Result<()> {
    let db = database::Db {
        compose,
        def,
        name: "postgres".into(),
    };
    db.psql("postgres", "CHECKPOINT")
        .context("checkpointing the database")?;
    Ok(())
}

/// The app is stopped and the database runs: checkpoint, snapshot PRE_MIGRATE, the migrate
/// and bootstrap hooks (of the version `compose`'s environment names), and the snapshot's
/// removal scheduled. A failing hook leaves the snapshot for the caller to merge back.
pub fn with_snapshot(ctx: &Context, compose: &Compose, def: &AppDef) -> anyhow::Result<String> {
    checkpoint(compose, def)?;
    let taken = snapshot::take(ctx, PRE_MIGRATE)?;
    tracing::info!("{taken}");
    database::migrate(compose, def)?;
    let expiry = schedule_removal(ctx)?;
    Ok(format!("{taken}; migrated; {expiry}"))
}

/// Where a transient timer can be set: the appliance (LVM, systemd running the machine).
fn on_systemd(ctx: &Context) -> bool {
    ctx.storage == StorageMode::Devices && std::path::Path::new("/run/systemd/system").is_dir()
}

/// A transient timer that runs `ecs-agent remove-snapshot PRE_MIGRATE` in 7 days, replacing
/// the one an earlier migration set. Only where systemd runs the machine.
fn schedule_removal(ctx: &Context) -> anyhow::Result<String> {
    schedule_removal_in(ctx, KEEP_SNAPSHOT)
}

/// At every start: a transient timer is gone after a reboot, so PRE_MIGRATE's removal is set
/// again for what is left of its 7 days (counted from its `ecs-snapshot-taken` tag), or the
/// snapshot is removed now when they are over. Nothing to do without a snapshot.
pub fn rearm_expiry(ctx: &Context) -> anyhow::Result<Option<String>> {
    if !on_systemd(ctx) || !snapshot::exists(ctx, PRE_MIGRATE)? {
        return Ok(None);
    }
    let taken = snapshot::taken_at(PRE_MIGRATE)?;
    let left = (taken + KEEP_SNAPSHOT.as_secs_f64() - crate::status::now()).max(0.0);
    if left < 60.0 {
        snapshot::remove(ctx, PRE_MIGRATE)?;
        return Ok(Some(format!("{PRE_MIGRATE} was older than 7 days: removed")));
    }
    schedule_removal_in(ctx, Duration::from_secs(left as u64)).map(Some)
}

fn schedule_removal_in(ctx: &Context, after: Duration) -> anyhow::Result<String> {
    if !on_systemd(ctx) {
        return Ok("no removal timer (not on a systemd appliance)".into());
    }
    let agent = std::env::current_exe().context("finding the ecs-agent binary")?;
    // An earlier migration's timer: replaced, so the week counts from this snapshot.
    let _ = SYSTEMCTL
        .command()?
        .args([
            "stop",
            &format!("{EXPIRY_UNIT}.timer"),
            &format!("{EXPIRY_UNIT}.service"),
        ])
        .run_checked();
    let _ = SYSTEMCTL
        .command()?
        .args([
            "reset-failed",
            &format!("{EXPIRY_UNIT}.timer"),
            &format!("{EXPIRY_UNIT}.service"),
        ])
        .run_checked();
    SYSTEMD_RUN
        .command()?
        .arg(format!("--unit={EXPIRY_UNIT}"))
        .arg(format!("--on-active={}s", after.as_secs()))
        .arg("--timer-property=AccuracySec=1min")
        .arg("--description=Remove the PRE_MIGRATE snapshot of the ECS data volume")
        .arg(agent)
        .args(["--wait-lock", "3600", "remove-snapshot", PRE_MIGRATE])
        .run_checked()
        .context("scheduling the snapshot's removal (systemd-run)")?;
    Ok(format!(
        "{EXPIRY_UNIT}.timer removes it in {:.1} days",
        after.as_secs_f64() / 86400.0
    ))
}

/// Rolls the data volume back to PRE_MIGRATE and starts the app `compose` names: stops every
/// container (the database too: /data is unmounted for the merge), merges, starts the
/// database and the app and waits for them.
pub fn roll_back(ctx: &Context, compose: &Compose, def: &AppDef, password: &str) -> anyhow::Result<()> {
    compose
        .down()
        .context("stopping the app and the database for the rollback")?;
    snapshot::merge_back(ctx, PRE_MIGRATE)?;
    database::start(ctx, compose, def, password)?;
    crate::start::containers(ctx, compose, def)?;
    Ok(())
}

/// `ecs-agent database-migrate`: the app stopped, the migration behind PRE_MIGRATE, the app
/// started again. A failed migration is rolled back to the snapshot and the app started as it was.
pub fn command(job: &mut Job) -> anyhow::Result<String> {
    job.require_running()?;
    let ctx = job.ctx;
    let (compose, def) = crate::start::project(ctx, &job.env)?;
    let domain = job.env.settings.domain.clone();
    let page = |mode: &Mode| {
        if let Err(e) = frontend::apply(ctx, &domain, mode) {
            tracing::warn!("updating the maintenance page: {e:#}");
        }
    };
    page(&Mode::Maintenance {
        state: Public::Updating,
        reason: None,
    });
    let stopped = std::time::Instant::now();
    compose.stop(&def.app).context("stopping the app")?;
    if !def.support.is_empty() {
        compose
            .stop(&def.support)
            .context("stopping the support services")?;
    }
    let migrated = match with_snapshot(ctx, &compose, &def) {
        Ok(m) => m,
        Err(e) if e.chain().any(|c| c.is::<crate::lifecycle::Refused>()) => {
            // Nothing changed: the app comes back as it was.
            crate::start::containers(ctx, &compose, &def)?;
            page(&Mode::Service);
            return Err(e);
        }
        Err(e) => {
            job.detail("rolled_back", snapshot::exists(ctx, PRE_MIGRATE).unwrap_or(false));
            if snapshot::exists(ctx, PRE_MIGRATE).unwrap_or(false) {
                tracing::error!("migration failed: rolling the data back to {PRE_MIGRATE}");
                roll_back(ctx, &compose, &def, &job.env.settings.database_password)
                    .with_context(|| format!("{e:#}; and rolling back to {PRE_MIGRATE} failed too"))?;
                page(&Mode::Service);
                return Err(e.context(format!(
                    "the data was rolled back to {PRE_MIGRATE}, the app runs as before"
                )));
            }
            return Err(e);
        }
    };
    crate::start::containers(ctx, &compose, &def)?;
    page(&Mode::Service);
    let downtime = stopped.elapsed().as_secs_f64();
    job.detail("downtime_seconds", (downtime * 10.0).round() / 10.0);
    Ok(format!("{migrated}; app down {downtime:.1}s"))
}

/// `ecs-agent remove-snapshot [NAME]` (the expiry timer's command).
pub fn remove_command(job: &mut Job, name: &str) -> anyhow::Result<String> {
    Ok(if snapshot::remove(job.ctx, name)? {
        format!("snapshot {name} removed")
    } else {
        format!("snapshot {name} was already gone")
    })
}
