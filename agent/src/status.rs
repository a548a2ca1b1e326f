//! The run's state file (/run/ecs/status.json): every step with its state, message and times.
//!
//! Written atomically after every change, so `ecs-agent status`, the benchmark and an operator
//! always read a whole file. It holds the detail of a failure (the error chain, with URLs
//! redacted), so it is root's alone (0600); the public page shows only its `Reason`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Running,
    Ok,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepStatus {
    pub name: String,
    pub state: State,
    #[serde(default)]
    pub message: String,
    /// Seconds since the epoch.
    pub started: Option<f64>,
    pub finished: Option<f64>,
}

/// The short, public class of why the appliance is not serving: what the maintenance page may
/// say. Derived from the step, never from error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Configuration,
    Storage,
    Database,
    Certificate,
    Containers,
    Update,
    /// The agent itself stopped (crash, timeout, kill).
    Agent,
}

impl Reason {
    /// The class of a failure in step `step`; `bad_config` when the error is a config error.
    pub fn of_step(step: &str, bad_config: bool) -> Reason {
        if bad_config {
            return Reason::Configuration;
        }
        match step {
            "env" => Reason::Configuration,
            "storage" | "app-dirs" => Reason::Storage,
            "postgres" | "database" => Reason::Database,
            "tls" | "client-ca" => Reason::Certificate,
            "containers" => Reason::Containers,
            "update" => Reason::Update,
            _ => Reason::Agent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Configuration => "configuration",
            Reason::Storage => "storage",
            Reason::Database => "database",
            Reason::Certificate => "certificate",
            Reason::Containers => "containers",
            Reason::Update => "update",
            Reason::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// `starting`, `running` (all steps ok) or `failed`.
    pub phase: String,
    /// Why it failed, as the public page says it (set with phase `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub started: f64,
    pub steps: Vec<StepStatus>,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The status of one run, mirrored to its file on every change.
pub struct Tracker {
    pub(crate) path: PathBuf,
    pub status: Status,
}

impl Tracker {
    pub fn new(path: &Path, steps: &[&str]) -> anyhow::Result<Tracker> {
        let t = Tracker {
            path: path.to_path_buf(),
            status: Status {
                phase: "starting".into(),
                reason: None,
                started: now(),
                steps: steps
                    .iter()
                    .map(|s| StepStatus {
                        name: s.to_string(),
                        state: State::Pending,
                        message: String::new(),
                        started: None,
                        finished: None,
                    })
                    .collect(),
            },
        };
        t.save()?;
        Ok(t)
    }

    fn step(&mut self, name: &str) -> &mut StepStatus {
        if let Some(i) = self.status.steps.iter().position(|s| s.name == name) {
            return &mut self.status.steps[i];
        }
        self.status.steps.push(StepStatus {
            name: name.into(),
            state: State::Pending,
            message: String::new(),
            started: None,
            finished: None,
        });
        self.status.steps.last_mut().expect("just pushed")
    }

    pub fn set(&mut self, name: &str, state: State, message: &str) -> anyhow::Result<()> {
        let step = self.step(name);
        match state {
            State::Running => step.started = Some(now()),
            State::Ok | State::Failed => step.finished = Some(now()),
            State::Pending => {}
        }
        step.state = state;
        // Defence in depth: whatever a step reports, a URL's password is not stored.
        step.message = host_util::redact_urls(message);
        self.save()
    }

    pub fn set_phase(&mut self, phase: &str) -> anyhow::Result<()> {
        self.status.phase = phase.into();
        self.save()
    }

    /// Phase `failed` with its public reason.
    pub fn set_failed(&mut self, reason: Reason) -> anyhow::Result<()> {
        self.status.phase = "failed".into();
        self.status.reason = Some(reason);
        self.save()
    }

    pub fn save(&self) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            private_dir(dir)?;
        }
        let json = serde_json::to_vec_pretty(&self.status)?;
        host_util::write_atomic(&self.path, &json, 0o600)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Creates `dir` if needed and takes write access from group and others: the status file and
/// the frontend's config live there. It stays searchable, since nginx's workers read the page below it.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7755))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
    }
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<Status> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One line per step, as `ecs-agent status` prints it.
pub fn render(status: &Status) -> String {
    let mut out = format!("phase: {}\n", status.phase);
    for s in &status.steps {
        let took = match (s.started, s.finished) {
            (Some(a), Some(b)) => format!(" ({:.1}s)", b - a),
            _ => String::new(),
        };
        let state = format!("{:?}", s.state).to_lowercase();
        out.push_str(&format!("{:<10} {:<8}{took} {}\n", s.name, state, s.message));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_writes_every_change_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/status.json");
        let mut t = Tracker::new(&path, &["env", "storage"]).unwrap();
        t.set("env", State::Running, "").unwrap();
        t.set("env", State::Ok, "from seed /dev/sr0").unwrap();
        t.set("storage", State::Failed, "disk /dev/vdb carries xfs")
            .unwrap();
        let s = read(&path).unwrap();
        assert_eq!(s.steps[0].state, State::Ok);
        assert!(s.steps[0].started.unwrap() <= s.steps[0].finished.unwrap());
        assert_eq!(s.steps[1].state, State::Failed);
        let text = render(&s);
        assert!(
            text.contains("storage    failed") && text.contains("carries xfs"),
            "{text}"
        );
    }

    #[test]
    fn status_file_is_private_and_its_directory_not_writable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let path = run.join("status.json");
        let mut t = Tracker::new(&path, &["env"]).unwrap();
        t.set_failed(Reason::of_step("env", false)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&run), 0o1755);
        assert_eq!(read(&path).unwrap().reason, Some(Reason::Configuration));
    }

    #[test]
    fn reasons_come_from_the_step() {
        assert_eq!(Reason::of_step("postgres", false), Reason::Database);
        assert_eq!(Reason::of_step("postgres", true), Reason::Configuration);
        assert_eq!(Reason::of_step("tls", false).as_str(), "certificate");
        assert_eq!(Reason::of_step("app-dirs", false), Reason::Storage);
    }
}
