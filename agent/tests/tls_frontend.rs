//! The frontend as the internet sees it, with one start of the fixture appliance: Mozilla's
//! intermediate TLS profile (`openssl s_client`), HTTP/2 by ALPN, no TLS 1.2 session tickets,
//! IPv6, access log lines on the syslog socket, HSTS only once the certificate is the operator's;
//! and the app's database role, from the app container: no superuser powers.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Appliance, CURL, DOMAIN, stdout};
use host_util::{CommandExt, Tool};

const OPENSSL: Tool = Tool::new("openssl", "openssl");

/// `openssl s_client` against the frontend with `args`: (handshake succeeded, output).
fn s_client(a: &Appliance, args: &[&str]) -> (bool, String) {
    let out = Command::new(OPENSSL.path().unwrap_or_else(|e| panic!("{e}")))
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", a.https)])
        .args(["-servername", DOMAIN])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

/// The response headers of GET / over HTTPS (`-6`: over IPv6, ::1).
fn headers(a: &Appliance, v6: bool) -> String {
    let url = if v6 {
        format!("https://[::1]:{}/", a.https)
    } else {
        format!("https://127.0.0.1:{}/", a.https)
    };
    Command::new(CURL.path().unwrap())
        .args(["-sS", "-k", "-o", "/dev/null", "-D", "-", "--max-time", "10"])
        .args(["-H", &format!("Host: {DOMAIN}")])
        .arg(url)
        .run_stdout()
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_lowercase()
}

#[test]
fn tls_profile_hsts_and_database_role() {
    let mut a = Appliance::new("tlsfront");
    let log = a.path("syslog.sock");
    let syslog = UnixDatagram::bind(&log).unwrap();
    syslog.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // nginx's workers run as nobody, as /dev/log lets everyone write.
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    a.extra_context
        .push(format!("access-log-socket: {}", log.display()));
    a.write_env("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(a.path("data/etc/tls/source"))
            .unwrap()
            .trim(),
        "self-signed"
    );

    // Protocols: 1.0 and 1.1 refused even to a client that would take them.
    for old in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(&a, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]);
        assert!(!ok, "{old} accepted:\n{text}");
    }
    // TLS 1.2 with intermediate's suites (the self-signed key is ECDSA, an operator's may be RSA).
    let (ok, text) = s_client(
        &a,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        ],
    );
    assert!(ok, "TLS 1.2 with an intermediate cipher refused:\n{text}");
    assert!(
        !text.contains("TLS session ticket:"),
        "a session ticket was issued:\n{text}"
    );
    // Outside the profile: no forward secrecy, CBC.
    let (ok, text) = s_client(&a, &["-tls1_2", "-cipher", "AES128-SHA:AES256-SHA256"]);
    assert!(!ok, "a non-ECDHE suite was accepted:\n{text}");
    let (ok, text) = s_client(&a, &["-tls1_3"]);
    assert!(ok, "TLS 1.3 refused:\n{text}");
    let (_, text) = s_client(&a, &["-alpn", "h2,http/1.1"]);
    assert!(
        text.contains("ALPN protocol: h2"),
        "HTTP/2 not negotiated:\n{text}"
    );

    // The self-signed fallback: no HSTS, over IPv4 or IPv6.
    let h = headers(&a, false);
    assert!(h.starts_with("http/2 200"), "{h}");
    assert!(!h.contains("strict-transport-security"), "{h}");
    if std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| s.contains("lo")) {
        let h6 = headers(&a, true);
        assert!(h6.starts_with("http/2 200"), "{h6}");
    }
    // The access log went to the syslog socket, tagged.
    let mut buf = [0u8; 4096];
    let n = syslog
        .recv(&mut buf)
        .expect("no access log line on the syslog socket");
    let line = String::from_utf8_lossy(&buf[..n]);
    assert!(line.contains("ecs_frontend") && line.contains("GET /"), "{line}");

    // The app's role, from the app container, over the network with its password.
    let script = r#"
import os, psycopg2
c = psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=5)
c.autocommit = True
cur = c.cursor()
cur.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
print("role", cur.fetchone())
for sql in ["CREATE EXTENSION dblink", "CREATE ROLE intruder", "SELECT rolpassword FROM pg_authid"]:
    try:
        cur.execute(sql)
        print("allowed:", sql)
    except psycopg2.Error as e:
        print("refused:", sql, "|", e.pgerror.strip().splitlines()[0])
"#;
    let out = a
        .compose()
        .args(["exec", "-T", "web", "python3", "-c", script])
        .run_stdout()
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(out.contains("role (False, False, False)"), "{out}");
    for sql in [
        "CREATE EXTENSION dblink",
        "CREATE ROLE intruder",
        "SELECT rolpassword FROM pg_authid",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(sql))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            line.starts_with("refused:") && line.contains("permission denied"),
            "{line}"
        );
    }

    // The operator's certificate (with an OCSP responder named): HSTS, and stapling configured.
    let dir = a.path("operator");
    std::fs::create_dir(&dir).unwrap();
    OPENSSL
        .command()
        .unwrap()
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={DOMAIN}")])
        .args(["-addext", &format!("subjectAltName=DNS:{DOMAIN}")])
        .args(["-addext", "authorityInfoAccess=OCSP;URI:http://ocsp.example.org/"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .run_checked()
        .unwrap();
    let pem = |f: &str| common::indent(&std::fs::read_to_string(dir.join(f)).unwrap(), 6);
    a.write_env(
        &format!(
            "  ssl:\n    letsencrypt:\n      enabled: false\n    key: |\n{}    cert: |\n{}",
            pem("key.pem"),
            pem("cert.pem")
        ),
        "",
    );
    // renew-tls reads the env the last start activated: this is what a restart would write.
    std::fs::copy(a.path("app/env.yml"), a.path("run/active-env.yml")).unwrap();
    let out = a.agent(&["renew-tls"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let h = headers(&a, false);
    assert!(h.contains("strict-transport-security: max-age=63072000"), "{h}");
    let conf = std::fs::read_to_string(a.path("run/ecs/frontend/nginx.conf")).unwrap();
    assert!(conf.contains("ssl_stapling on;"), "{conf}");
}
