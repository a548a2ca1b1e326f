//! The container runtime: the docker CLI for state and health, and the compose tool for the
//! project (`docker compose` v2 when the plugin is there, else `docker-compose`, v1 or v2).
//!
//! Compose interpolates the template with the environment it is given, so the agent passes
//! the flattened env.yml and its own paths (AGENT_*) as the compose process's environment;
//! secrets never appear in argv or on disk outside /run/active-env.yml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use host_util::CommandExt;
use serde::Deserialize;

use crate::tools::{DOCKER, DOCKER_COMPOSE, SYSTEMCTL};

#[derive(Debug, Clone)]
pub struct Docker {
    pub host: String,
}

/// What `docker inspect` says about one container of the project.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub service: String,
    pub running: bool,
    pub exit_code: i64,
    /// `starting`, `healthy` or `unhealthy`; None without a healthcheck.
    pub health: Option<String>,
    /// The last healthcheck output, for messages.
    pub health_log: String,
    /// Host paths bind-mounted into the container.
    pub binds: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    name: String,
    state: InspectState,
    config: InspectConfig,
    #[serde(default)]
    mounts: Option<Vec<InspectMount>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectMount {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    source: PathBuf,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    running: bool,
    exit_code: i64,
    health: Option<InspectHealth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealth {
    status: String,
    #[serde(default)]
    log: Option<Vec<HealthLog>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthLog {
    #[serde(default)]
    output: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

impl Docker {
    pub fn command(&self) -> anyhow::Result<Command> {
        let mut c = DOCKER.command()?;
        c.env("DOCKER_HOST", &self.host);
        Ok(c)
    }

    /// Fails unless the engine answers.
    pub fn ping(&self) -> anyhow::Result<()> {
        self.command()?
            .args(["version", "--format", "{{.Server.Version}}"])
            .run_checked()
            .with_context(|| format!("reaching the docker engine at {}", self.host))?;
        Ok(())
    }

    /// Waits up to `timeout` for the engine to answer. Under systemd, `unit` is started first
    /// when it is not active: its data root is on /volatile, so at boot it may have been
    /// skipped until the storage step mounted it. Not pinged before that: a ping would go to
    /// docker.socket, which cannot start the skipped service, and hang.
    pub fn ensure_running(&self, unit: Option<&str>, timeout: Duration) -> anyhow::Result<()> {
        let under_systemd = Path::new("/run/systemd/system").is_dir();
        if let Some(unit) = unit.filter(|_| under_systemd) {
            let active = SYSTEMCTL
                .command()?
                .args(["is-active", "--quiet", unit])
                .run_checked()
                .is_ok();
            if !active {
                tracing::info!("{unit} is not active; starting it");
                SYSTEMCTL
                    .command()?
                    .args(["start", unit])
                    .run_checked()
                    .with_context(|| format!("starting {unit} (see journalctl -u {unit})"))?;
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.ping() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("the engine did not answer within {timeout:?}")));
                }
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }

    /// The containers of a compose project, running or not.
    pub fn project_containers(&self, project: &str) -> anyhow::Result<Vec<Container>> {
        let ids = self
            .command()?
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=com.docker.compose.project={project}"))
            .run_stdout()?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let json = self.command()?.arg("inspect").args(&ids).run_stdout()?;
        let parsed: Vec<Inspect> = serde_json::from_str(&json).context("parsing docker inspect output")?;
        Ok(parsed
            .into_iter()
            .map(|i| {
                let labels = i.config.labels.unwrap_or_default();
                let health_log = i
                    .state
                    .health
                    .as_ref()
                    .and_then(|h| h.log.as_ref())
                    .and_then(|l| l.last())
                    .map(|l| l.output.trim().to_string())
                    .unwrap_or_default();
                Container {
                    name: i.name.trim_start_matches('/').to_string(),
                    service: labels
                        .get("com.docker.compose.service")
                        .cloned()
                        .unwrap_or_default(),
                    running: i.state.running,
                    exit_code: i.state.exit_code,
                    health: i.state.health.map(|h| h.status),
                    health_log,
                    binds: i
                        .mounts
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|m| m.kind == "bind")
                        .map(|m| m.source)
                        .collect(),
                }
            })
            .collect())
    }
}

/// Loads the `docker save` archives in `dir` that the record file does not list yet (name,
/// size and mtime), so baked images are loaded once, not at every boot. Returns the names loaded.
pub fn load_baked_images(docker: &Docker, dir: &Path, record: &Path) -> anyhow::Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut done = std::fs::read_to_string(record).unwrap_or_default();
    let mut loaded = Vec::new();
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let meta = std::fs::metadata(&file).with_context(|| format!("reading {}", file.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let line = format!("{} {} {}", file.display(), meta.len(), mtime.unwrap_or(0));
        if done.lines().any(|l| l == line) {
            continue;
        }
        docker
            .command()?
            .arg("load")
            .arg("-q")
            .arg("-i")
            .arg(&file)
            .run_checked()
            .with_context(|| format!("loading the image archive {}", file.display()))?;
        done.push_str(&line);
        done.push('\n');
        host_util::write_atomic(record, done.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", record.display()))?;
        loaded.push(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    Ok(loaded)
}

/// One compose project: its file, its name and the environment compose interpolates.
#[derive(Debug, Clone)]
pub struct Compose {
    pub docker: Docker,
    pub argv: Vec<String>,
    pub project: String,
    pub file: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// A service's image in the resolved compose file.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceImage {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub build: Option<serde_json::Value>,
}

impl Docker {
    /// Whether the engine has the image `tag`.
    pub fn has_image(&self, tag: &str) -> anyhow::Result<bool> {
        Ok(self
            .command()?
            .args(["image", "inspect", "--format", "{{.Id}}", tag])
            .run_checked()
            .is_ok())
    }
}

/// The compose command to use: the configured one, else `docker compose` if the plugin
/// answers, else `docker-compose`.
pub fn detect_compose(docker: &Docker, configured: Option<&[String]>) -> anyhow::Result<Vec<String>> {
    if let Some(argv) = configured {
        if argv.is_empty() {
            bail!("compose-command: expected a program and its arguments, found an empty list");
        }
        return Ok(argv.to_vec());
    }
    if docker
        .command()?
        .args(["compose", "version"])
        .run_checked()
        .is_ok()
    {
        return Ok(vec![DOCKER.path()?.display().to_string(), "compose".into()]);
    }
    Ok(vec![DOCKER_COMPOSE.path()?.display().to_string()])
}

impl Compose {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..])
            .arg("--ansi")
            .arg("never")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.file)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .env("DOCKER_HOST", &self.docker.host)
            .envs(&self.env);
        if let Some(dir) = self.file.parent() {
            c.current_dir(dir);
        }
        c
    }

    /// Creates and starts `services` (and what they depend on) in the background.
    pub fn up(&self, services: &[String]) -> anyhow::Result<()> {
        self.command()
            .args(["up", "-d", "--no-color", "--remove-orphans"])
            .args(services)
            .run_checked()
            .with_context(|| format!("starting {}", services.join(", ")))?;
        Ok(())
    }

    /// Stops `services` (their containers stay, to be started again by `up`).
    pub fn stop(&self, services: &[String]) -> anyhow::Result<()> {
        self.command()
            .args(["stop"])
            .args(services)
            .run_checked()
            .with_context(|| format!("stopping {}", services.join(", ")))?;
        Ok(())
    }

    /// Stops and removes the project's containers (volumes and data directories stay).
    pub fn down(&self) -> anyhow::Result<()> {
        self.command()
            .args(["down", "--remove-orphans"])
            .run_checked()
            .context("stopping the project")?;
        Ok(())
    }

    /// Stops every container of the project (they stay, with their configuration).
    pub fn stop_all(&self) -> anyhow::Result<()> {
        self.command()
            .arg("stop")
            .run_checked()
            .context("stopping the project's services")?;
        Ok(())
    }

    /// Builds the images of `services` (those with `build:`), tagged as their `image:` says.
    pub fn build(&self, services: &[String]) -> anyhow::Result<()> {
        self.command()
            .arg("build")
            .args(services)
            .run_checked()
            .with_context(|| format!("building the images of {}", services.join(", ")))?;
        Ok(())
    }

    /// Each service's image as compose resolves it with this environment, and whether compose
    /// builds it (`build:`) rather than taking it from the engine.
    pub fn images(&self) -> anyhow::Result<BTreeMap<String, ServiceImage>> {
        #[derive(Deserialize)]
        struct Config {
            services: BTreeMap<String, ServiceImage>,
        }
        let text = self
            .command()
            .arg("config")
            .run_stdout()
            .context("resolving the compose file (compose config)")?;
        let config: Config = serde_saphyr::from_str(&text).context("parsing compose config's output")?;
        Ok(config.services)
    }

    /// Runs a one-off command in a fresh container of `service`; returns stdout.
    pub fn run(&self, service: &str, argv: &[String]) -> anyhow::Result<String> {
        self.command()
            .args(["run", "--rm", "-T", "--no-deps", service])
            .args(argv)
            .run_stdout()
            .with_context(|| format!("running {} in service {service}", argv.join(" ")))
    }

    /// Like `run`, with `input` on the command's stdin: how a secret reaches a hook, never in
    /// argv or the environment (both are visible in `docker inspect` and process lists).
    pub fn run_input(&self, service: &str, argv: &[String], input: &[u8]) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(["run", "--rm", "-T", "--no-deps", service])
            .args(argv)
            .run_with_input(input)
            .with_context(|| format!("running {} in service {service}", argv.join(" ")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command in the running container of `service`; returns stdout.
    pub fn exec(&self, service: &str, argv: &[&str]) -> anyhow::Result<String> {
        Ok(self
            .command()
            .args(["exec", "-T", service])
            .args(argv)
            .run_stdout()?)
    }

    /// Like `exec`, with `input` on the command's stdin: how a secret reaches a container,
    /// never in argv.
    pub fn exec_input(&self, service: &str, argv: &[&str], input: &[u8]) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(["exec", "-T", service])
            .args(argv)
            .run_with_input(input)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Fails if the container of `service` stopped or turned unhealthy (it may still be starting).
pub fn check_alive(docker: &Docker, project: &str, service: &str) -> anyhow::Result<()> {
    let containers = docker.project_containers(project)?;
    let Some(c) = containers.iter().find(|c| c.service == service) else {
        bail!("service {service} has no container");
    };
    if !c.running {
        bail!(
            "service {service} stopped (container {}, exit code {})",
            c.name,
            c.exit_code
        );
    }
    if c.health.as_deref() == Some("unhealthy") {
        bail!("service {service} is unhealthy: {}", c.health_log);
    }
    Ok(())
}

/// Waits until every container of `services` is running and, where it has a healthcheck,
/// healthy. Fails at once when one exits or turns unhealthy, naming it.
pub fn wait_healthy(
    docker: &Docker,
    project: &str,
    services: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let containers = docker.project_containers(project)?;
        let mut waiting = Vec::new();
        for svc in services {
            let Some(c) = containers.iter().find(|c| &c.service == svc) else {
                waiting.push(format!("{svc} (no container)"));
                continue;
            };
            if !c.running {
                bail!(
                    "service {svc} stopped (container {}, exit code {})",
                    c.name,
                    c.exit_code
                );
            }
            match c.health.as_deref() {
                None | Some("healthy") => {}
                Some("unhealthy") => bail!("service {svc} is unhealthy: {}", c.health_log),
                Some(other) => waiting.push(format!("{svc} ({other})")),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "services not healthy after {}s: {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The compose project directory's file name.
pub fn compose_file(dir: &Path) -> PathBuf {
    dir.join("docker-compose.yml")
}
