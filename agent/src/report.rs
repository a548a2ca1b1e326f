//! Failure reports to Sentry: one JSON event POSTed to the DSN's store endpoint with curl,
//! no SDK. The event carries the failed step and its reason, never env.yml values.

use anyhow::{Context as _, bail};
use host_util::CommandExt;

use crate::tools::CURL;

/// The parts of a DSN `scheme://public_key[:secret]@host[:port][/path]/project_id`.
#[derive(Debug, PartialEq, Eq)]
pub struct Dsn {
    pub store_url: String,
    pub public_key: String,
}

pub fn parse_dsn(dsn: &str) -> anyhow::Result<Dsn> {
    let bad = || {
        format!(
            "appliance.sentry.dsn: expected scheme://key@host/project, found {:?}",
            host_util::redact_url(dsn)
        )
    };
    let (scheme, rest) = dsn.split_once("://").with_context(bad)?;
    let (key, hostpath) = rest.split_once('@').with_context(bad)?;
    let public_key = key.split(':').next().unwrap_or_default().to_string();
    let (hostpath, project) = hostpath
        .trim_end_matches('/')
        .rsplit_once('/')
        .with_context(bad)?;
    if public_key.is_empty() || project.is_empty() || !project.chars().all(|c| c.is_ascii_digit()) {
        bail!(bad());
    }
    Ok(Dsn {
        store_url: format!("{scheme}://{hostpath}/api/{project}/store/"),
        public_key,
    })
}

fn event_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().replace('-', ""))
        .unwrap_or_else(|_| format!("{:032x}", (crate::status::now() * 1e6) as u128))
}

/// Sends one event; `level` is `fatal`, `error` or `warning`.
pub fn send(
    dsn: &str,
    run_dir: &std::path::Path,
    level: &str,
    message: &str,
    tags: &[(&str, &str)],
) -> anyhow::Result<()> {
    let dsn = parse_dsn(dsn)?;
    let tags: serde_json::Map<String, serde_json::Value> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let event = serde_json::json!({
        "event_id": event_id(),
        "timestamp": crate::status::now(),
        "level": level,
        "logger": "ecs-agent",
        "platform": "other",
        "message": message,
        "tags": tags,
        "release": format!("ecs-agent@{}", env!("CARGO_PKG_VERSION")),
    });
    let body = run_dir.join("sentry-event.json");
    host_util::write_atomic(&body, &serde_json::to_vec(&event)?, 0o600)
        .context("writing the sentry event")?;
    let res = CURL
        .command()?
        .args([
            "-sS",
            "-f",
            "--max-time",
            "15",
            "-H",
            "Content-Type: application/json",
            "-H",
        ])
        .arg(format!(
            "X-Sentry-Auth: Sentry sentry_version=7, sentry_client=ecs-agent/{}, sentry_key={}",
            env!("CARGO_PKG_VERSION"),
            dsn.public_key
        ))
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(&dsn.store_url)
        .run_checked();
    let _ = std::fs::remove_file(&body);
    res.with_context(|| format!("sending the event to {}", dsn.store_url))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_to_store_url() {
        let d = parse_dsn("https://abc123@sentry.example.org/42").unwrap();
        assert_eq!(d.store_url, "https://sentry.example.org/api/42/store/");
        assert_eq!(d.public_key, "abc123");
        let d = parse_dsn("http://k:secret@127.0.0.1:9000/sub/7").unwrap();
        assert_eq!(d.store_url, "http://127.0.0.1:9000/sub/api/7/store/");
        assert!(
            parse_dsn("sentry.example.org")
                .unwrap_err()
                .to_string()
                .contains("appliance.sentry.dsn")
        );
        let e = parse_dsn("https://k:hunter2@sentry.example.org/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("k:***@sentry") && !e.contains("hunter2"), "{e}");
    }
}
