//! Stage 2, overlay: what makes the cached Debian base an ECS appliance, as files added on top
//! of the tree (`image_layout::ExtraFile`): the agent and its systemd units (enabled through
//! `.wants` links), fstab by label, hostname, cloud-init configuration, the baked container
//! images and, only when asked, the env.yml. Nothing here needs the package manager, so changing
//! any of it never invalidates the rootfs cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use image_layout::{ExtraFile, ExtraKind};

use crate::error::BadInput;
use crate::machine::Machine;

pub const AGENT_PATH: &str = "/usr/local/bin/ecs-agent";
pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const IMAGES_DIR: &str = "/var/lib/ecs/images";
pub const EMBEDDED_ENV: &str = "/app/env.yml";

/// fstab by label: the disk is found whatever the hypervisor calls it.
pub const FSTAB: &str = "# Written by ecs-build: filesystems by label.
LABEL=cloudimg-rootfs\t/\text4\tdefaults,errors=remount-ro\t0\t1
LABEL=ecs-volatile\t/volatile\text4\tdefaults,nodev,nosuid,nofail,x-systemd.device-timeout=30s\t0\t2
";

/// cloud-init does what it is good at (SSH keys for root, hostname, host keys) from the NoCloud
/// seed; everything appliance-specific is left to ecs-agent.
pub const CLOUD_CFG: &str = "# Written by ecs-build: cloud-init sets up SSH access and the host name from the
# NoCloud seed (label cidata); the appliance itself is set up by ecs-agent.
datasource_list: [NoCloud, None]
# No default user: the env's ssh_authorized_keys go to root, as on the original appliance.
users: []
disable_root: false
ssh_pwauth: false
preserve_hostname: false
manage_etc_hosts: true
package_update: false
package_upgrade: false
# The system disk's layout is the image's (root, then volatile): growing root would take
# volatile's space, and ecs-agent adds volatile itself where it is missing.
growpart:
  mode: \"off\"
resize_rootfs: false
";

/// DHCP on the machine's own Ethernet ports only: `Kind=!*` leaves docker's bridges and veths
/// (which are Ethernet too) to docker; networkd would otherwise take them off their bridge.
pub const NETWORK: &str = "# Written by ecs-build.
[Match]
Type=ether
Kind=!*

[Network]
DHCP=yes
";

/// Docker keeps its images and containers on /volatile (the seed's layout): rebuilt or
/// re-pulled after a lost volatile, never filling root. Container logs are capped (an
/// unbounded json log is a disk-full attack), containers survive a dockerd restart (security
/// updates, `ecs-agent after-upgrade`), and no process in them gains privileges (setuid).
pub const DOCKER_DAEMON_JSON: &str = r#"{
  "data-root": "/volatile/docker",
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "10m",
    "max-file": "3"
  },
  "live-restore": true,
  "no-new-privileges": true
}
"#;

/// docker.service waits for /volatile: on a first boot without the volatile partition the agent
/// creates it and then starts docker (context `docker-unit`).
pub const DOCKER_DROP_IN: &str = "# Written by ecs-build: docker's data root is on /volatile.
[Unit]
RequiresMountsFor=/volatile/docker
ConditionPathIsMountPoint=/volatile
";

/// Everything the overlay stage adds, and the facts the manifest records about it.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub extras: Vec<ExtraFile>,
    pub agent: PathBuf,
    pub units: Vec<String>,
    pub enabled: Vec<String>,
}

fn file(path: &str, kind: ExtraKind, mode: u32) -> ExtraFile {
    ExtraFile {
        path: path.to_string(),
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

/// The agent binary: machine.yml's `agent.binary`, else next to the running ecs-build.
pub fn agent_binary(machine: &Machine) -> anyhow::Result<PathBuf> {
    let path = match &machine.agent.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("finding the running ecs-build executable")?
            .with_file_name("ecs-agent"),
    };
    if !path.is_file() {
        bail!(BadInput::new(format!(
            "agent.binary: {} not found: build it with `cargo build --release -p ecs-agent` \
             or set agent.binary in machine.yml",
            path.display()
        )));
    }
    Ok(path)
}

/// The units directory: `agent.units`, else agent/systemd of the source tree ecs-build came from.
pub fn units_dir(machine: &Machine) -> anyhow::Result<PathBuf> {
    let dir = match &machine.agent.units {
        Some(p) => p.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/systemd"),
    };
    if !dir.is_dir() {
        bail!(BadInput::new(format!(
            "agent.units: {} is not a directory of systemd units: set agent.units in machine.yml",
            dir.display()
        )));
    }
    Ok(dir)
}

const UNIT_SUFFIXES: &[&str] = &[".service", ".timer", ".socket", ".target", ".path", ".mount"];

/// The `[Install]` targets of a unit: (`WantedBy`/`RequiredBy`, target) pairs, and DefaultInstance.
fn install_section(text: &str) -> (Vec<(&'static str, String)>, Option<String>) {
    let mut in_install = false;
    let mut links = Vec::new();
    let mut default_instance = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let suffix = match key.trim() {
            "WantedBy" => ".wants",
            "RequiredBy" => ".requires",
            "DefaultInstance" => {
                default_instance = Some(value.trim().to_string());
                continue;
            }
            _ => continue,
        };
        links.extend(value.split_whitespace().map(|t| (suffix, t.to_string())));
    }
    (links, default_instance)
}

/// Unit files of `dir` (sorted) as extras, plus the enablement links systemctl would make.
pub fn units(dir: &Path) -> anyhow::Result<(Vec<ExtraFile>, Vec<String>, Vec<String>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| UNIT_SUFFIXES.iter().any(|s| n.ends_with(s)))
        .collect();
    names.sort();
    let mut extras = Vec::new();
    let mut enabled = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        extras.push(file(
            &format!("{UNIT_DIR}/{name}"),
            ExtraKind::Bytes(bytes),
            0o644,
        ));
        let (links, default_instance) = install_section(&text);
        let link_name = match (name.split_once("@."), default_instance) {
            (None, _) => name.clone(),
            (Some((prefix, suffix)), Some(instance)) => format!("{prefix}@{instance}.{suffix}"),
            (Some(_), None) => {
                if !links.is_empty() {
                    tracing::warn!(
                        "{}: template unit without DefaultInstance= is not enabled",
                        path.display()
                    );
                }
                continue;
            }
        };
        for (suffix, target) in links {
            extras.push(file(
                &format!("{UNIT_DIR}/{target}{suffix}/{link_name}"),
                ExtraKind::Symlink(format!("{UNIT_DIR}/{name}")),
                0o777,
            ));
            enabled.push(format!("{target}{suffix}/{link_name}"));
        }
    }
    Ok((extras, names, enabled))
}

/// A `docker save` archive has a manifest.json at its top.
fn check_image_archive(path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(f);
    let entries = archive.entries_with_seek();
    let found = entries.ok().is_some_and(|mut it| {
        it.any(|e| {
            e.ok()
                .and_then(|e| {
                    e.path()
                        .ok()
                        .map(|p| p.to_string_lossy().trim_start_matches("./") == "manifest.json")
                })
                .unwrap_or(false)
        })
    });
    if !found {
        bail!(BadInput::new(format!(
            "images: {} is not a `docker save` archive (no manifest.json inside)",
            path.display()
        )));
    }
    Ok(())
}

pub fn build(machine: &Machine) -> anyhow::Result<Overlay> {
    let agent = agent_binary(machine)?;
    let (unit_files, units, enabled) = units(&units_dir(machine)?)?;
    let mut extras = vec![
        file(AGENT_PATH, ExtraKind::File(agent.clone()), 0o755),
        file("/etc/fstab", ExtraKind::Bytes(FSTAB.into()), 0o644),
        file("/volatile", ExtraKind::Dir, 0o755),
        file(
            "/etc/hostname",
            ExtraKind::Bytes(format!("{}\n", machine.hostname).into_bytes()),
            0o644,
        ),
        file(
            "/etc/hosts",
            ExtraKind::Bytes(
                format!(
                    "127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                    h = machine.hostname
                )
                .into_bytes(),
            ),
            0o644,
        ),
        file(
            "/etc/cloud/cloud.cfg.d/90-ecs.cfg",
            ExtraKind::Bytes(CLOUD_CFG.into()),
            0o644,
        ),
        file(
            "/etc/systemd/network/99-ecs-dhcp.network",
            ExtraKind::Bytes(NETWORK.into()),
            0o644,
        ),
        file(
            "/etc/docker/daemon.json",
            ExtraKind::Bytes(DOCKER_DAEMON_JSON.into()),
            0o644,
        ),
        file(
            &format!("{UNIT_DIR}/docker.service.d/ecs-volatile.conf"),
            ExtraKind::Bytes(DOCKER_DROP_IN.into()),
            0o644,
        ),
        // Masked: ecs-frontend.service (the agent's) runs nginx with its own config on port 80.
        file(
            &format!("{UNIT_DIR}/nginx.service"),
            ExtraKind::Symlink("/dev/null".into()),
            0o777,
        ),
    ];
    extras.extend(super::hardening::files());
    // Masked: the agent's step mail runs postfix (config under /run/ecs/mail, the system's
    // queue, so sendmail still reaches it) and opendkim with what env.yml says; Debian's
    // units would start a second master on port 25 with the package's config. Masking is
    // simpler than making the agent's instance the system one: the agent's config is written
    // at every start and needs the certificate and env.yml, which exist only after boot steps.
    for unit in ["postfix.service", "postfix@-.service", "opendkim.service"] {
        extras.push(file(
            &format!("{UNIT_DIR}/{unit}"),
            ExtraKind::Symlink("/dev/null".into()),
            0o777,
        ));
    }
    extras.extend(unit_files);
    for image in &machine.images {
        check_image_archive(image)?;
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("images: {} has no file name", image.display()))?;
        extras.push(file(
            &format!("{IMAGES_DIR}/{name}"),
            ExtraKind::File(image.clone()),
            0o644,
        ));
    }
    if machine.embed_env
        && let Some(env) = &machine.env
    {
        extras.push(file("/app", ExtraKind::Dir, 0o700));
        extras.push(file(EMBEDDED_ENV, ExtraKind::File(env.clone()), 0o600));
    }
    Ok(Overlay {
        extras,
        agent,
        units,
        enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section_gives_links_and_instances() {
        let unit = "[Unit]\nWantedBy=ignored.target\n[Service]\nExecStart=/x\n[Install]\n\
                    WantedBy=multi-user.target timers.target\nRequiredBy=foo.service\nDefaultInstance=a\n";
        let (links, inst) = install_section(unit);
        assert_eq!(
            links,
            vec![
                (".wants", "multi-user.target".to_string()),
                (".wants", "timers.target".to_string()),
                (".requires", "foo.service".to_string())
            ]
        );
        assert_eq!(inst.as_deref(), Some("a"));
    }

    #[test]
    fn units_are_installed_and_enabled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.service"),
            "[Service]\nExecStart=/a\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.timer"), "[Timer]\nOnCalendar=daily\n").unwrap();
        std::fs::write(
            dir.path().join("t@.service"),
            "[Install]\nWantedBy=x.target\nDefaultInstance=one\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README"), "not a unit").unwrap();
        let (extras, names, enabled) = units(dir.path()).unwrap();
        assert_eq!(names, ["a.service", "b.timer", "t@.service"]);
        assert_eq!(
            enabled,
            [
                "multi-user.target.wants/a.service",
                "x.target.wants/t@one.service"
            ]
        );
        let link = extras
            .iter()
            .find(|e| e.path == "/etc/systemd/system/multi-user.target.wants/a.service")
            .unwrap();
        assert!(matches!(&link.kind, ExtraKind::Symlink(t) if t == "/etc/systemd/system/a.service"));
    }
}
