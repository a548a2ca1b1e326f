//! Progress of the build, one stage at a time: a spinner per stage on a terminal, plain log
//! lines otherwise, and with `--json` one JSON event per line (`event: "stage"`, `stage`,
//! `status` start|done, `seconds`, plus stage facts such as `cache: "hit"`) for CI and tests.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spinners on a terminal, a log line per finished stage.
    Bars,
    /// Log lines (plain or JSON, as the logger was set up).
    Log,
}

impl Mode {
    /// Spinners only when stderr is a terminal and JSON events were not asked for.
    pub fn detect(json: bool) -> Mode {
        if !json && std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Log
        }
    }
}

/// One running stage; `done` reports it, dropping it unfinished reports nothing more.
pub struct Stage {
    name: &'static str,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Stage {
    pub fn start(mode: Mode, name: &'static str, what: &str) -> Stage {
        let bar = match mode {
            Mode::Bars => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>8} {msg} [{elapsed}]")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name);
                bar.set_message(what.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Mode::Log => {
                tracing::info!(event = "stage", stage = name, status = "start", "{name}: {what}");
                None
            }
        };
        Stage {
            name,
            started: Instant::now(),
            bar,
        }
    }

    /// Updates the running stage's line (spinner) or logs a step (log mode).
    pub fn step(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(what.to_string()),
            None => tracing::info!(event = "step", stage = self.name, "{}: {what}", self.name),
        }
    }

    /// Finishes the stage; `cache` is "hit"/"miss" for cached stages.
    pub fn done(self, summary: &str, cache: Option<&str>) {
        let seconds = (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let name = self.name;
        match cache {
            Some(cache) => tracing::info!(
                event = "stage",
                stage = name,
                status = "done",
                seconds,
                cache,
                "{name}: {summary} ({seconds} s, cache {cache})"
            ),
            None => tracing::info!(
                event = "stage",
                stage = name,
                status = "done",
                seconds,
                "{name}: {summary} ({seconds} s)"
            ),
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
