//! Step `env`: find env.yml (on a NoCloud seed device labelled cidata/CIDATA, iso9660 or
//! vfat, read directly with xorriso or mtools so the agent works with or without cloud-init;
//! else /app/env.yml), validate it, and write /run/active-env.yml (0600).
//!
//! A seed made by ecs-build carries env.yml as its own file `env.yml` beside a user-data that
//! holds only cloud-init's keys; the original appliance's seed has env.yml as its user-data.
//! The agent takes `env.yml` when the seed has it, else `user-data`, and says which.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use host_util::{CommandError, CommandExt};

use crate::context::Context;
use crate::envfile::{self, LoadedEnv};
use crate::tools::{BLKID, MCOPY, XORRISO};

/// The env.yml is missing or invalid: bad config, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn devices_with_label(label: &str) -> anyhow::Result<Vec<PathBuf>> {
    match BLKID
        .command()?
        .args(["-o", "device", "-t"])
        .arg(format!("LABEL={label}"))
        .run_stdout()
    {
        Ok(s) => Ok(s.lines().map(|l| PathBuf::from(l.trim())).collect()),
        Err(CommandError::Failed { status, .. }) if status.code() == Some(2) => Ok(Vec::new()),
        Err(e) => Err(e).context("searching for the seed device"),
    }
}

fn fs_type(dev: &Path) -> anyhow::Result<String> {
    let out = BLKID
        .command()?
        .args(["-p", "-s", "TYPE", "-o", "value"])
        .arg(dev)
        .run_stdout();
    Ok(out.map(|s| s.trim().to_string()).unwrap_or_default())
}

fn label_of(dev: &Path) -> anyhow::Result<String> {
    let out = BLKID
        .command()?
        .args(["-p", "-s", "LABEL", "-o", "value"])
        .arg(dev)
        .run_stdout();
    Ok(out.map(|s| s.trim().to_string()).unwrap_or_default())
}

/// Copies every file in the root of the seed on `dev` into the empty directory `dir`, and
/// returns the name of the one holding env.yml: `env.yml` when present, else `user-data`.
pub fn read_seed(dev: &Path, dir: &Path) -> anyhow::Result<&'static str> {
    let context = || format!("reading the seed files from {}", dev.display());
    match fs_type(dev)?.as_str() {
        "iso9660" => {
            XORRISO
                .command()?
                .args(["-osirrox", "on", "-indev"])
                // stdio: lets xorriso read any file or block device, not only optical drives.
                .arg(format!("stdio:{}", dev.display()))
                .args(["-extract", "/"])
                .arg(dir)
                .run_checked()
                .with_context(context)?;
        }
        "vfat" => {
            MCOPY
                .command()?
                .args(["-s", "-n", "-i"])
                .arg(dev)
                .arg("::/")
                .arg(dir)
                .run_checked()
                .with_context(context)?;
        }
        other => anyhow::bail!(
            "{}: seed filesystem {other:?}, expected iso9660 or vfat",
            dev.display()
        ),
    }
    // Only a regular file counts: a Rock Ridge symlink named env.yml must not point us
    // elsewhere on this system.
    let regular = |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_file());
    for name in [appliance_env::SEED_ENV_FILE, "user-data"] {
        if regular(name) {
            return Ok(name);
        }
    }
    Err(ConfigError(format!(
        "{}: the seed has neither {} nor user-data",
        dev.display(),
        appliance_env::SEED_ENV_FILE
    ))
    .into())
}

/// Where env.yml came from, and the loaded env.
pub struct Found {
    pub source: String,
    pub env: LoadedEnv,
}

pub fn run(ctx: &Context) -> anyhow::Result<Found> {
    let mut candidates = Vec::new();
    match &ctx.seed_devices {
        Some(list) => {
            for d in list {
                let label = label_of(d)?;
                if ctx.seed_labels.contains(&label) {
                    candidates.push(d.clone());
                }
            }
        }
        None => {
            for label in &ctx.seed_labels {
                candidates.extend(devices_with_label(label)?);
            }
        }
    }
    let work = ctx.run_dir.join("seed");
    // The seed's files (secrets among them) pass through here: a fresh directory only root
    // can enter, emptied again below.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
    let files = work.join("files");
    let (source, name, path) = if let Some(dev) = candidates.first() {
        std::fs::create_dir(&files).with_context(|| format!("creating {}", files.display()))?;
        let file = read_seed(dev, &files).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&files);
        })?;
        let how = if file == "user-data" {
            "user-data: an original single-file env.yml"
        } else {
            file
        };
        (
            format!("seed {} ({how})", dev.display()),
            format!("{}:/{file}", dev.display()),
            files.join(file),
        )
    } else if ctx.app_env.is_file() {
        (
            ctx.app_env.display().to_string(),
            ctx.app_env.display().to_string(),
            ctx.app_env.clone(),
        )
    } else {
        return Err(ConfigError(format!(
            "no user-data: no device labelled {} and no {}",
            ctx.seed_labels.join("/"),
            ctx.app_env.display()
        ))
        .into());
    };
    // Regular files of env.yml's size only: the same rule as `config check`.
    let text = appliance_env::read_file(&path).map_err(|e| ConfigError(e.to_string()));
    let _ = std::fs::remove_dir_all(&files);
    let text = text?;
    let env =
        envfile::parse(&name, &String::from_utf8_lossy(&text)).map_err(|e| ConfigError(e.to_string()))?;
    if let Some(dir) = ctx.active_env.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    host_util::write_atomic(&ctx.active_env, &text, 0o600)
        .with_context(|| format!("writing {}", ctx.active_env.display()))?;
    Ok(Found { source, env })
}
