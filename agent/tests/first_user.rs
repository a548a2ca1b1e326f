//! `ecs-agent create-first-user` against the fixture app (its create-user and
//! issue-client-certificate hooks, openssl's CA in the container) with an SMTP sink as the
//! appliance's relay: bad input and missing preconditions refused with nothing made, the
//! certificate mailed as PKCS#12 that opens with the password shown on the console, chains to
//! the CA and expires in a day; a second run reuses the user; the password is nowhere else.

mod common;

use std::path::Path;
use std::process::Command;

use common::smtp::{Sink, attachment};
use common::{Appliance, env_text, stdout};
use host_util::CommandExt;

const EMAIL: &str = "office@example.org";
const FIRST_USER: &str =
    "  first_user:\n    email: office@example.org\n    first_name: Jane\n    last_name: Doe\n    gender: f\n";

fn openssl() -> Command {
    Command::new("openssl")
}

/// The CA as the client-ca step seeds it: key in private/, certificate, an empty CRL.
fn seed_ca(dir: &Path) {
    std::fs::create_dir_all(dir.join("private")).unwrap();
    openssl()
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=fixture office CA",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .arg("-keyout")
        .arg(dir.join("private/ca.key.pem"))
        .arg("-out")
        .arg(dir.join("ca.cert.pem"))
        .run_checked()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("index.txt"), "").unwrap();
    let conf = tmp.path().join("ca.cnf");
    std::fs::write(
        &conf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {}/index.txt\ndefault_md = sha256\ndefault_crl_days = 3650\n",
            tmp.path().display()
        ),
    )
    .unwrap();
    openssl()
        .args(["ca", "-batch", "-gencrl", "-config"])
        .arg(&conf)
        .arg("-keyfile")
        .arg(dir.join("private/ca.key.pem"))
        .arg("-cert")
        .arg(dir.join("ca.cert.pem"))
        .arg("-out")
        .arg(dir.join("crl.pem"))
        .run_checked()
        .unwrap();
}

/// (exit code, stdout, stderr) of `ecs-agent create-first-user ARGS`.
fn create(a: &Appliance, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["create-first-user"];
    argv.extend(args);
    let out = a.agent(&argv);
    (
        out.status.code().unwrap_or(-1),
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn users(a: &Appliance) -> String {
    a.psql("SELECT count(*) FROM users")
}

/// The password from the console line, checked to be shown once.
fn password_of(out: &str) -> String {
    let prefix = format!("ecs-agent: transport password for {EMAIL}: ");
    let lines: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(lines.len(), 1, "shown once: {out}");
    lines[0].to_string()
}

/// The certificate inside the mailed PKCS#12, opened with `password`; returns its serial.
fn open_bundle(a: &Appliance, p12: &[u8], password: &str, work: &Path) -> String {
    let bundle = work.join("user.p12");
    std::fs::write(&bundle, p12).unwrap();
    let cert = work.join("user.pem");
    openssl()
        .args(["pkcs12", "-nokeys", "-clcerts", "-passin", "stdin", "-in"])
        .arg(&bundle)
        .arg("-out")
        .arg(&cert)
        .run_with_input(format!("{password}\n").as_bytes())
        .unwrap_or_else(|e| panic!("the PKCS#12 does not open with the shown password: {e}"));
    // Not with another password.
    assert!(
        openssl()
            .args(["pkcs12", "-nokeys", "-passin", "pass:wrong-password-0000", "-in"])
            .arg(&bundle)
            .run_checked()
            .is_err()
    );
    let ca = a.path("data/ecs-ca/ca.cert.pem");
    let verified = openssl()
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(&ca)
        .arg(&cert)
        .run_stdout()
        .unwrap();
    assert!(verified.trim().ends_with(": OK"), "{verified}");
    // Valid for another hour, expired within a day (and ten minutes of slack).
    let checkend = |secs: u32| {
        openssl()
            .args(["x509", "-noout", "-checkend", &secs.to_string(), "-in"])
            .arg(&cert)
            .run_checked()
            .is_ok()
    };
    assert!(checkend(3600), "the certificate is valid for an hour at least");
    assert!(!checkend(24 * 3600 + 600), "the certificate expires within a day");
    let subject = openssl()
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(&cert)
        .run_stdout()
        .unwrap();
    assert!(
        subject.contains("Jane Doe") && subject.contains(EMAIL),
        "{subject}"
    );
    let serial = openssl()
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&cert)
        .run_stdout()
        .unwrap();
    serial.trim().strip_prefix("serial=").unwrap().to_string()
}

#[test]
fn create_first_user_mails_a_one_day_certificate_and_shows_the_password_only_on_the_console() {
    let sink = Sink::start();
    let dead_port = common::free_port();
    let mut a = Appliance::new("firstuser");
    let relay = |a: &mut Appliance, port: u16| {
        a.extra_context.retain(|l| !l.starts_with("mail-port:"));
        a.extra_context.push(format!("mail-port: {port}"));
    };
    // The relay step is not what this tests: the sink stands in for it.
    a.extra_context.push("mail: false".into());
    relay(&mut a, sink.port);
    a.write_env("", FIRST_USER);
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Bad input: exit 2, named, before anything is made.
    for (args, want) in [
        (
            vec![
                "--email",
                "not-an-address",
                "--first-name",
                "A",
                "--last-name",
                "B",
                "--gender",
                "f",
            ],
            "--email: expected an email address",
        ),
        (
            vec![
                "--email",
                EMAIL,
                "--first-name",
                "-rf",
                "--last-name",
                "B",
                "--gender",
                "f",
            ],
            "--first-name: expected a value that does not start with `-`",
        ),
        (
            vec![
                "--email",
                EMAIL,
                "--first-name",
                "A",
                "--last-name",
                "B",
                "--gender",
                "x",
            ],
            "--gender: expected f or m",
        ),
        (
            vec!["--email", EMAIL],
            "expected all of --email, --first-name, --last-name and --gender",
        ),
    ] {
        let (code, out, _) = create(&a, &args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(want), "{args:?}: {out}");
    }

    // The app's CA is not there yet: refused, no user.
    let (code, out, _) = create(&a, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("create-first-user refused: the app's CA is not there yet"),
        "{out}"
    );
    assert_eq!(users(&a), "0");
    seed_ca(&a.path("data/ecs-ca"));

    // The relay does not answer: refused naming its port, no user.
    relay(&mut a, dead_port);
    let (code, out, _) = create(&a, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "the appliance's mail relay does not answer at 127.0.0.1:{dead_port}"
        )),
        "{out}"
    );
    assert_eq!(users(&a), "0");
    assert_eq!(a.lifecycle()["last"]["create-first-user"]["result"], "refused");
    assert!(sink.mails().is_empty());

    // From env.yml's ecs.first_user.
    relay(&mut a, sink.port);
    let (code, out, err1) = create(&a, &[]);
    assert_eq!(code, 0, "{out}");
    let password = password_of(&out);
    assert_eq!(password.len(), 24);
    assert!(out.contains(&format!("user {EMAIL} created")), "{out}");
    assert_eq!(
        a.psql(&format!(
            "SELECT first_name, last_name, gender, internal, 'EC-Office' = ANY(groups) FROM users WHERE email = '{EMAIL}'"
        )),
        "Jane|Doe|f|t|t"
    );
    let record = a.lifecycle()["last"]["create-first-user"].clone();
    assert_eq!(record["result"], "ok");
    assert_eq!(record["details"]["user"], "created");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, [format!("<{EMAIL}>")]);
    let p12 = attachment(&mails[0].data, &format!("{EMAIL}.p12")).expect("a .p12 attachment");
    let work = tempfile::tempdir().unwrap();
    let serial1 = open_bundle(&a, &p12, &password, work.path());
    assert_eq!(record["details"]["certificate_serial"], serial1.as_str());

    // Again, with the same values as arguments: the user existed, a new certificate.
    let (code, out, err2) = create(
        &a,
        &[
            "--email",
            EMAIL,
            "--first-name",
            "Jane",
            "--last-name",
            "Doe",
            "--gender",
            "f",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let password2 = password_of(&out);
    assert_ne!(password, password2);
    assert!(out.contains(&format!("user {EMAIL} existed")), "{out}");
    assert_eq!(users(&a), "1");
    let record = a.lifecycle()["last"]["create-first-user"].clone();
    assert_eq!(record["details"]["user"], "existed");
    let mails = sink.mails();
    assert_eq!(mails.len(), 2);
    let p12 = attachment(&mails[1].data, &format!("{EMAIL}.p12")).unwrap();
    let serial2 = open_bundle(&a, &p12, &password2, work.path());
    assert_ne!(serial1, serial2);

    // The passwords are on the console only.
    let logs = a.compose().args(["logs", "--no-color"]).run_stdout().unwrap();
    let files = [
        std::fs::read_to_string(a.path("run/ecs/status.json")).unwrap(),
        std::fs::read_to_string(a.path("data/etc/ecs-agent/lifecycle.json")).unwrap(),
    ];
    for p in [&password, &password2] {
        for (what, text) in [
            ("the agent's log (stderr)", &err1),
            ("the agent's log (stderr)", &err2),
            ("the fixture's logs", &logs),
            ("status.json", &files[0]),
            ("lifecycle.json", &files[1]),
            ("the first mail", &mails[0].data),
            ("the second mail", &mails[1].data),
        ] {
            assert!(!text.contains(p.as_str()), "the transport password is in {what}");
        }
    }

    // A certificate the relay did not take is revoked by the fixture's hook, which fails.
    let e = a
        .app_command()
        .env("AGENT_MAIL_HOST", "host.docker.internal")
        .env("AGENT_MAIL_PORT", dead_port.to_string())
        .args(["issue-client-certificate", EMAIL, "1"])
        .run_with_input(format!("{password}\n").as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("was revoked") && !e.contains(&password), "{e}");
    let index = std::fs::read_to_string(a.path("data/ecs-ca/index.txt")).unwrap();
    assert_eq!(
        index.lines().map(|l| &l[..1]).collect::<String>(),
        "VVR",
        "{index}"
    );

    // The fixture revokes: the CRL it writes has both serials and verification with it fails.
    a.app(&["revoke-client-certificate", EMAIL]);
    let crl = openssl()
        .args(["crl", "-noout", "-text", "-in"])
        .arg(a.path("data/ecs-ca/crl.pem"))
        .run_stdout()
        .unwrap();
    for s in [&serial1, &serial2] {
        assert!(crl.contains(&format!("Serial Number: {s}")), "{s} not in {crl}");
    }
    let e = openssl()
        .args(["verify", "-crl_check", "-CAfile"])
        .arg(a.path("data/ecs-ca/ca.cert.pem"))
        .arg("-CRLfile")
        .arg(a.path("data/ecs-ca/crl.pem"))
        .arg(work.path().join("user.pem"))
        .run_checked()
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate revoked"), "{e}");

    // No ecs.first_user in env.yml and no arguments.
    std::fs::write(a.path("run/active-env.yml"), env_text("", "")).unwrap();
    let (code, out, _) = create(&a, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("key ecs.first_user: missing"), "{out}");
}
