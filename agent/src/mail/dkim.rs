//! opendkim as a milter of the relay's outgoing listener: it signs every message whose From
//! is the appliance's domain with appliance.dkim.key, selector `default`, rsa-sha256,
//! relaxed/relaxed (as the original). It listens on 127.0.0.1 at a port picked free at each
//! start: a unix socket would need postfix's user to reach into the agent's 0700 run dir.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use host_util::{CommandExt, Tool};

use crate::context::Context;

pub const OPENDKIM: Tool = Tool::new("opendkim", "opendkim");
pub const KILL: Tool = Tool::new("kill", "procps");

fn dir(ctx: &Context) -> PathBuf {
    ctx.mail_dir().join("opendkim")
}

fn pid_file(ctx: &Context) -> PathBuf {
    dir(ctx).join("opendkim.pid")
}

fn pid(ctx: &Context) -> Option<i32> {
    std::fs::read_to_string(pid_file(ctx))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|p: &i32| *p > 0)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "opendkim")
}

pub fn running(ctx: &Context) -> bool {
    pid(ctx).is_some_and(alive)
}

/// Stops the milter this mail directory's pid file names, waiting until it is gone.
pub fn stop(ctx: &Context) -> anyhow::Result<()> {
    let Some(pid) = pid(ctx).filter(|p| alive(*p)) else {
        return Ok(());
    };
    KILL.command()?
        .args(["-TERM", &pid.to_string()])
        .run_checked()
        .with_context(|| format!("stopping opendkim (pid {pid})"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("opendkim (pid {pid}) did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port for the DKIM milter")?
        .local_addr()?
        .port())
}

/// The configuration file's text.
pub fn config(ctx: &Context, domain: &str, port: u16) -> String {
    let d = dir(ctx);
    format!(
        "# Written by ecs-agent at every start (step mail); edits are lost.\n\
         Mode s\n\
         Domain {domain}\n\
         Selector default\n\
         KeyFile {key}\n\
         Canonicalization relaxed/relaxed\n\
         SignatureAlgorithm rsa-sha256\n\
         OversignHeaders From\n\
         # Only the relay's listener for the app's containers uses this milter: what it passes\n\
         # on is signed, whichever container sent it.\n\
         InternalHosts 0.0.0.0/0\n\
         Socket inet:{port}@127.0.0.1\n\
         PidFile {pid}\n\
         UMask 077\n\
         # The agent writes the key 0600 into a 0700 directory of its own; opendkim's own check\n\
         # also refuses any world-writable ancestor (a test's /tmp), which says nothing here.\n\
         RequireSafeKeys no\n\
         Syslog yes\n\
         Background yes\n",
        key = d.join("dkim.key").display(),
        pid = pid_file(ctx).display(),
    )
}

/// Writes the key (0600) and config and (re)starts the milter; returns its port.
pub fn start(ctx: &Context, domain: &str, key_pem: &str) -> anyhow::Result<u16> {
    let d = dir(ctx);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("making {} root's alone", d.display()))?;
    let key = d.join("dkim.key");
    let mut pem = key_pem.trim_end().to_string();
    pem.push('\n');
    host_util::write_atomic(&key, pem.as_bytes(), 0o600)
        .with_context(|| format!("writing the DKIM key {}", key.display()))?;
    stop(ctx)?;
    let port = free_port()?;
    let conf = d.join("opendkim.conf");
    host_util::write_atomic(&conf, config(ctx, domain, port).as_bytes(), 0o644)
        .with_context(|| format!("writing {}", conf.display()))?;
    OPENDKIM
        .command()?
        .arg("-x")
        .arg(&conf)
        .run_checked()
        .context("starting opendkim (the DKIM signing milter)")?;
    // It forks; the milter answers once it has read the key and bound the port.
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("opendkim did not listen on 127.0.0.1:{port} within 15 s (see its syslog lines)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(port)
}
