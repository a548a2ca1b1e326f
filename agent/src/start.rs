//! `ecs-agent start`: the boot sequence as ordered, logged steps. Each step is recorded in
//! /run/ecs/status.json and announced on stdout (`ecs-agent: step <name> ok|failed: <reason>`,
//! which the unit sends to the console); the frontend says what is going on meanwhile.
//!
//! A failed step stops the sequence: nothing after it runs and no data is touched. The agent
//! then leaves the maintenance page up with the reason class (public: no error text), records
//! the error chain in the journal and status.json, reports it to Sentry when a DSN is set, and
//! exits 2 (bad config) or 1 (failed operation).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;

use crate::appdef::{self, AppDef};
use crate::context::Context;
use crate::database;
use crate::docker::{self, Compose, Docker};
use crate::envfile::{LoadedEnv, Settings};
use crate::frontend::{self, Mode, Public};
use crate::report;
use crate::status::{Reason, State, Tracker};
use crate::storage;
use crate::tls;
use crate::userdata::{self, ConfigError};

pub const STEPS: &[&str] = &[
    "env",
    "storage",
    "postgres",
    "database",
    "app-dirs",
    "client-ca",
    "tls",
    "mail",
    "containers",
];

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Standby,
    /// Exit code 2: the configuration is missing or wrong.
    BadConfig,
    /// Exit code 1.
    Failed,
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Running | Outcome::Standby => 0,
            Outcome::BadConfig => 2,
            Outcome::Failed => 1,
        }
    }
}

struct Run<'a> {
    ctx: &'a Context,
    tracker: Tracker,
    domain: String,
    dsn: Option<String>,
}

impl Run<'_> {
    fn page(&self, mode: &Mode) {
        if let Err(e) = frontend::apply(self.ctx, &self.domain, mode) {
            tracing::warn!("updating the maintenance page: {e:#}");
        }
    }

    fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> anyhow::Result<(T, String)>,
    ) -> Result<T, Outcome> {
        tracing::info!("step {name}: starting");
        let _ = self.tracker.set(name, State::Running, "");
        self.page(&Mode::Maintenance {
            state: Public::Starting,
            reason: Some(Reason::of_step(name, false)),
        });
        match f(self) {
            Ok((value, message)) => {
                let message = host_util::redact_urls(&message);
                println!("ecs-agent: step {name} ok: {message}");
                tracing::info!("step {name}: ok: {message}");
                let _ = self.tracker.set(name, State::Ok, &message);
                Ok(value)
            }
            Err(e) => Err(self.fail(name, &e)),
        }
    }

    fn fail(&mut self, name: &str, e: &anyhow::Error) -> Outcome {
        let config = e.chain().any(|c| c.is::<ConfigError>());
        let outcome = if config {
            Outcome::BadConfig
        } else {
            Outcome::Failed
        };
        let reason = Reason::of_step(name, config);
        // The detail goes to the console and journal, status.json (0600) and Sentry only, each
        // with the passwords of URLs hidden.
        let detail = host_util::redact_urls(&format!("{e:#}"));
        println!("ecs-agent: step {name} failed: {detail}");
        tracing::error!("step {name} failed: {detail}");
        let _ = self.tracker.set(name, State::Failed, &detail);
        let _ = self.tracker.set_failed(reason);
        self.page(&Mode::Maintenance {
            state: Public::Failed,
            reason: Some(reason),
        });
        if let Some(dsn) = &self.dsn
            && let Err(err) = report::send(
                dsn,
                &self.ctx.run_dir,
                "fatal",
                &format!("step {name} failed: {detail}"),
                &[
                    ("step", name),
                    ("reason", reason.as_str()),
                    ("domain", &self.domain),
                ],
            )
        {
            tracing::warn!(
                "reporting to sentry: {}",
                host_util::redact_urls(&format!("{err:#}"))
            );
        }
        outcome
    }
}

/// The environment compose interpolates the template with: env.yml flattened plus the agent's
/// paths and the app version it runs (`app_version`).
pub fn compose_env(ctx: &Context, env: &LoadedEnv) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = env.vars.clone();
    vars.insert("AGENT_DATA_DIR".into(), ctx.data_dir.display().to_string());
    vars.insert(
        "AGENT_VOLATILE_DIR".into(),
        ctx.volatile_dir.display().to_string(),
    );
    vars.insert("AGENT_DUMP_DIR".into(), ctx.dump_dir().display().to_string());
    vars.insert("AGENT_UPSTREAM_PORT".into(), ctx.upstream_port.to_string());
    // The relay, reached from the containers through the host gateway (extra_hosts
    // host.docker.internal:host-gateway in the template), and the app's smtpd's host port.
    vars.insert("AGENT_MAIL_HOST".into(), "host.docker.internal".into());
    vars.insert("AGENT_MAIL_PORT".into(), ctx.mail_port.to_string());
    vars.insert("AGENT_SMTPD_PORT".into(), ctx.smtpd_port.to_string());
    vars.insert("AGENT_MAIL_GATEWAY".into(), ctx.mail_gateway.clone());
    vars.insert("APPLIANCE_DATABASE".into(), env.settings.database.clone());
    set_app_version(&mut vars, &app_version(ctx, env)?);
    Ok(vars)
}

/// The lifecycle fact update-ecs records: the version the app runs since the last update.
pub const APP_VERSION_FACT: &str = "app-version";

/// The app version to run: the one update-ecs installed last (so a reboot after an update runs
/// the updated version), else env.yml's ref (`ecs_git_ref`).
pub fn app_version(ctx: &Context, env: &LoadedEnv) -> anyhow::Result<String> {
    let facts = crate::lifecycle::read(ctx)
        .context("reading which app version runs (update-ecs's record)")?
        .facts;
    Ok(match facts.get(APP_VERSION_FACT).and_then(|v| v.as_str()) {
        Some(v) => v.to_string(),
        None => ecs_git_ref(&env.vars).to_string(),
    })
}

/// Puts `version` where the template takes it: AGENT_ECS_GIT_REF (what ECS is built from) and
/// AGENT_APP_TAG (the same as an image tag, so each version's images have their own tag).
pub fn set_app_version(vars: &mut BTreeMap<String, String>, version: &str) {
    vars.insert("AGENT_ECS_GIT_REF".into(), version.to_string());
    vars.insert("AGENT_APP_TAG".into(), image_tag(version));
}

/// A git ref as a docker tag: characters a tag may not have become `-` (`feature/x` →
/// `feature-x`), at most 128 long, not starting with `.` or `-`.
pub fn image_tag(version: &str) -> String {
    let mut tag: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if tag.starts_with(['.', '-']) {
        tag.replace_range(0..1, "_");
    }
    tag
}

/// What the ECS image is built from: the pinned commit (env.yml requires all 40 hex digits, the
/// only form a git build context can fetch), else the branch.
pub fn ecs_git_ref(vars: &BTreeMap<String, String>) -> &str {
    ["ECS_GIT_COMMITID", "ECS_GIT_BRANCH"]
        .iter()
        .filter_map(|k| vars.get(*k))
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .unwrap_or("master")
}

/// Writes the compose project and parses its appliance definition.
pub fn project(ctx: &Context, env: &LoadedEnv) -> anyhow::Result<(Compose, AppDef)> {
    // env.yml wins over the image's context, which wins over the definition the agent ships.
    let (name, text) = match (&env.settings.compose, &ctx.compose_template) {
        (Some(text), _) => (
            std::path::PathBuf::from("env.yml appliance.compose"),
            text.clone(),
        ),
        (None, Some(p)) => (
            p.clone(),
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        ),
        (None, None) => ("(built-in template)".into(), appdef::DEFAULT_TEMPLATE.to_string()),
    };
    let def = appdef::parse(&name, &text).map_err(|e| ConfigError(format!("{e:#}")))?;
    let dir = ctx.compose_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = docker::compose_file(&dir);
    host_util::write_atomic(&file, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", file.display()))?;
    let docker = Docker {
        host: ctx.docker_host.clone(),
    };
    docker.ensure_running(ctx.docker_unit.as_deref(), Duration::from_secs(120))?;
    // The record lives beside docker's own store on /volatile: a new disk means a new load.
    let record = ctx.volatile_dir.join("docker/ecs-loaded-images");
    let loaded = docker::load_baked_images(&docker, &ctx.images_dir, &record)?;
    if !loaded.is_empty() {
        tracing::info!("loaded baked images: {}", loaded.join(", "));
    }
    let argv = docker::detect_compose(&docker, ctx.compose_command.as_deref())?;
    Ok((
        Compose {
            docker,
            argv,
            project: ctx.project.clone(),
            file,
            env: compose_env(ctx, env)?,
        },
        def,
    ))
}

/// Starts the support services, then the app, waiting for each group to be healthy.
pub fn containers(ctx: &Context, compose: &Compose, def: &AppDef) -> anyhow::Result<String> {
    let timeout = Duration::from_secs(ctx.health_timeout_secs);
    if !def.support.is_empty() {
        compose.up(&def.support)?;
        docker::wait_healthy(&compose.docker, &compose.project, &def.support, timeout)?;
    }
    compose.up(&def.app)?;
    docker::wait_healthy(&compose.docker, &compose.project, &def.app, timeout)?;
    Ok(format!(
        "{} healthy",
        def.support
            .iter()
            .chain(&def.app)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// How long `start` waits for a lifecycle command (a backup, an update) to finish before it
/// gives up: it must not stop or restart what such a command is working on.
pub const START_WAITS_FOR_LOCK: Duration = Duration::from_secs(3 * 3600);

pub fn start(ctx: &Context) -> anyhow::Result<Outcome> {
    let lock = crate::lock::acquire(ctx, "start", START_WAITS_FOR_LOCK)?;
    let tracker = Tracker::new(&ctx.status_file(), STEPS)?;
    let mut run = Run {
        ctx,
        tracker,
        domain: "ECS appliance".into(),
        dsn: None,
    };
    let outcome = match start_steps(&mut run) {
        Ok(o) | Err(o) => o,
    };
    // Free before the final marker: whoever waits for it may run a lifecycle command at once.
    drop(lock);
    match outcome {
        Outcome::Running => println!("ecs-agent: running"),
        Outcome::Standby => println!("ecs-agent: standby"),
        _ => {}
    }
    Ok(outcome)
}

fn start_steps(run: &mut Run) -> Result<Outcome, Outcome> {
    let ctx = run.ctx;
    let found = run.step("env", |_| {
        let found = userdata::run(ctx)?;
        let msg = format!("from {}", found.source);
        Ok((found, msg))
    })?;
    for w in &found.env.warnings {
        tracing::warn!("{}", host_util::redact_urls(w));
    }
    let settings: Settings = found.env.settings.clone();
    run.domain = settings.domain.clone();
    run.dsn = settings.sentry_dsn.clone();
    if let Err(e) = crate::backup::apply_schedule(ctx, &settings.backup_schedule) {
        tracing::warn!("setting the backup schedule: {e:#}");
    }
    // The boot unit opened the appliance's own ports; env.yml's extra ones come now. A failure
    // leaves the boot rules: the app still serves, the extra port stays closed.
    if ctx.firewall {
        match crate::firewall::apply(ctx, &settings.firewall_allow) {
            Ok(msg) => tracing::info!("{msg}"),
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
    println!("ecs-agent: started");
    if settings.standby {
        let _ = run.tracker.set_phase("standby");
        run.page(&Mode::Maintenance {
            state: Public::Standby,
            reason: None,
        });
        return Ok(Outcome::Standby);
    }
    run.step("storage", |_| Ok(((), storage::run(ctx, &settings)?)))?;
    let (compose, def) = run.step("postgres", |_| {
        let (compose, def) = project(ctx, &found.env)?;
        let msg = database::start(ctx, &compose, &def, &found.env.settings.database_password)?;
        Ok(((compose, def), msg))
    })?;
    run.step("database", |_| {
        Ok(((), database::decide(ctx, &compose, &def, &settings)?))
    })?;
    run.step("app-dirs", |_| {
        Ok(((), crate::appdirs::run(&ctx.data_dir, &def, &found.env.vars)?))
    })?;
    run.step("client-ca", |_| {
        if let Err(e) = crate::client_ca::apply_path_unit(ctx, &def) {
            tracing::warn!("pointing ecs-agent-crl.path at the app's CA: {e:#}");
        }
        Ok(((), crate::client_ca::run(ctx, &settings, &def)?))
    })?;
    run.step("tls", |_| Ok(((), tls::run(ctx, &settings)?)))?;
    // Soft: the app serves without mail, so a failure is a warning, not a failed start.
    run.step("mail", |_| {
        if !ctx.mail {
            return Ok(((), "skipped: the context turns mail off".to_string()));
        }
        Ok((
            (),
            match crate::mail::run(ctx, &settings, &compose.docker) {
                Ok(msg) => msg,
                Err(e) => {
                    let detail = host_util::redact_urls(&format!("{e:#}"));
                    tracing::warn!("mail: the relay does not run, the app's mail is not sent: {detail}");
                    format!("WARNING: no mail: {detail}")
                }
            },
        ))
    })?;
    let domain = run.domain.clone();
    run.step("containers", |_| {
        let msg = containers(ctx, &compose, &def)?;
        frontend::apply(ctx, &domain, &Mode::Service).context("switching the frontend to the app")?;
        Ok(((), msg))
    })?;
    // Not a step: the app serves whatever happens to the snapshot's timer.
    match crate::migrate::rearm_expiry(ctx) {
        Ok(Some(msg)) => tracing::info!("{msg}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("setting the PRE_MIGRATE snapshot's removal again: {e:#}"),
    }
    let _ = run.tracker.set_phase("running");
    Ok(Outcome::Running)
}

/// `ecs-agent renew-tls`: the TLS step alone, then the frontend reloaded in its current mode.
pub fn renew_tls(ctx: &Context) -> anyhow::Result<String> {
    let env = crate::envfile::load(&ctx.active_env).map_err(|e| ConfigError(e.to_string()))?;
    let msg = tls::run(ctx, &env.settings)?;
    if let Err(e) = crate::mail::reload(ctx) {
        tracing::warn!("mail: postfix did not take the new certificate: {e:#}");
    }
    frontend::apply(ctx, &env.settings.domain, &current_mode(ctx))?;
    Ok(msg)
}

/// What the frontend serves now: the app once a start has brought it up, else the page with
/// the recorded failure's reason.
fn current_mode(ctx: &Context) -> Mode {
    let status = crate::status::read(&ctx.status_file()).ok();
    match status.as_ref().map(|s| s.phase.as_str()) {
        Some("running") => Mode::Service,
        _ => Mode::Maintenance {
            state: Public::NotRunning,
            reason: status.as_ref().and_then(failed_reason),
        },
    }
}

/// `ecs-agent reload-frontend` (ecs-agent-crl.path, when the app writes a new CRL): the
/// app's CA and CRL checked and given to the frontend again, which is re-rendered in the mode
/// it serves and reloaded.
pub fn reload_frontend(ctx: &Context) -> anyhow::Result<String> {
    let env = crate::envfile::load(&ctx.active_env).map_err(|e| ConfigError(e.to_string()))?;
    // The definition start wrote; none yet (start has not got that far): the placeholder.
    let file = docker::compose_file(&ctx.compose_dir());
    let def = match std::fs::read_to_string(&file) {
        Ok(text) => Some(appdef::parse(&file, &text).map_err(|e| ConfigError(format!("{e:#}")))?),
        Err(_) => None,
    };
    let msg = crate::client_ca::install(ctx, &env.settings, def.as_ref())?;
    frontend::apply(ctx, &env.settings.domain, &current_mode(ctx))?;
    Ok(msg)
}

/// The public reason of a recorded failure: the one stored, else the failed step's class.
fn failed_reason(status: &crate::status::Status) -> Option<Reason> {
    status.reason.or_else(|| {
        status
            .steps
            .iter()
            .find(|s| s.state == State::Failed)
            .map(|s| Reason::of_step(&s.name, false))
    })
}

/// `ecs-agent report-failure` (the unit's OnFailure): records that the agent itself died.
pub fn report_failure(ctx: &Context, unit: &str) -> anyhow::Result<()> {
    let path = ctx.status_file();
    let mut tracker = match crate::status::read(&path) {
        Ok(status) => Tracker {
            path: path.clone(),
            status,
        },
        Err(_) => Tracker::new(&path, STEPS)?,
    };
    let env = crate::envfile::load(&ctx.active_env).ok();
    let domain = env
        .as_ref()
        .map(|e| e.settings.domain.clone())
        .unwrap_or_else(|| "ECS appliance".into());
    let message =
        format!("{unit} stopped before finishing (timeout, crash or kill); see journalctl -u {unit}");
    // A failure the agent recorded itself (it exits non-zero after a failed step, which also
    // triggers OnFailure) keeps its own reason on the page.
    let recorded = Some(&tracker.status)
        .filter(|s| s.phase == "failed")
        .and_then(failed_reason);
    if recorded.is_none() {
        let running = tracker
            .status
            .steps
            .iter()
            .find(|s| s.state == State::Running)
            .map(|s| s.name.clone());
        if let Some(name) = running {
            tracker.set(&name, State::Failed, &message)?;
        }
        tracker.set_failed(Reason::Agent)?;
    }
    frontend::apply(
        ctx,
        &domain,
        &Mode::Maintenance {
            state: Public::Failed,
            reason: Some(recorded.unwrap_or(Reason::Agent)),
        },
    )?;
    // The agent already reported a failure it recorded.
    if recorded.is_none()
        && let Some(dsn) = env.and_then(|e| e.settings.sentry_dsn)
    {
        report::send(&dsn, &ctx.run_dir, "fatal", &message, &[("unit", unit)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_is_built_from_the_commit_else_the_branch() {
        let vars = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let commit = "b09f0d57572e0e320e51c8acb0229250892ecfbb";
        assert_eq!(
            ecs_git_ref(&vars(&[
                ("ECS_GIT_BRANCH", "stable"),
                ("ECS_GIT_COMMITID", commit)
            ])),
            commit
        );
        assert_eq!(ecs_git_ref(&vars(&[("ECS_GIT_BRANCH", "stable")])), "stable");
        assert_eq!(ecs_git_ref(&vars(&[("ECS_GIT_COMMITID", "")])), "master");
    }

    #[test]
    fn versions_become_image_tags() {
        assert_eq!(image_tag("v4"), "v4");
        assert_eq!(image_tag("feature/new-ui"), "feature-new-ui");
        assert_eq!(image_tag("-x"), "_x");
        assert_eq!(image_tag(&"a".repeat(200)).len(), 128);
        let mut vars = BTreeMap::new();
        set_app_version(&mut vars, "release/2.1");
        assert_eq!(vars["AGENT_ECS_GIT_REF"], "release/2.1");
        assert_eq!(vars["AGENT_APP_TAG"], "release-2.1");
    }
}
