//! Client-certificate login at the frontend, through the real binary, nginx, openssl and curl,
//! with the CA of a real `ecs-build config new`: step client-ca seeds the fixture app's CA dir
//! from env.yml; nginx verifies certificates against it and its CRL and sets the
//! X-SSL-Client-* headers itself (a client's forged ones, also underscore spellings, never reach
//! the app); a revocation in a new CRL reaches nginx with `ecs-agent reload-frontend`; an
//! expired or foreign CRL is not taken; mandatory mode refuses a client without a certificate.
//! One appliance start.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::{Appliance, CURL, DOMAIN, config_new_env, indent, stdout};
use host_util::{CommandExt, Tool};

const OPENSSL: Tool = Tool::new("openssl", "openssl");

fn openssl(dir: &Path, args: &[&str]) {
    OPENSSL
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .current_dir(dir)
        .args(args)
        .run_checked()
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A key and a one-day certificate for `cn`, signed as the app signs its users' (`openssl x509
/// -req` with the CA key, the serial kept in a file): (cert, key) file names in `dir`.
fn issue(dir: &Path, ca_cert: &Path, ca_key: &Path, cn: &str) -> (String, String) {
    let (key, csr, cert) = (format!("{cn}.key"), format!("{cn}.csr"), format!("{cn}.pem"));
    let subject = format!("/O=ECS/CN={cn}/emailAddress={cn}@example.org");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    let serial = dir.join("serial");
    if !serial.exists() {
        std::fs::write(&serial, "1000\n").unwrap();
    }
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca_cert.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-CAserial",
            "serial",
            "-days",
            "1",
            "-out",
            &cert,
        ],
    );
    (cert, key)
}

/// GET `path` on the HTTPS port with `args` (client certificate, headers): (code, body), or the
/// error curl gave when the handshake failed.
fn get(a: &Appliance, dir: &Path, path: &str, args: &[&str]) -> Result<(u16, String), String> {
    let out = Command::new(CURL.path().unwrap_or_else(|e| panic!("{e}")))
        .current_dir(dir)
        .args([
            "-sS",
            "-k",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--resolve",
        ])
        .arg(format!("{DOMAIN}:{}:127.0.0.1", a.https))
        .args(args)
        .arg(format!("https://{DOMAIN}:{}{path}", a.https))
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    Ok((code.trim().parse().unwrap(), body.to_string()))
}

fn with_cert(cert: &(String, String)) -> [&str; 4] {
    ["--cert", &cert.0, "--key", &cert.1]
}

/// Puts `crl` where the app keeps its CRL (as the app does: a new file renamed into place)
/// and runs `ecs-agent reload-frontend`: its message.
fn new_crl(a: &Appliance, crl: &[u8]) -> String {
    let tmp = a.path("data/ecs-ca/.crl.pem.new");
    std::fs::write(&tmp, crl).unwrap();
    std::fs::rename(&tmp, a.path("data/ecs-ca/crl.pem")).unwrap();
    let out = a.agent(&["reload-frontend"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("ecs-agent: reload-frontend ok: "))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string()
}

/// nginx refused the request for its certificate (400 from nginx, not the app's page).
fn refused(r: &Result<(u16, String), String>) -> bool {
    match r {
        Ok((code, body)) => *code == 400 && !body.contains("internal:") && !body.contains("forbidden:"),
        Err(_) => true,
    }
}

#[test]
fn client_certificates_are_verified_against_the_apps_ca_and_crl() {
    let a = Appliance::new("client-certs");
    let ca = config_new_env().appliance.ssl.client_ca.clone().unwrap();
    let ssl = format!(
        "  ssl:\n    letsencrypt:\n      enabled: false\n    client_ca:\n      cert: |\n{}      key: |\n{}",
        indent(&ca.cert, 8),
        indent(&ca.key, 8)
    );
    a.write_env(&ssl, "");
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");

    // Seeded: key 0600 first, CRL, certificate, all the app's (the data-dirs owner).
    let (state, msg) = a.step_state("client-ca");
    assert_eq!(state, "ok");
    assert!(
        msg.starts_with("seeded from env.yml; the app's CA (")
            && msg.contains("client certificates optional"),
        "{msg}"
    );
    let ca_dir = a.path("data/ecs-ca");
    let ca_cert = ca_dir.join("ca.cert.pem");
    let ca_key = ca_dir.join("private/ca.key.pem");
    assert_eq!(std::fs::read_to_string(&ca_cert).unwrap(), ca.cert);
    assert_eq!(std::fs::read_to_string(&ca_key).unwrap(), ca.key);
    for (p, mode) in [
        (&ca_key, 0o600),
        (&ca_cert, 0o644),
        (&ca_dir.join("crl.pem"), 0o644),
    ] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.permissions().mode() & 0o777),
            (1000, 1000, mode),
            "{p:?}"
        );
    }
    let conf = std::fs::read_to_string(a.path("run/ecs/frontend/nginx.conf")).unwrap();
    for d in [
        "ssl_verify_client optional;",
        "ssl_verify_depth 1;",
        "ssl_crl ",
        "underscores_in_headers off;",
        "ignore_invalid_headers on;",
        "proxy_set_header X-SSL-Client-Verify $ssl_client_verify;",
    ] {
        assert!(conf.contains(d), "{d}: {conf}");
    }

    // Users' certificates, issued on the host with the CA key the app has.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let alice = issue(w, &ca_cert, &ca_key, "alice");
    let bob = issue(w, &ca_cert, &ca_key, "bob");
    // A CA of its own, and a certificate from it.
    openssl(
        w,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "30",
            "-subj",
            "/CN=other CA",
        ],
    );
    let mallory = issue(w, &w.join("other.pem"), &w.join("other.key"), "mallory");

    // No certificate: refused by the app, which learns from nginx that there is none.
    let (code, body) = get(&a, w, "/internal", &[]).unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("verify: NONE"), "{body}");
    // Forged headers, in both spellings: nginx's own replace them; the underscores never pass.
    let forged = [
        "-H",
        "X-SSL-Client-Verify: SUCCESS",
        "-H",
        "X-SSL-Client-Serial: 1000",
        "-H",
        "X-SSL-Client-S-DN: CN=forged",
        "-H",
        "X_SSL_CLIENT_VERIFY: SUCCESS",
        "-H",
        "X_SSL_CLIENT_SERIAL: 1000",
        "-H",
        "x-ssl-client-verify: SUCCESS",
    ];
    let (code, body) = get(&a, w, "/internal", &forged).unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("verify: NONE") && !body.contains("X_SSL") && !body.contains("forged"),
        "{body}"
    );
    // With the certificate: the page answers and shows who it is.
    let (code, body) = get(&a, w, "/internal", &with_cert(&alice)).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("CN=alice") && body.contains("verify: SUCCESS"),
        "{body}"
    );
    // Forged headers with a real certificate still show the session's values.
    let args: Vec<&str> = with_cert(&alice).into_iter().chain(forged).collect();
    let (code, body) = get(&a, w, "/internal", &args).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("forged") && !body.contains("X_SSL"), "{body}");
    // Another CA's certificate.
    let r = get(&a, w, "/internal", &with_cert(&mallory));
    assert!(refused(&r), "{r:?}");

    // Revoked with openssl ca, the new CRL in the app's dir, the frontend reloaded.
    std::fs::write(
        w.join("ca.cnf"),
        "[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n",
    )
    .unwrap();
    std::fs::write(w.join("index.txt"), "").unwrap();
    std::fs::write(w.join("crlnumber"), "02\n").unwrap();
    let (c, k) = (ca_cert.to_str().unwrap(), ca_key.to_str().unwrap());
    let ca_args = ["-config", "ca.cnf", "-cert", c, "-keyfile", k];
    openssl(w, &[&["ca"][..], &ca_args, &["-revoke", &alice.0]].concat());
    openssl(
        w,
        &[&["ca"][..], &ca_args, &["-gencrl", "-out", "revoked.crl.pem"]].concat(),
    );
    let revoked = std::fs::read(w.join("revoked.crl.pem")).unwrap();
    let msg = new_crl(&a, &revoked);
    assert!(msg.starts_with("the app's CA ("), "{msg}");
    let r = get(&a, w, "/internal", &with_cert(&alice));
    assert!(refused(&r), "revoked: {r:?}");
    let (code, body) = get(&a, w, "/internal", &with_cert(&bob)).unwrap();
    assert_eq!(code, 200, "{body}");

    // An expired CRL, and one from another CA, are not taken: the placeholder verifies no one.
    let issuer_key = rcgen::KeyPair::from_pem(&ca.key).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.cert, &issuer_key).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = ecs_agent::client_ca::crl_pem(
        &issuer,
        now - time::Duration::days(10),
        now - time::Duration::days(1),
        9,
        &[],
    )
    .unwrap();
    let msg = new_crl(&a, expired.as_bytes());
    assert!(
        msg.contains("not usable: placeholder") && msg.contains("expired"),
        "{msg}"
    );
    let r = get(&a, w, "/internal", &with_cert(&bob));
    assert!(refused(&r), "with the placeholder: {r:?}");
    let (code, _) = get(&a, w, "/internal", &[]).unwrap();
    assert_eq!(code, 403);
    openssl(
        w,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-cert",
            "other.pem",
            "-keyfile",
            "other.key",
            "-gencrl",
            "-out",
            "other.crl.pem",
        ],
    );
    let msg = new_crl(&a, &std::fs::read(w.join("other.crl.pem")).unwrap());
    assert!(
        msg.contains("not usable: placeholder") && msg.contains("issuer"),
        "{msg}"
    );

    // Mandatory: without a certificate nginx refuses before the app is asked; with one, in.
    let env = a.path("run/active-env.yml");
    let text = std::fs::read_to_string(&env).unwrap();
    let text = text.replacen("  ssl:\n", "  ssl:\n    client_certs_mandatory: true\n", 1);
    assert!(text.contains("client_certs_mandatory: true"), "{text}");
    std::fs::write(&env, text).unwrap();
    let msg = new_crl(&a, &revoked);
    assert!(msg.ends_with("client certificates on"), "{msg}");
    let r = get(&a, w, "/internal", &[]);
    assert!(refused(&r), "mandatory, no certificate: {r:?}");
    let (code, body) = get(&a, w, "/internal", &with_cert(&bob)).unwrap();
    assert_eq!(code, 200, "{body}");
}
