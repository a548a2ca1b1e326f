//! TLS against pebble (Debian's ACME test server) with real http-01 validation through the
//! frontend: pebble down → self-signed fallback and the app still served; pebble up →
//! `ecs-agent renew-tls` replaces it with an ACME certificate.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, free_port, stdout};
use host_util::{CommandExt, Tool};

const PEBBLE: Tool = Tool::new("pebble", "pebble");
const CHALLTESTSRV: Tool = Tool::new("pebble-challtestsrv", "pebble");
const OPENSSL: Tool = Tool::new("openssl", "openssl");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a certificate for 127.0.0.1/localhost, for pebble's own HTTPS listener.
fn pebble_tls(dir: &Path) {
    let openssl = || OPENSSL.command().unwrap_or_else(|e| panic!("{e}"));
    openssl()
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test ACME CA",
            "-keyout",
        ])
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.pem"))
        .run_checked()
        .unwrap();
    openssl()
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("req.csr"))
        .run_checked()
        .unwrap();
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl()
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(dir.join("req.csr"))
        .arg("-CA")
        .arg(dir.join("ca.pem"))
        .arg("-CAkey")
        .arg(dir.join("ca.key"))
        .args(["-CAcreateserial", "-extfile"])
        .arg(dir.join("ext.cnf"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .run_checked()
        .unwrap();
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port} after 30s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// pebble validating http-01 on `http_port`, resolving every name to 127.0.0.1.
fn start_pebble(dir: &Path, acme_port: u16, http_port: u16) -> (Killed, Killed) {
    let dns = free_port();
    let chall = Command::new(CHALLTESTSRV.path().unwrap_or_else(|e| panic!("{e}")))
        .args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ])
        .args([
            "-management",
            &format!("127.0.0.1:{}", free_port()),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{}", free_port()),
        "certificate": dir.join("cert.pem"),
        "privateKey": dir.join("key.pem"),
        "httpPort": http_port,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let pebble = Command::new(PEBBLE.path().unwrap_or_else(|e| panic!("{e}")))
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .arg("-dnsserver")
        .arg(format!("127.0.0.1:{dns}"))
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(std::fs::File::create(dir.join("pebble.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(acme_port);
    (Killed(chall), Killed(pebble))
}

#[test]
fn self_signed_while_pebble_is_down_then_renew_gets_an_acme_certificate() {
    let certs = tempfile::tempdir().unwrap();
    pebble_tls(certs.path());
    let acme_port = free_port();
    let mut a = Appliance::new("acme");
    a.extra_context
        .push(format!("acme-directory: https://127.0.0.1:{acme_port}/dir"));
    a.extra_context
        .push(format!("acme-ca-root: {}", certs.path().join("ca.pem").display()));
    a.write_env("", "");

    // Pebble down: the self-signed fallback serves, and the start succeeds.
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (_, tls) = a.step_state("tls");
    assert!(tls.contains("self-signed fallback"), "{tls}");
    assert_eq!(
        std::fs::read_to_string(a.path("data/etc/tls/source"))
            .unwrap()
            .trim(),
        "self-signed"
    );
    assert_eq!(a.get(true, "/").0, 200);
    let self_signed = a.served_issuer();
    assert!(!self_signed.contains("Pebble"), "{self_signed}");

    // Pebble up: the renewal validates over http-01 and replaces the certificate.
    let _pebble = start_pebble(certs.path(), acme_port, a.http);
    let out = a.agent(&["renew-tls"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ecs-agent: renew-tls ok: ACME certificate for appliance.example.org"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(a.path("data/etc/tls/source"))
            .unwrap()
            .trim(),
        "acme"
    );
    let issuer = a.served_issuer();
    assert!(issuer.contains("Pebble Intermediate CA"), "{issuer}");
    assert_eq!(a.get(true, "/").0, 200);
    let key_mode = std::fs::metadata(a.path("data/etc/tls/server.key.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );

    // A second start keeps the fresh ACME certificate.
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        a.step_state("tls")
            .1
            .contains("ACME certificate valid for more than 30 days, kept"),
        "{:?}",
        a.step_state("tls")
    );
}
