//! The image pipeline behind `ecs-build image`: one module per stage.
//!
//! ```text
//! rootfs (mmdebstrap, cached) -> overlay (agent, units, config) -> layout (partitions, ext4,
//! GRUB; image-layout) -> convert (qemu-img) -> seed ISO, packer template -> manifest
//! ```
//!
//! Inputs are checked before the long work starts (machine.yml, agent, units, env, images,
//! output directory, existing artifacts). Artifacts are written privately under temporary names
//! and renamed together at the end (`crate::output`); SIGINT unwinds through the same path
//! (`interrupt`). With `embed_env` the disk images hold the env's secrets and are 0600, like
//! the seed ISO.

pub mod convert;
pub mod hardening;
pub mod interrupt;
pub mod manifest;
pub mod overlay;
pub mod packages;
pub mod progress;
pub mod rootfs;
pub mod seed;
pub mod staging;
pub mod template;

use std::path::{Path, PathBuf};

use anyhow::Context;
use host_util::{CommandExt, Tool};
use image_layout::{Seed, SystemDiskPlan, TreeSource};

use crate::error::BadInput;
use crate::machine::LoadedMachine;
use crate::output::Outputs;
use progress::{Mode, Stage};

pub const GIT: Tool = Tool::new("git", "git");

/// Command-line choices that are not part of machine.yml.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--image-version`; else `git describe --always --dirty`.
    pub version: Option<String>,
    /// `--out`, overriding `outputs.dir`.
    pub out: Option<PathBuf>,
    /// Rebuild the cached base even when an entry exists.
    pub refresh_base: bool,
    /// Replace artifacts of the same name and version in the output directory.
    pub force: bool,
    /// JSON event lines (no spinners).
    pub json: bool,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub artifacts: Vec<PathBuf>,
    pub manifest: PathBuf,
    pub cache_hit: bool,
}

fn machine_dir(loaded: &LoadedMachine) -> PathBuf {
    loaded
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// The image version: `--image-version`, else `git describe --always --dirty` where machine.yml is.
pub fn version(explicit: Option<&str>, dir: &Path) -> anyhow::Result<String> {
    let v = match explicit {
        Some(v) => v.to_string(),
        None => {
            let described = GIT.command().map_err(anyhow::Error::from).and_then(|mut c| {
                c.current_dir(dir)
                    .args(["describe", "--always", "--dirty"])
                    .run_stdout()
                    .map_err(anyhow::Error::from)
            });
            match described {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                Ok(_) => anyhow::bail!(BadInput::new("no image version: pass --image-version")),
                Err(e) => anyhow::bail!(BadInput::new(format!(
                    "no image version: pass --image-version, or build inside a git checkout ({e:#})"
                ))),
            }
        }
    };
    let ok = !v.is_empty()
        && !v.starts_with('.')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if !ok {
        anyhow::bail!(BadInput::new(format!(
            "image version {v:?}: expected letters, digits, '.', '_', '+', '-' (it names files)"
        )));
    }
    Ok(v)
}

/// SOURCE_DATE_EPOCH, else the commit time of git HEAD where machine.yml is, else 0.
pub fn source_date_epoch(dir: &Path) -> anyhow::Result<u64> {
    if let Some(t) = crate::epoch::source_date_epoch()? {
        return Ok(t);
    }
    let from_git = GIT.command().ok().and_then(|mut c| {
        c.current_dir(dir)
            .args(["log", "-1", "--format=%ct"])
            .run_stdout()
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    Ok(from_git.unwrap_or(0))
}

fn agent_version(agent: &Path) -> String {
    match std::process::Command::new(agent).arg("--version").run_stdout() {
        Ok(s) if !s.trim().is_empty() => s.lines().next().unwrap_or_default().trim().to_string(),
        Ok(_) => "unknown".into(),
        Err(e) => {
            tracing::warn!("asking the agent for its version: {e}");
            "unknown".into()
        }
    }
}

/// Builds the image described by `loaded`.
pub fn build(loaded: &LoadedMachine, opts: &Options) -> anyhow::Result<Report> {
    interrupt::install();
    let m = &loaded.machine;
    let mode = Mode::detect(opts.json);
    let dir = machine_dir(loaded);
    let version = version(opts.version.as_deref(), &dir)?;
    let timestamp = source_date_epoch(&dir)?;
    let base = format!("{}-{version}", m.name);
    let out_dir = opts.out.clone().unwrap_or_else(|| m.outputs.dir.clone());

    // Everything that can be wrong with the inputs is found before the long work starts.
    staging::prepare_dir(&out_dir)?;
    let mut outputs = Outputs::new(opts.force);
    let images_secret = m.embed_env;
    let raw_name = format!("{base}.raw");
    let raw = if m.outputs.raw {
        outputs.add(&out_dir.join(&raw_name), images_secret)?
    } else {
        outputs.scratch(&out_dir, &raw_name)?
    };
    let mut converted = Vec::new();
    for (wanted, format) in [
        (m.outputs.qcow2, convert::Format::Qcow2),
        (m.outputs.vmdk, convert::Format::Vmdk),
    ] {
        if wanted {
            let name = format!("{base}.{}", format.extension());
            let path = outputs.add(&out_dir.join(&name), images_secret)?;
            converted.push((name, format, path));
        }
    }
    let seed_name = format!("{base}.seed.iso");
    let seed_temp = match &m.env {
        // The seed holds the env's key material.
        Some(_) => Some(outputs.add(&out_dir.join(&seed_name), true)?),
        None => None,
    };
    let mut templates = Vec::new();
    if m.outputs.packer {
        for name in [format!("{base}.pkr.hcl"), format!("{base}.json")] {
            let path = outputs.add(&out_dir.join(&name), false)?;
            templates.push((name, path));
        }
    }
    let manifest_name = format!("{base}.manifest.json");
    let manifest_temp = outputs.add(&out_dir.join(&manifest_name), false)?;
    let overlay = overlay::build(m)?;
    let seed_iso = match &m.env {
        Some(env) => Some(seed::iso_for_env(env, timestamp)?),
        None => None,
    };
    for tool in [&convert::QEMU_IMG, &rootfs::MMDEBSTRAP] {
        tool.path()?;
    }
    let cache = rootfs::cache_root()?;
    tracing::info!(
        event = "build",
        name = %m.name,
        version = %version,
        source_date_epoch = timestamp,
        out = %out_dir.display(),
        "building {base} into {}",
        out_dir.display()
    );

    // 1. rootfs
    let stage = Stage::start(mode, "rootfs", &format!("Debian {} base", m.base.suite));
    let rootfs = rootfs::ensure(m, &cache, timestamp, opts.refresh_base, &stage)?;
    let hit = if rootfs.cache_hit { "hit" } else { "miss" };
    stage.done(
        &format!(
            "{} packages, key {}",
            rootfs.entry.packages.len(),
            rootfs.entry.key
        ),
        Some(hit),
    );
    interrupt::check()?;

    // 2. overlay (assembled above; reported here)
    let stage = Stage::start(mode, "overlay", "agent, units, fstab, cloud-init config");
    stage.done(
        &format!(
            "{} files, {} units ({} enabled), {} container images",
            overlay.extras.len(),
            overlay.units.len(),
            overlay.enabled.len(),
            m.images.len()
        ),
        None,
    );

    // 3-4. layout, filesystems and boot loader
    let stage = Stage::start(mode, "layout", "partitions, ext4, GRUB");
    let plan = SystemDiskPlan {
        table: m.disks.table.into(),
        root_size: m.disks.root_size,
        volatile_size: m.disks.volatile_size,
        root_label: image_layout::system::DEFAULT_ROOT_LABEL.into(),
        volatile_label: image_layout::system::DEFAULT_VOLATILE_LABEL.into(),
        kernel_cmdline: m.disks.kernel_cmdline.clone(),
        seed: Seed(m.seed.clone()),
        timestamp,
    };
    let written = image_layout::system::write_system_disk(
        &plan,
        &TreeSource::Tarball(rootfs.tarball.clone()),
        &overlay.extras,
        &raw,
    );
    interrupt::check()?;
    let report = match written {
        Ok(r) => r,
        Err(e) if e.is_bad_input() => {
            return Err(anyhow::Error::new(BadInput::new(format!("disks: {e}"))))
                .context("writing the system disk");
        }
        Err(e) => return Err(anyhow::Error::new(e)).context("writing the system disk"),
    };
    stage.done(
        &format!(
            "{} partitions, {} MiB used of {} MiB",
            report.partitions.len(),
            report.used_bytes >> 20,
            report.total_bytes >> 20
        ),
        None,
    );

    // 5. convert, hashing the raw image meanwhile (both read it; they share the page cache)
    let stage = Stage::start(mode, "convert", "qcow2, vmdk");
    let raw_for_hash = raw.clone();
    let raw_hash = std::thread::spawn(move || manifest::artifact("raw", &raw_for_hash));
    for (_, format, path) in &converted {
        convert::convert(&raw, path, *format)?;
        interrupt::check()?;
    }
    let raw_artifact = raw_hash
        .join()
        .map_err(|_| anyhow::anyhow!("hashing {}: the hashing thread panicked", raw.display()))??;
    stage.done(
        &converted
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None,
    );

    // Seed ISO and packer templates.
    let mut artifacts = Vec::new();
    if m.outputs.raw {
        artifacts.push(manifest::Artifact {
            file: raw_name.clone(),
            ..raw_artifact.clone()
        });
    }
    for (name, _, path) in &converted {
        artifacts.push(manifest::artifact(name, path)?);
    }
    if let (Some(iso), Some(path)) = (&seed_iso, &seed_temp) {
        outputs.write(path, iso)?;
        artifacts.push(manifest::artifact(&seed_name, path)?);
    }
    if !templates.is_empty() {
        let inputs = template::TemplateInputs {
            machine: m,
            base: &base,
            raw_sha256: Some(&raw_artifact.sha256),
            seed_iso: seed_iso.as_ref().map(|_| seed_name.as_str()),
        };
        let t = template::template(&inputs);
        for ((name, path), text) in templates.iter().zip([t.to_hcl()?, t.to_json()?]) {
            outputs.write(path, text.as_bytes())?;
            artifacts.push(manifest::artifact(name, path)?);
        }
    }

    // 6. manifest
    let stage = Stage::start(mode, "manifest", "hashes, packages, inputs");
    let (agent_sha, _) = manifest::hash_file(&overlay.agent)?;
    let mut images = Vec::new();
    for image in &m.images {
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        images.push(manifest::artifact(&name, image)?);
    }
    let record = manifest::Manifest {
        name: m.name.clone(),
        version: version.clone(),
        source_date_epoch: timestamp,
        ecs_build: env!("CARGO_PKG_VERSION").into(),
        machine: manifest::MachineRecord {
            path: loaded.path.display().to_string(),
            sha256: manifest::sha256_hex(&loaded.bytes),
            text: String::from_utf8_lossy(&loaded.bytes).into_owned(),
        },
        artifacts,
        rootfs: manifest::RootfsRecord {
            cache_key: rootfs.entry.key.clone(),
            cache_hit: rootfs.cache_hit,
            suite: m.base.suite.clone(),
            mirror: m.base.mirror.clone(),
            mmdebstrap: rootfs.entry.inputs.mmdebstrap.clone(),
        },
        agent: manifest::AgentRecord {
            version: agent_version(&overlay.agent),
            sha256: agent_sha,
            units: overlay.units.clone(),
            enabled: overlay.enabled.clone(),
        },
        env: m.env.as_ref().map(|_| manifest::EnvRecord {
            seed_iso: seed_iso.as_ref().map(|_| seed_name.clone()),
            embedded: m.embed_env,
        }),
        images,
        packages: rootfs.entry.packages.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&record).context("serializing the manifest")?;
    json.push(b'\n');
    outputs.write(&manifest_temp, &json)?;
    let manifest_path = out_dir.join(&manifest_name);
    let artifacts = outputs.commit()?;
    stage.done(&manifest_name, None);
    tracing::info!(
        event = "done",
        manifest = %manifest_path.display(),
        cache = hit,
        "built {base}: {}",
        artifacts
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Report {
        artifacts,
        manifest: manifest_path,
        cache_hit: rootfs.cache_hit,
    })
}
