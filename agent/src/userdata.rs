//! Step `env`: find the user-data (a NoCloud seed device labelled cidata/CIDATA, iso9660 or
//! vfat, read directly with xorriso or mtools so the agent works with or without cloud-init;
//! else /app/env.yml), validate it, and write /run/active-env.yml (0600).

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

/// Copies `user-data` off a seed device into `out`.
pub fn read_seed(dev: &Path, out: &Path) -> anyhow::Result<()> {
    match fs_type(dev)?.as_str() {
        "iso9660" => {
            XORRISO
                .command()?
                .args(["-osirrox", "on", "-indev"])
                // stdio: lets xorriso read any file or block device, not only optical drives.
                .arg(format!("stdio:{}", dev.display()))
                .args(["-extract", "/user-data"])
                .arg(out)
                .run_checked()
                .with_context(|| format!("reading user-data from {}", dev.display()))?;
        }
        "vfat" => {
            MCOPY
                .command()?
                .args(["-n", "-i"])
                .arg(dev)
                .arg("::user-data")
                .arg(out)
                .run_checked()
                .with_context(|| format!("reading user-data from {}", dev.display()))?;
        }
        other => anyhow::bail!(
            "{}: seed filesystem {other:?}, expected iso9660 or vfat",
            dev.display()
        ),
    }
    if !out.is_file() {
        anyhow::bail!("{}: the seed has no file user-data", dev.display());
    }
    Ok(())
}

/// Where the user-data came from, and the loaded env.
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
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
    let (source, name, path) = if let Some(dev) = candidates.first() {
        let out = work.join("user-data");
        let _ = std::fs::remove_file(&out);
        read_seed(dev, &out)?;
        (
            format!("seed {}", dev.display()),
            format!("{}:/user-data", dev.display()),
            out,
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
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let env =
        envfile::parse(&name, &String::from_utf8_lossy(&text)).map_err(|e| ConfigError(e.to_string()))?;
    let _ = std::fs::remove_file(work.join("user-data"));
    if let Some(dir) = ctx.active_env.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    host_util::write_atomic(&ctx.active_env, &text, 0o600)
        .with_context(|| format!("writing {}", ctx.active_env.display()))?;
    Ok(Found { source, env })
}
