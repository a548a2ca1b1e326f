//! The web frontend: an nginx instance the agent configures, serving the maintenance page
//! (HTTP 503, saying what is going on) while starting and after a failure, the ACME http-01
//! webroot, and, once the app is up, TLS in front of it.
//!
//! nginx rather than a server in the agent: it already is the production TLS terminator
//! (client certificates, CRLs, HTTP/2, as the original appliance used it), so the page and the
//! proxy come from one process that keeps serving when the agent has exited after a failure.
//! Every change is `nginx -t`-checked, reloaded, and confirmed by a generation marker.
//!
//! The page is public (anyone reaching ports 80/443): it is built from a `Public` state and a
//! `Reason` class only, never from error text, so no command line, path or value reaches it.
//! The detail is in the journal, /run/ecs/status.json and Sentry.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use host_util::CommandExt;

use crate::context::Context;
use crate::status::Reason;
use crate::tools::NGINX;

/// The state the maintenance page announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Public {
    Starting,
    Failed,
    Standby,
    Updating,
    NotRunning,
}

/// What the frontend serves on the web ports.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 503 with a page saying the state and, where there is one, the reason class.
    Maintenance { state: Public, reason: Option<Reason> },
    /// Proxy to the app.
    Service,
}

/// The page's title and its one line of text: fixed sentences around the reason's class name.
pub fn public_text(state: Public, reason: Option<Reason>) -> (&'static str, String) {
    let why = reason
        .map(|r| format!(" (reason: {})", r.as_str()))
        .unwrap_or_default();
    match state {
        Public::Starting => (
            "Starting",
            format!(
                "The appliance is starting{}.",
                reason.map(|r| format!(" ({})", r.as_str())).unwrap_or_default()
            ),
        ),
        Public::Failed => (
            "Failed",
            format!(
                "The appliance failed to start{why}. The data is untouched; the operator has been notified."
            ),
        ),
        Public::Standby => ("Standby", "The appliance is in standby.".to_string()),
        Public::Updating => ("Updating", format!("The appliance is being updated{why}.")),
        Public::NotRunning => ("Not running", format!("The appliance is not running{why}.")),
    }
}

pub fn cert_paths(ctx: &Context) -> (PathBuf, PathBuf) {
    (
        ctx.tls_dir().join("server.cert.pem"),
        ctx.tls_dir().join("server.key.pem"),
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn page(domain: &str, title: &str, detail: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t} - {d}</title></head>\n\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{d}: {t}</h1>\n<p id=\"detail\">{x}</p>\n\
         <p>This page is shown by the appliance agent while the service is not available.</p></body></html>\n",
        t = html_escape(title),
        d = html_escape(domain),
        x = html_escape(detail)
    )
}

/// The pair HTTPS uses before /data holds one (first boot, or /data not mounted): made once
/// per boot in /run, so the page also answers on the HTTPS port and never touches /data.
fn throwaway_cert(ctx: &Context, domain: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = ctx.frontend_dir().join("tls");
    let (cert, key) = (dir.join("throwaway.cert.pem"), dir.join("throwaway.key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = if domain.contains(' ') { "localhost" } else { domain };
    let (key_pem, cert_pem) = crate::tls::self_signed_pem(name)?;
    host_util::write_atomic(&key, key_pem.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", key.display()))?;
    host_util::write_atomic(&cert, cert_pem.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok((cert, key))
}

fn config(ctx: &Context, mode: &Mode, generation: u64, pair: &(PathBuf, PathBuf), real_cert: bool) -> String {
    let dir = ctx.frontend_dir();
    let d = dir.display();
    let addr = &ctx.listen_address;
    let webroot = ctx.acme_webroot();
    let (cert, key) = pair;
    let tls = real_cert;
    let maintenance = matches!(mode, Mode::Maintenance { .. });
    let common = format!(
        "    error_page 503 /maintenance.html;\n    location = /maintenance.html {{ root {d}/www; internal; }}\n    \
         location = /.ecs-frontend-generation {{ return 200 \"{generation}\"; }}\n"
    );
    let mut http_root = String::new();
    if maintenance || !tls {
        http_root.push_str("    location / { add_header Retry-After 30 always; return 503; }\n");
    } else {
        http_root.push_str(&format!(
            "    location / {{ return 301 https://$host:{}$request_uri; }}\n",
            ctx.https_port
        ));
    }
    let mut out = format!(
        "# Written by ecs-agent; rewritten on every state change.\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 512; }}\nhttp {{\n  access_log off;\n  \
         default_type text/html;\n  server_tokens off;\n  client_body_temp_path {d}/tmp/body;\n  \
         proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  \
         scgi_temp_path {d}/tmp/scgi;\n  server {{\n    listen {addr}:{http} default_server;\n{v6}    \
         location /.well-known/acme-challenge/ {{ alias {w}/; default_type text/plain; }}\n{common}{http_root}  }}\n",
        http = ctx.http_port,
        v6 = crate::frontend_tls::listen_v6(ctx, ctx.http_port, false),
        w = webroot.display(),
    );
    {
        let root = if maintenance || !tls {
            "    location / { add_header Retry-After 30 always; return 503; }\n".to_string()
        } else {
            format!(
                "    location / {{\n      proxy_pass http://127.0.0.1:{};\n      proxy_set_header Host $host;\n      \
                 proxy_set_header X-Forwarded-For $remote_addr;\n      proxy_set_header X-Forwarded-Proto https;\n      \
                 proxy_set_header X-SSL-Client-Verify $ssl_client_verify;\n      \
                 proxy_set_header X-SSL-Client-Serial $ssl_client_serial;\n      \
                 proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;\n    }}\n",
                ctx.upstream_port
            )
        };
        // TLS settings (frontend_tls) and client-certificate verification (client_ca) are each
        // in their own module: this function only lays out the servers.
        out.push_str(&format!(
            "  server {{\n    listen {addr}:{https} ssl{h2} default_server;\n{v6}    ssl_certificate {c};\n    \
             ssl_certificate_key {k};\n{tls_conf}{client}{common}{root}  }}\n",
            https = ctx.https_port,
            h2 = crate::frontend_tls::listen_options(),
            v6 = crate::frontend_tls::listen_v6(ctx, ctx.https_port, true),
            c = cert.display(),
            k = key.display(),
            tls_conf = crate::frontend_tls::server_directives(ctx, tls),
            client = crate::client_ca::nginx_directives(ctx, !maintenance && tls),
        ));
    }
    out.push_str("}\n");
    out
}

fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("nginx.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new("/proc").join(pid.to_string()).exists().then_some(pid)
}

fn nginx(_ctx: &Context) -> anyhow::Result<std::process::Command> {
    Ok(NGINX.command()?)
}

/// Asks the frontend what generation it serves (None when it does not answer).
fn served_generation(ctx: &Context) -> Option<u64> {
    let host = if ctx.listen_address == "0.0.0.0" {
        "127.0.0.1"
    } else {
        ctx.listen_address.as_str()
    };
    let mut s = TcpStream::connect((host, ctx.http_port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /.ecs-frontend-generation HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split("\r\n\r\n").nth(1)?.trim().parse().ok()
}

/// Writes the page and the nginx config for `mode`; returns the config's generation marker.
pub fn write(ctx: &Context, domain: &str, mode: &Mode) -> anyhow::Result<u64> {
    let dir = ctx.frontend_dir();
    for sub in ["www", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    std::fs::create_dir_all(ctx.acme_webroot())
        .with_context(|| format!("creating {}", ctx.acme_webroot().display()))?;
    let (title, detail) = match mode {
        Mode::Maintenance { state, reason } => public_text(*state, *reason),
        Mode::Service => ("Running", "The service is running.".to_string()),
    };
    host_util::write_atomic(
        &dir.join("www/maintenance.html"),
        page(domain, title, &detail).as_bytes(),
        0o644,
    )
    .with_context(|| format!("writing {}/www/maintenance.html", dir.display()))?;
    let (cert, key) = cert_paths(ctx);
    let real_cert = cert.is_file() && key.is_file();
    let pair = if real_cert {
        (cert, key)
    } else {
        throwaway_cert(ctx, domain)?
    };
    let generation = (crate::status::now() * 1000.0) as u64;
    let conf = dir.join("nginx.conf");
    host_util::write_atomic(
        &conf,
        config(ctx, mode, generation, &pair, real_cert).as_bytes(),
        0o644,
    )
    .with_context(|| format!("writing {}", conf.display()))?;
    Ok(generation)
}

/// Writes the "starting" page unless a config exists (the frontend unit's ExecStartPre).
pub fn write_initial(ctx: &Context) -> anyhow::Result<()> {
    if ctx.frontend_dir().join("nginx.conf").is_file() {
        return Ok(());
    }
    let mode = Mode::Maintenance {
        state: Public::Starting,
        reason: None,
    };
    write(ctx, "ECS appliance", &mode).map(|_| ())
}

/// Writes the page and config for `mode`, then starts or reloads nginx and waits until it serves them.
pub fn apply(ctx: &Context, domain: &str, mode: &Mode) -> anyhow::Result<()> {
    let dir = ctx.frontend_dir();
    let generation = write(ctx, domain, mode)?;
    let conf = dir.join("nginx.conf");
    nginx(ctx)?
        .arg("-t")
        .arg("-q")
        .arg("-c")
        .arg(&conf)
        .run_checked()
        .context("checking the frontend config")?;
    let reloaded = running_pid(&dir);
    if reloaded.is_some() {
        nginx(ctx)?
            .arg("-c")
            .arg(&conf)
            .args(["-s", "reload"])
            .run_checked()
            .context("reloading the frontend")?;
    } else {
        nginx(ctx)?
            .arg("-c")
            .arg(&conf)
            .run_checked()
            .context("starting the frontend")?;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_generation(ctx) != Some(generation) {
        if Instant::now() > deadline {
            bail!(
                "the frontend did not pick up its new config within 15s (see {}/error.log)",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The old worker accepts connections until it is told to quit: only when it is gone does
    // every new connection get the new config (e.g. a renewed certificate).
    if let Some(master) = reloaded {
        while workers(master) > 1 {
            // A long request in flight keeps the old worker; it is not worth failing for.
            if Instant::now() > deadline {
                tracing::warn!("the frontend's old worker is still serving a connection after 15s");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// How many processes `master` has (nginx's workers; the config runs no cache processes).
fn workers(master: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let want = format!("PPid:\t{master}");
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| s.lines().any(|l| l == want))
        })
        .count()
}

/// Stops the frontend if it runs (tests, and `ecs-agent stop`).
pub fn stop(ctx: &Context) -> anyhow::Result<()> {
    let conf = ctx.frontend_dir().join("nginx.conf");
    if running_pid(&ctx.frontend_dir()).is_some() {
        nginx(ctx)?
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .run_checked()
            .context("stopping the frontend")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_its_text() {
        let p = page("x.example.org", "Failed", "step <db> failed & \"why\"");
        assert!(p.contains("step &lt;db&gt; failed &amp; &quot;why&quot;"), "{p}");
    }

    #[test]
    fn public_text_names_the_class_only() {
        let (title, text) = public_text(Public::Failed, Some(Reason::Database));
        assert_eq!(title, "Failed");
        assert!(
            text.starts_with("The appliance failed to start (reason: database)."),
            "{text}"
        );
        assert_eq!(
            public_text(Public::Starting, None).1,
            "The appliance is starting."
        );
    }
}
