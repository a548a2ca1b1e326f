//! Log set-up: plain lines on stderr (no timestamps: journald and CI add their own), or
//! JSON lines with `--json` so CI can follow the pipeline. `RUST_LOG` overrides the level.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether `--json` was given: progress reporting then emits events, never bars.
pub fn json_enabled() -> bool {
    JSON.load(Ordering::Relaxed)
}

pub fn init(json: bool) {
    JSON.store(json, Ordering::Relaxed);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: CI logs and journald get plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time();
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_target(false).init();
    }
}
