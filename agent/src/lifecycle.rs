//! The frame every lifecycle command runs in (`backup`, `recover`, `database-migrate`,
//! `update-ecs`, ...), whether started at the console, by a timer or by a test:
//!
//! - the lifecycle lock (`lock`), so no two of them (nor one and `start`) overlap;
//! - env.yml as the last start validated it (/run/active-env.yml);
//! - a record of each command's last run (start, end, result, message and its own details)
//!   in /data/etc/ecs-agent/lifecycle.json, beside the data it describes: it survives reboots,
//!   and a snapshot rolled back takes the records of what it undid with it;
//! - on failure: the error chain on the console and in the journal (URLs' passwords hidden),
//!   in the record, and reported to Sentry when env.yml has a DSN.
//!
//! A command ends in one of three ways: `ok`, `refused` (it found a reason not to act and
//! changed nothing: return a `Refused` error), or `failed`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::Context;
use crate::envfile::LoadedEnv;
use crate::lock::{self, Lock};
use crate::userdata::ConfigError;

/// The command decided not to act, and changed nothing; the text says why and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Result {
    Running,
    Ok,
    Refused,
    Failed,
}

/// One command's last run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the epoch.
    pub started: f64,
    #[serde(default)]
    pub finished: Option<f64>,
    pub result: Result,
    #[serde(default)]
    pub message: String,
    /// What the command itself records (sizes, statistics, versions, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
}

/// /data/etc/ecs-agent/lifecycle.json.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The last run of each command, by command name.
    #[serde(default)]
    pub last: BTreeMap<String, Record>,
    /// Facts that outlive one run (e.g. the version the app runs), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, Value>,
}

pub fn path(ctx: &Context) -> PathBuf {
    ctx.data_dir.join("etc/ecs-agent/lifecycle.json")
}

/// The records; none yet is an empty set.
pub fn read(ctx: &Context) -> anyhow::Result<Lifecycle> {
    let p = path(ctx);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lifecycle::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Reads, changes and writes back the records (atomically, 0600: the messages may name paths
/// and hosts). Callers hold the lifecycle lock.
pub fn update(ctx: &Context, change: impl FnOnce(&mut Lifecycle)) -> anyhow::Result<()> {
    let mut l = read(ctx)?;
    change(&mut l);
    let p = path(ctx);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    host_util::write_atomic(&p, &serde_json::to_vec_pretty(&l)?, 0o600)
        .with_context(|| format!("writing {}", p.display()))
}

/// What a command gets to work with.
pub struct Job<'a> {
    pub ctx: &'a Context,
    pub env: LoadedEnv,
    /// The command's name (`backup`, ...): the key of its record.
    pub name: &'static str,
    /// Filled by the command; stored in its record whatever the result.
    pub details: BTreeMap<String, Value>,
    _lock: Lock,
}

impl Job<'_> {
    pub fn detail(&mut self, key: &str, value: impl Into<Value>) {
        self.details.insert(key.into(), value.into());
    }

    /// Saves the details gathered so far, e.g. before a long step, so `ecs-agent status` shows them.
    pub fn checkpoint(&self) {
        let (name, details) = (self.name, self.details.clone());
        if let Err(e) = update(self.ctx, |l| {
            if let Some(r) = l.last.get_mut(name) {
                r.details = details;
            }
        }) {
            tracing::warn!("recording {name}: {e:#}");
        }
    }

    /// Refuses unless the last `ecs-agent start` reached `running`.
    pub fn require_running(&self) -> anyhow::Result<()> {
        let phase = crate::status::read(&self.ctx.status_file())
            .map(|s| s.phase)
            .unwrap_or_else(|_| "not started".into());
        if phase != "running" {
            return Err(Refused(format!(
                "the appliance is not running (phase {phase}; see `ecs-agent status`)"
            ))
            .into());
        }
        Ok(())
    }
}

/// Runs `name` in the frame, waiting up to `wait` for the lifecycle lock; returns the process
/// exit code (0 ok, 1 failed or refused, 2 bad config).
pub fn run(
    ctx: &Context,
    name: &'static str,
    wait: Duration,
    body: impl FnOnce(&mut Job) -> anyhow::Result<String>,
) -> i32 {
    let lock = match lock::acquire(ctx, name, wait) {
        Ok(l) => l,
        Err(e) => {
            let text = host_util::redact_urls(&format!("{e:#}"));
            println!("ecs-agent: {name} refused: {text}");
            tracing::error!("{name} refused: {text}");
            // The holder's record is not ours to touch; the refusal goes to Sentry if we can tell where.
            if let Ok(env) = crate::envfile::load(&ctx.active_env) {
                report(ctx, &env, name, "refused", &text);
            }
            return 1;
        }
    };
    let env = match crate::envfile::load(&ctx.active_env) {
        Ok(env) => env,
        Err(e) => {
            let text = host_util::redact_urls(&format!(
                "{e} (the env.yml the last `ecs-agent start` accepted; is the appliance started?)"
            ));
            println!("ecs-agent: {name} failed: {text}");
            tracing::error!("{name} failed: {text}");
            return 2;
        }
    };
    let mut job = Job {
        ctx,
        env,
        name,
        details: BTreeMap::new(),
        _lock: lock,
    };
    let started = crate::status::now();
    let record = |result: Result, message: &str, details: &BTreeMap<String, Value>| {
        let r = Record {
            started,
            finished: (result != Result::Running).then(crate::status::now),
            result,
            message: host_util::redact_urls(message),
            details: details.clone(),
        };
        if let Err(e) = update(ctx, |l| {
            l.last.insert(name.to_string(), r);
        }) {
            tracing::warn!("recording {name}: {e:#}");
        }
    };
    record(Result::Running, "", &BTreeMap::new());
    tracing::info!("{name}: starting");
    match body(&mut job) {
        Ok(message) => {
            let message = host_util::redact_urls(&message);
            println!("ecs-agent: {name} ok: {message}");
            tracing::info!("{name}: ok: {message}");
            record(Result::Ok, &message, &job.details);
            0
        }
        Err(e) => {
            let refused = e.chain().any(|c| c.is::<Refused>());
            let config = e.chain().any(|c| c.is::<ConfigError>());
            let (result, word) = if refused {
                (Result::Refused, "refused")
            } else {
                (Result::Failed, "failed")
            };
            let text = host_util::redact_urls(&format!("{e:#}"));
            println!("ecs-agent: {name} {word}: {text}");
            tracing::error!("{name} {word}: {text}");
            record(result, &text, &job.details);
            report(ctx, &job.env, name, word, &text);
            if config { 2 } else { 1 }
        }
    }
}

fn report(ctx: &Context, env: &LoadedEnv, name: &str, word: &str, text: &str) {
    if let Some(dsn) = &env.settings.sentry_dsn
        && let Err(err) = crate::report::send(
            dsn,
            &ctx.run_dir,
            "error",
            &format!("{name} {word}: {text}"),
            &[("command", name), ("domain", &env.settings.domain)],
        )
    {
        tracing::warn!(
            "reporting to sentry: {}",
            host_util::redact_urls(&format!("{err:#}"))
        );
    }
}

/// The records as `ecs-agent status` prints them, one line per command.
pub fn render(l: &Lifecycle) -> String {
    let mut out = String::new();
    for (name, r) in &l.last {
        let took = r
            .finished
            .map(|f| format!(" ({:.1}s)", f - r.started))
            .unwrap_or_default();
        let result = serde_json::to_value(r.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!("{name:<16} {result:<8}{took} {}\n", r.message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reread_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context {
            data_dir: dir.path().join("data"),
            ..Context::default()
        };
        assert!(read(&ctx).unwrap().last.is_empty());
        update(&ctx, |l| {
            l.last.insert(
                "backup".into(),
                Record {
                    started: 1.0,
                    finished: Some(3.5),
                    result: Result::Ok,
                    message: "12 files".into(),
                    details: [("size".to_string(), Value::from(42))].into(),
                },
            );
            l.facts.insert("app-version".into(), "v4".into());
        })
        .unwrap();
        let l = read(&ctx).unwrap();
        assert_eq!(l.last["backup"].details["size"], 42);
        assert_eq!(l.facts["app-version"], "v4");
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path(&ctx)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let text = render(&l);
        assert!(
            text.starts_with("backup           ok       (2.5s) 12 files"),
            "{text}"
        );
    }
}
