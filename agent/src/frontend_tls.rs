//! The frontend's TLS settings (protocols, ciphers, session handling, OCSP, HSTS), its HTTPS
//! access log and its IPv6 listeners.
//!
//! The profile is Mozilla's "intermediate" (server-side TLS guidelines 5.7): TLS 1.2 and 1.3,
//! ECDHE with AEAD ciphers only, the client's preference (every suite listed is strong). Its
//! three DHE suites are left out: nginx offers DHE only with an `ssl_dhparam` file, and every
//! client the profile supports speaks ECDHE.

use std::path::Path;
use std::sync::OnceLock;

use host_util::CommandExt;

use crate::context::Context;
use crate::tools::{NGINX, OPENSSL};

/// Mozilla intermediate's TLS 1.2 suites (TLS 1.3's are OpenSSL's defaults, all good).
pub const CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:\
ECDHE-RSA-CHACHA20-POLY1305";

/// Two years, as Mozilla recommends; sent only with a certificate browsers trust.
pub const HSTS: &str = "max-age=63072000";

/// ECS has no upload limit of its own (the original appliance set nginx's to 0 and left it to
/// the backend, which has none). Uploads are study documents (PDFs, scans); 150 MB is above
/// any the committee takes, and keeps a single request from filling /volatile with nginx's
/// temporary body files.
pub const MAX_BODY: &str = "150m";

/// (major, minor, patch) of the nginx that will run the config; None when `nginx -v` fails.
fn nginx_version() -> Option<(u32, u32, u32)> {
    static V: OnceLock<Option<(u32, u32, u32)>> = OnceLock::new();
    *V.get_or_init(|| {
        let out = NGINX.command().ok()?.arg("-v").output().ok()?;
        parse_nginx_version(&String::from_utf8_lossy(&out.stderr))
    })
}

fn parse_nginx_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split("nginx/").nth(1)?.split_whitespace().next()?;
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// nginx before 1.25.1 turns HTTP/2 on as a `listen` parameter, later ones with `http2 on`.
fn http2_directive() -> bool {
    nginx_version().is_none_or(|v| v >= (1, 25, 1))
}

/// What the HTTPS `listen` lines carry after `ssl` (HTTP/2 on an older nginx).
pub fn listen_options() -> &'static str {
    if http2_directive() { "" } else { " http2" }
}

/// True when the host has IPv6 (the kernel lists IPv6 addresses; absent or empty when IPv6
/// is disabled, and nginx would fail to bind `[::]`).
fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
}

/// The IPv6 `listen` line for `port` (`tls`: the HTTPS server), or nothing.
pub fn listen_v6(ctx: &Context, port: u16, tls: bool) -> String {
    match &ctx.listen_address_v6 {
        Some(addr) if host_has_ipv6() => {
            let ssl = if tls {
                format!(" ssl{}", listen_options())
            } else {
                String::new()
            };
            format!("    listen [{addr}]:{port}{ssl} default_server;\n")
        }
        _ => String::new(),
    }
}

/// The OCSP responder URL of the certificate in `cert` (its first one), if it names one.
fn ocsp_responder(cert: &Path) -> Option<String> {
    let out = OPENSSL
        .command()
        .ok()?
        .args(["x509", "-noout", "-ocsp_uri", "-in"])
        .arg(cert)
        .run_stdout()
        .ok()?;
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The name servers of /etc/resolv.conf (nginx resolves the OCSP responder itself).
fn resolvers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.contains(':') {
                format!("[{a}]")
            } else {
                a.to_string()
            }
        })
        .collect()
}

/// HSTS only for a certificate browsers accept without a click-through: one from ACME or the
/// operator. With the self-signed fallback it would lock visitors out until a real one comes.
pub fn wants_hsts(ctx: &Context, real_cert: bool) -> bool {
    real_cert && matches!(crate::tls::source(ctx).as_deref(), Some("acme" | "operator"))
}

/// The directives inside the HTTPS `server` block; `real_cert`: the certificate is the
/// appliance's (ACME, operator or its self-signed fallback), not the per-boot placeholder.
pub fn server_directives(ctx: &Context, real_cert: bool) -> String {
    let mut out = format!(
        "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_ciphers {CIPHERS};\n    \
         ssl_ecdh_curve X25519:prime256v1:secp384r1;\n    ssl_prefer_server_ciphers off;\n    \
         ssl_session_timeout 1d;\n    ssl_session_cache shared:ecs_tls:10m;\n    ssl_session_tickets off;\n    \
         client_max_body_size {MAX_BODY};\n"
    );
    if http2_directive() {
        out.push_str("    http2 on;\n");
    }
    if real_cert && ocsp_responder(&crate::frontend::cert_paths(ctx).0).is_some() {
        out.push_str("    ssl_stapling on;\n    ssl_stapling_verify on;\n");
        let ns = resolvers();
        if !ns.is_empty() {
            out.push_str(&format!("    resolver {};\n", ns.join(" ")));
        }
    }
    if wants_hsts(ctx, real_cert) {
        out.push_str(&format!(
            "    add_header Strict-Transport-Security \"{HSTS}\" always;\n"
        ));
    }
    match &ctx.access_log_socket {
        Some(sock) => out.push_str(&format!(
            "    access_log syslog:server=unix:{},tag=ecs_frontend,nohostname combined;\n",
            sock.display()
        )),
        None => out.push_str("    access_log off;\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_versions_parse() {
        assert_eq!(
            parse_nginx_version("nginx version: nginx/1.22.1\n"),
            Some((1, 22, 1))
        );
        assert_eq!(
            parse_nginx_version("nginx version: nginx/1.26.3 (Debian)"),
            Some((1, 26, 3))
        );
        assert_eq!(parse_nginx_version("something else"), None);
    }

    #[test]
    fn hsts_needs_a_trusted_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context {
            data_dir: dir.path().into(),
            access_log_socket: None,
            ..Context::default()
        };
        std::fs::create_dir_all(ctx.tls_dir()).unwrap();
        for (source, real, want) in [
            ("acme", true, true),
            ("operator", true, true),
            ("self-signed", true, false),
            ("acme", false, false),
        ] {
            std::fs::write(ctx.tls_dir().join("source"), format!("{source}\n")).unwrap();
            assert_eq!(wants_hsts(&ctx, real), want, "{source} {real}");
            let d = server_directives(&ctx, real);
            assert_eq!(d.contains("Strict-Transport-Security"), want, "{d}");
            assert!(
                d.contains("ssl_session_tickets off;") && d.contains("access_log off;"),
                "{d}"
            );
            assert!(!d.contains("TLSv1.1") && d.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
        }
    }
}
