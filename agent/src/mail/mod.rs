//! Step `mail`: the appliance's own mail system, as the original had it (postfix with the
//! opendkim milter), run by the agent with its config under /run/ecs/mail:
//!
//! - outgoing: the app's containers hand mail to the relay (`mail-port`, reached as
//!   host.docker.internal); it is DKIM-signed (appliance.dkim.key, selector `default`) and
//!   delivered by MX or through `appliance.mail.relay_host`, with opportunistic TLS;
//! - incoming: `smtp-port` (STARTTLS) and `smtps-port` (implicit TLS) take mail for the
//!   appliance's domain only and pass it to the app's smtpd (127.0.0.1:`smtpd-port`);
//! - mail to root (unattended-upgrades) is delivered to a local Maildir (`mailbox_dir`);
//!   `ecs-agent mail-to-sentry` forwards it to Sentry when a DSN is set.
//!
//! The step is soft: without mail the app still serves, so a failure is a warning in the
//! step's message, not a failed start.

pub mod dkim;
pub mod postfix;
pub mod sentry;

use std::path::PathBuf;

use anyhow::Context as _;
use host_util::CommandExt;

use crate::context::Context;
use crate::docker::Docker;
use crate::envfile::Settings;
use crate::frontend::cert_paths;

/// The certificate the mail listeners present: the appliance's (step tls), else a throwaway
/// self-signed pair in the mail directory, made once.
fn certificate(ctx: &Context, domain: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = cert_paths(ctx);
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let dir = ctx.mail_dir();
    let (cert, key) = (dir.join("throwaway.cert.pem"), dir.join("throwaway.key.pem"));
    if !(cert.is_file() && key.is_file()) {
        let (key_pem, cert_pem) = crate::tls::self_signed_pem(domain)?;
        host_util::write_atomic(&key, key_pem.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", key.display()))?;
        host_util::write_atomic(&cert, cert_pem.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", cert.display()))?;
    }
    Ok((cert, key))
}

/// The subnets of the engine's bridge networks (the app's compose network among them): the
/// clients the relay takes mail from, besides loopback.
fn docker_subnets(docker: &Docker) -> anyhow::Result<Vec<String>> {
    let ids = docker
        .command()?
        .args(["network", "ls", "-q", "--filter", "driver=bridge"])
        .run_stdout()
        .context("listing docker's networks")?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let out = docker
        .command()?
        .args([
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ])
        .args(&ids)
        .run_stdout()
        .context("reading the subnets of docker's networks")?;
    let mut nets: Vec<String> = out
        .split_whitespace()
        // IPv4 only, as the relay listens (inet_protocols = ipv4).
        .filter(|n| !n.contains(':'))
        .map(str::to_string)
        .collect();
    nets.sort();
    nets.dedup();
    Ok(nets)
}

/// The step: writes the DKIM key and both configs, then starts (or reloads) opendkim and
/// postfix. Returns the step's message.
pub fn run(ctx: &Context, settings: &Settings, docker: &Docker) -> anyhow::Result<String> {
    let dir = ctx.mail_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (cert, key) = certificate(ctx, &settings.domain)?;
    let networks = docker_subnets(docker)?;
    let milter_port = dkim::start(ctx, &settings.domain, &settings.dkim_key)?;
    let conf = postfix::Config {
        domain: settings.domain.clone(),
        relay_host: settings.mail_relay_host.clone(),
        networks,
        cert,
        key,
        milter_port,
    };
    postfix::start(ctx, &conf)?;
    Ok(format!(
        "relay on port {} (DKIM selector default, {}), incoming on {} and {} to the app's smtpd on {}",
        ctx.mail_port,
        match &conf.relay_host {
            Some(h) => format!("via {h}"),
            None => "direct delivery".into(),
        },
        ctx.smtp_port,
        ctx.smtps_port,
        ctx.smtpd_port
    ))
}

/// What `ecs-agent status` says about the relay; None when the agent runs no mail.
pub fn state(ctx: &Context) -> Option<String> {
    if !ctx.mail || !postfix::config_dir(ctx).join("main.cf").is_file() {
        return None;
    }
    let relay = if postfix::running(ctx) {
        "running".to_string()
    } else {
        "DOWN: postfix is not running; the app's mail is not sent (`ecs-agent start` starts it)".to_string()
    };
    let dkim = if dkim::running(ctx) {
        "running".to_string()
    } else {
        "DOWN: opendkim is not running; outgoing mail waits in the queue".to_string()
    };
    Some(format!("mail relay: {relay}\nmail dkim:  {dkim}\n"))
}

/// After a certificate change (renew-tls): postfix reads it again. Nothing if it runs no mail.
pub fn reload(ctx: &Context) -> anyhow::Result<()> {
    if ctx.mail && postfix::running(ctx) {
        postfix::postfix(ctx, "reload")?;
    }
    Ok(())
}
