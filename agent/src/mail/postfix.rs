//! The relay's postfix instance: main.cf and master.cf written by the agent under
//! /run/ecs/mail/postfix, started with `postfix -c DIR start` (reloaded when it runs).
//! Debian's own postfix.service is masked in the image (see builder's overlay): two masters
//! would fight over port 25 and the queue.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use host_util::{CommandExt, Tool};

use crate::context::Context;

pub const POSTFIX: Tool = Tool::new("postfix", "postfix");
pub const CHOWN: Tool = Tool::new("chown", "coreutils");

pub fn config_dir(ctx: &Context) -> PathBuf {
    ctx.mail_dir().join("postfix")
}

/// postfix's own state (TLS session cache, verify cache); owned by its user.
fn data_dir(ctx: &Context) -> PathBuf {
    ctx.mail_dir().join("postfix-data")
}

/// Where postfix logs: the journal through syslog on the appliance; a file next to the config
/// where nothing takes syslog (no systemd: host tests).
pub fn log_file(ctx: &Context) -> Option<PathBuf> {
    ctx.systemd_run_dir
        .is_none()
        .then(|| ctx.mail_dir().join("postfix.log"))
}

/// What the agent knows when it writes the configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub domain: String,
    pub relay_host: Option<String>,
    /// The docker networks the app's containers send from (CIDR).
    pub networks: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub milter_port: u16,
}

pub fn main_cf(ctx: &Context, c: &Config) -> String {
    let mut mynetworks = vec!["127.0.0.0/8".to_string()];
    mynetworks.extend(c.networks.iter().cloned());
    let log = match log_file(ctx) {
        Some(f) => format!(
            "maillog_file = {}\nmaillog_file_prefixes = {}\n",
            f.display(),
            ctx.mail_dir().display()
        ),
        None => String::new(),
    };
    format!(
        "# Written by ecs-agent at every start (step mail); edits are lost.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = {domain}
mydomain = {domain}
# Mail to root and other local users stays on the appliance (mydestination); the appliance's
# domain belongs to the app, whose smtpd gets it (relay_domains, transport_maps).
myorigin = localhost
mydestination = localhost, localhost.localdomain
relay_domains = {domain}
transport_maps = inline:{{ {domain}=smtp:[127.0.0.1]:{smtpd} }}
relayhost = {relayhost}
inet_interfaces = all
inet_protocols = ipv4
mynetworks = {mynetworks}
# Every listener says which clients may relay (master.cf); this is the strict default.
smtpd_relay_restrictions = reject_unauth_destination
alias_maps = inline:{{ postmaster=root, mailer-daemon=root, abuse=root }}
alias_database =
mail_spool_directory = {mailbox}/
biff = no
smtpd_banner = $myhostname ESMTP
message_size_limit = 52428800
mailbox_size_limit = 0
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtp_tls_security_level = may
smtp_tls_CApath = /etc/ssl/certs
smtp_tls_loglevel = 1
{log}",
        queue = ctx.mail_queue_dir.display(),
        data = data_dir(ctx).display(),
        domain = c.domain,
        smtpd = ctx.smtpd_port,
        relayhost = c.relay_host.as_deref().unwrap_or(""),
        mynetworks = mynetworks.join(" "),
        mailbox = ctx.mailbox_dir().display(),
        cert = c.cert.display(),
        key = c.key.display(),
    )
}

/// A listener address: `PORT` on every interface, else `ADDRESS:PORT`.
fn listen(address: &str, port: u16) -> String {
    if address == "0.0.0.0" || address.is_empty() {
        port.to_string()
    } else {
        format!("{address}:{port}")
    }
}

pub fn master_cf(ctx: &Context, c: &Config) -> String {
    let smtp = listen(&ctx.listen_address, ctx.smtp_port);
    let smtps = listen(&ctx.listen_address, ctx.smtps_port);
    format!(
        "# Written by ecs-agent at every start (step mail); edits are lost. Nothing is chrooted.
# service type private unpriv chroot wakeup maxproc command
# Incoming mail for the appliance's domain (relay_domains), STARTTLS offered.
{smtp} inet n - n - - smtpd
  -o syslog_name=postfix/incoming
  -o smtpd_relay_restrictions=reject_unauth_destination
# The same over implicit TLS.
{smtps} inet n - n - - smtpd
  -o syslog_name=postfix/incoming-tls
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
  -o smtpd_relay_restrictions=reject_unauth_destination
# The app's outgoing mail: on every address (the containers reach the host through their
# network's gateway or host-gateway), but only clients in mynetworks (loopback and docker's
# networks) get past the greeting; the firewall closes the port from outside as well.
{relay} inet n - n - - smtpd
  -o syslog_name=postfix/relay
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_milters=inet:127.0.0.1:{milter}
  -o milter_default_action=tempfail
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
",
        relay = ctx.mail_port,
        milter = c.milter_port,
    )
}

/// `postfix -c DIR <verb>`.
pub fn postfix(ctx: &Context, verb: &str) -> anyhow::Result<()> {
    POSTFIX
        .command()?
        .arg("-c")
        .arg(config_dir(ctx))
        .arg(verb)
        .run_checked()
        .with_context(|| format!("postfix {verb}{}", log_hint(ctx)))?;
    Ok(())
}

fn log_hint(ctx: &Context) -> String {
    match log_file(ctx) {
        Some(f) => format!(" (its log: {})", f.display()),
        None => " (its log: journalctl -t postfix/postfix-script -t postfix/master)".into(),
    }
}

pub fn running(ctx: &Context) -> bool {
    POSTFIX.command().is_ok_and(|mut c| {
        c.arg("-c")
            .arg(config_dir(ctx))
            .arg("status")
            .run_checked()
            .is_ok()
    })
}

fn chown_postfix(path: &Path) -> anyhow::Result<()> {
    CHOWN
        .command()?
        .arg("postfix")
        .arg(path)
        .run_checked()
        .with_context(|| format!("giving {} to user postfix", path.display()))?;
    Ok(())
}

/// Writes the configuration, checks it, and starts postfix or makes the running one read it.
pub fn start(ctx: &Context, c: &Config) -> anyhow::Result<()> {
    let dir = config_dir(ctx);
    for d in [&dir, &data_dir(ctx), &ctx.mail_queue_dir, &ctx.mailbox_dir()] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    chown_postfix(&data_dir(ctx))?;
    for (name, text) in [("main.cf", main_cf(ctx, c)), ("master.cf", master_cf(ctx, c))] {
        let p = dir.join(name);
        host_util::write_atomic(&p, text.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    // `check` also makes the queue's directories with their owners and modes.
    postfix(ctx, "check")?;
    if running(ctx) {
        postfix(ctx, "reload")?;
    } else {
        postfix(ctx, "start")?;
    }
    if !running(ctx) {
        bail!("postfix did not stay up after start{}", log_hint(ctx));
    }
    Ok(())
}

/// Stops the relay (tests; a later start starts it again).
pub fn stop(ctx: &Context) -> anyhow::Result<()> {
    if running(ctx) {
        postfix(ctx, "stop")?;
    }
    Ok(())
}
