//! `ecs-agent update-ecs [--to REF]`: runs another version of the app, or keeps the one that ran.
//!
//! While the running version serves, the target's images are built (services with `build:`) or
//! found (baked archives, loaded at every start and here), and both versions' migrations are
//! listed (the definition's `migrations` hook). Then the downtime: the maintenance page says
//! "updating", the app stops, the database is migrated under a PRE_MIGRATE snapshot when the
//! migrations differ (`migrate::with_snapshot`), and the target starts. If its migration fails
//! or it does not get healthy, everything using /data stops, the snapshot is merged back (the
//! data as it was before the update), and the old version starts again.
//!
//! The version that runs is a lifecycle fact (`start::APP_VERSION_FACT`), which every start
//! uses: a reboot after an update runs the updated version. Each version's images have their own
//! tag, so the old version's stay until the new one has run healthy; built ones are then removed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::Context as _;
use host_util::CommandExt;

use crate::appdef::AppDef;
use crate::context::Context;
use crate::docker::{Compose, ServiceImage};
use crate::frontend::{self, Mode, Public};
use crate::lifecycle::{self, Job, Refused};
use crate::{database, migrate, snapshot, start};

/// The body of `ecs-agent update-ecs`, run in the lifecycle frame; `to` defaults to env.yml's ref.
pub fn run(job: &mut Job, to: Option<&str>) -> anyhow::Result<String> {
    job.require_running()?;
    let ctx = job.ctx;
    let to = match to {
        Some(r) => check_ref(r)?.to_string(),
        None => start::ecs_git_ref(&job.env.vars).to_string(),
    };
    let (old, def) = start::project(ctx, &job.env)?;
    let from = start::app_version(ctx, &job.env)?;
    job.detail("from", from.clone());
    job.detail("to", to.clone());
    if to == from {
        return Err(Refused(format!(
            "the app already runs version {from}; name another one with --to REF"
        ))
        .into());
    }
    let mut new = old.clone();
    start::set_app_version(&mut new.env, &to);

    // While the old version serves.
    let old_images = old.images()?;
    let new_images = prepare_images(&new, &to)?;
    let migrations = match &def.hooks.migrations {
        Some(argv) => {
            let list = |c: &Compose, v: &str| {
                c.run(&def.hooks.service, argv).with_context(|| {
                    format!("listing the migrations of version {v} (x-ecs.hooks.migrations)")
                })
            };
            let (a, b) = (list(&old, &from)?, list(&new, &to)?);
            a.trim() != b.trim()
        }
        None => true,
    };
    job.detail("migrate", migrations);
    job.checkpoint();

    // The downtime: from the app stopping to a version healthy again.
    let domain = job.env.settings.domain.clone();
    let stopped = Instant::now();
    page(ctx, &domain, Public::Updating);
    let mut snapshot_taken = false;
    let result = install(ctx, &new, &def, migrations, &mut snapshot_taken);
    job.detail("migrated", migrations && result.is_ok());
    job.detail("snapshot", snapshot_taken.then_some(snapshot::PRE_MIGRATE));
    if let Err(e) = result {
        let e = e.context(format!("updating the app from {from} to {to}"));
        tracing::error!("{}; rolling back", host_util::redact_urls(&format!("{e:#}")));
        println!("ecs-agent: update-ecs: {to} failed; rolling back to {from}");
        let back = rollback(ctx, job, &old, &def, snapshot_taken);
        let downtime = stopped.elapsed().as_secs_f64();
        job.detail("downtime_seconds", round(downtime));
        println!("ecs-agent: update-ecs downtime {downtime:.1}s (app stopped to app healthy)");
        return match back {
            Ok(()) => {
                job.detail("rolled_back", true);
                frontend::apply(ctx, &domain, &Mode::Service)
                    .context("switching the frontend back to the app")?;
                let how = if snapshot_taken {
                    format!(
                        "the data is back as it was before (snapshot {} merged)",
                        snapshot::PRE_MIGRATE
                    )
                } else {
                    "the data was not changed".to_string()
                };
                Err(e.context(format!("rolled back: version {from} serves again; {how}")))
            }
            Err(back) => {
                job.detail("rolled_back", false);
                page(ctx, &domain, Public::Failed);
                Err(e.context(format!(
                    "the rollback failed too, the app is down: {back:#} (see docs/runbook.md, update-ecs)"
                )))
            }
        };
    }
    // Recorded first: whatever happens next, a start runs the version the data was migrated for.
    lifecycle::update(ctx, |l| {
        l.facts.insert(start::APP_VERSION_FACT.into(), to.clone().into());
    })
    .context("recording the version the app runs")?;
    frontend::apply(ctx, &domain, &Mode::Service).context("switching the frontend to the app")?;
    let downtime = stopped.elapsed().as_secs_f64();
    job.detail("downtime_seconds", round(downtime));
    let removed = remove_old_images(&new, &old_images, &new_images);
    job.detail("images_removed", removed.clone());
    println!("ecs-agent: update-ecs downtime {downtime:.1}s (app stopped to app healthy)");
    Ok(format!(
        "version {to} serves (was {from}); {}; downtime {downtime:.1}s",
        if snapshot_taken {
            format!("migrated after snapshot {}", snapshot::PRE_MIGRATE)
        } else {
            "same migrations, not migrated".to_string()
        }
    ))
}

/// A ref as `--to` takes it: a git branch, tag or commit, never option-like.
fn check_ref(r: &str) -> anyhow::Result<&str> {
    let ok = !r.is_empty()
        && r.len() <= 200
        && !r.starts_with('-')
        && !r.contains("..")
        && r.chars().all(|c| c.is_ascii_graphic() && !"~^:?*[\\".contains(c));
    if !ok {
        return Err(Refused(format!(
            "--to {r:?}: expected a git branch, tag or commit (no spaces, none of ~^:?*[\\, no leading -)"
        ))
        .into());
    }
    Ok(r)
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}

fn page(ctx: &Context, domain: &str, state: Public) {
    if let Err(e) = frontend::apply(ctx, domain, &Mode::Maintenance { state, reason: None }) {
        tracing::warn!("updating the maintenance page: {e:#}");
    }
}

/// Builds the target's images that compose builds; refuses (nothing changed yet) when an image
/// it does not build is missing. Returns the target's images by service.
fn prepare_images(new: &Compose, version: &str) -> anyhow::Result<BTreeMap<String, ServiceImage>> {
    let images = new.images()?;
    let build: Vec<String> = images
        .iter()
        .filter(|(_, i)| i.build.is_some())
        .map(|(s, _)| s.clone())
        .collect();
    if !build.is_empty() {
        println!(
            "ecs-agent: update-ecs: building {} for version {version}",
            build.join(", ")
        );
        new.build(&build)?;
    }
    for (service, i) in &images {
        let Some(tag) = &i.image else { continue };
        if !new.docker.has_image(tag)? {
            return Err(Refused(format!(
                "image {tag} (service {service}) of version {version} is not in the engine: bake it into the \
                 appliance image (machine.yml images:) or `docker load` it, then run update-ecs again"
            ))
            .into());
        }
    }
    Ok(images)
}

/// Stops the app, migrates when the migrations differ (after a PRE_MIGRATE snapshot), starts
/// `new` and waits until it is healthy. `snapshot_taken` says whether a snapshot of this update
/// exists, for the rollback.
fn install(
    ctx: &Context,
    new: &Compose,
    def: &AppDef,
    migrations: bool,
    snapshot_taken: &mut bool,
) -> anyhow::Result<()> {
    new.stop(&def.app)?;
    if migrations {
        // An older snapshot is replaced anyway; removed first, a snapshot found after a failure
        // is this update's.
        snapshot::remove(ctx, snapshot::PRE_MIGRATE).context("removing the older PRE_MIGRATE snapshot")?;
        if let Err(e) = migrate::with_snapshot(ctx, new, def) {
            *snapshot_taken = snapshot::exists(ctx, snapshot::PRE_MIGRATE)
                .context("telling whether the PRE_MIGRATE snapshot was taken")?;
            return Err(e);
        }
        *snapshot_taken = true;
    } else if let Some(b) = &def.hooks.bootstrap {
        // As ECS's update without migrations: bootstrap brings the new code's definitions.
        database::hook(new, def, "bootstrap", b)?;
    }
    start::containers(ctx, new, def)?;
    Ok(())
}

/// Back to the version that ran: everything using /data stops, the snapshot of this update (if
/// any) is merged back, then the database and the old version start.
fn rollback(ctx: &Context, job: &Job, old: &Compose, def: &AppDef, merge: bool) -> anyhow::Result<()> {
    let password = &job.env.settings.database_password;
    if merge {
        return migrate::roll_back(ctx, old, def, password);
    }
    old.down().context("stopping the new version")?;
    database::start(ctx, old, def, password)?;
    start::containers(ctx, old, def)?;
    Ok(())
}

/// Removes the images of the old version that compose built and the new one does not use
/// (baked images stay: the appliance image carries their archive, and they are loaded once).
/// A failure is a warning: the update succeeded.
fn remove_old_images(
    new: &Compose,
    old: &BTreeMap<String, ServiceImage>,
    current: &BTreeMap<String, ServiceImage>,
) -> Vec<String> {
    let keep: BTreeSet<&String> = current.values().filter_map(|i| i.image.as_ref()).collect();
    let gone: BTreeSet<&String> = old
        .values()
        .filter(|i| i.build.is_some())
        .filter_map(|i| i.image.as_ref())
        .filter(|t| !keep.contains(t))
        .collect();
    let mut removed = Vec::new();
    for tag in gone {
        let r = new
            .docker
            .command()
            .and_then(|mut c| Ok(c.args(["image", "rm", tag.as_str()]).run_checked()?));
        match r {
            Ok(_) => removed.push(tag.clone()),
            Err(e) => tracing::warn!("removing the old image {tag}: {e:#}"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_checked() {
        for ok in ["v4", "release/2.1", "b09f0d57572e0e320e51c8acb0229250892ecfbb"] {
            assert_eq!(check_ref(ok).unwrap(), ok);
        }
        for bad in ["", "-x", "a b", "a..b", "x:y", "a\nb"] {
            let e = check_ref(bad).unwrap_err();
            assert!(e.is::<Refused>(), "{bad:?}: {e}");
        }
    }
}
