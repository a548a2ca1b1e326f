//! The appliance's mail (step mail), one start of the fixture appliance with the relay on:
//! the app's mail goes out through the relay, DKIM-signed so that `ecs-build config dns`'s
//! record verifies it; mail to the appliance's ports 25 (STARTTLS) and 465 reaches the app;
//! other domains are refused (no open relay), also on the relay port from outside docker's
//! networks; mail to root is delivered locally and `mail-to-sentry` forwards it; a stopped
//! relay shows in `ecs-agent status`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Appliance, DOMAIN, stdout};
use e2e_tests::mail::{self, MailSink};
use host_util::CommandExt;

/// A real env.yml's DKIM key and the TXT record `config dns` prints for it.
fn dkim_key_and_record() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let build = e2e_tests::workspace_binary("ecs-build");
    Command::new(&build)
        .args(["config", "new", "--domain", DOMAIN, "--out"])
        .arg(&out)
        .run_checked()
        .unwrap();
    let env = out.join("env.yml");
    let zone = Command::new(&build)
        .args(["config", "dns"])
        .arg(&env)
        .run_stdout()
        .unwrap();
    let text = std::fs::read_to_string(&env).unwrap();
    let (env, _) = appliance_env::Env::from_yaml_str(&text, "env.yml").unwrap();
    (env.appliance.dkim.key, mail::dkim_record(&zone))
}

/// env_text's dummy DKIM key replaced by `key`.
fn with_dkim_key(env: &str, key: &str) -> String {
    let start = env.find("  dkim:\n").unwrap();
    let end_marker = "-----END PRIVATE KEY-----\n";
    let end = start + env[start..].find(end_marker).unwrap() + end_marker.len();
    format!(
        "{}  dkim:\n    key: |\n{}{}",
        &env[..start],
        common::indent(key.trim_end(), 6),
        &env[end..]
    )
}

/// Waits for `f`; on timeout fails with the relay's log.
fn wait_until(app: &Appliance, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; postfix's log:\n{}",
            std::fs::read_to_string(app.path("run/ecs/mail/postfix.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn relay_signs_and_delivers_incoming_reaches_the_app_and_root_mail_goes_to_sentry() {
    let sink = MailSink::start();
    let (sentry_port, sentry) = common::sentry_listener();
    let (key, record) = dkim_key_and_record();
    let app = Appliance::new("mail").with_mail();
    let env = common::env_text(
        &format!(
            "  mail:\n    relay_host: \"{}\"\n  sentry:\n    dsn: http://k3y@127.0.0.1:{sentry_port}/1\n",
            sink.relay_host()
        ),
        "",
    );
    std::fs::write(app.path("app/env.yml"), with_dkim_key(&env, &key)).unwrap();
    let out = app.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (state, msg) = app.step_state("mail");
    assert_eq!(state, "ok");
    assert!(
        msg.starts_with("relay on port") && msg.contains("via [127.0.0.1]"),
        "{msg}"
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(app.path("run/ecs/mail/opendkim/dkim.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "the DKIM key is root's alone");

    // Outgoing: the app's send-mail → relay (DKIM) → relay_host (the sink).
    app.app(&[
        "send-mail",
        &format!("noreply@{DOMAIN}"),
        "someone@example.com",
        "hello from the app",
        "sent through the relay",
    ]);
    let sent = sink
        .wait_for("hello from the app", Duration::from_secs(60))
        .expect("the app's mail did not reach the relay host");
    assert!(
        mail::dkim_verifies(&sent, DOMAIN, &record),
        "the DKIM signature does not verify against config dns's record:\n{}",
        String::from_utf8_lossy(&sent)
    );
    let mut tampered = sent.clone();
    let at = String::from_utf8_lossy(&tampered).find("sent through").unwrap();
    tampered[at] = b'S';
    assert!(
        !mail::dkim_verifies(&tampered, DOMAIN, &record),
        "a changed body must not verify"
    );

    // Incoming: 25 with STARTTLS and 465 with TLS reach the app's smtpd.
    let to = format!("office@{DOMAIN}");
    mail::send(
        "127.0.0.1",
        app.smtp,
        "starttls",
        "a@example.com",
        &to,
        "in via starttls",
        "x",
    )
    .unwrap();
    mail::send(
        "127.0.0.1",
        app.smtps,
        "implicit",
        "b@example.com",
        &to,
        "in via smtps",
        "y",
    )
    .unwrap();
    wait_until(&app, "incoming mail at the app's /mail page", || {
        let (code, body) = app.get(true, "/mail");
        code == 200 && body.contains("in via starttls") && body.contains("in via smtps")
    });
    let (_, page) = app.get(true, "/mail");
    assert!(page.contains(&format!("-> <{to}>")), "{page}");

    // No open relay: other domains are refused on the public ports, and the relay port takes
    // nothing from a client outside loopback and docker's networks (the host's own address).
    for (port, tls) in [(app.smtp, "starttls"), (app.smtps, "implicit")] {
        let e = mail::send(
            "127.0.0.1",
            port,
            tls,
            "spam@example.com",
            "victim@example.net",
            "relay?",
            "z",
        )
        .unwrap_err();
        assert!(e.contains("Relay access denied"), "port {port}: {e}");
    }
    let outside = common::host_address();
    if outside != "127.0.0.1" {
        let e = mail::send(
            &outside,
            app.mail_port,
            "none",
            "spam@example.com",
            "victim@example.net",
            "relay?",
            "z",
        )
        .unwrap_err();
        assert!(
            e.contains("Access denied") || e.contains("554"),
            "relay port from {outside}: {e}"
        );
    }

    // Mail to root (as unattended-upgrades sends it: sendmail) is delivered locally, and
    // mail-to-sentry sends it to Sentry and marks it read.
    let conf = app.path("run/ecs/mail/postfix");
    let mut sendmail = Command::new("sendmail");
    sendmail.arg("-C").arg(&conf).arg("root");
    host_util::CommandExt::run_with_input(
        &mut sendmail,
        b"Subject: unattended-upgrades result for ecs\n\nPackages upgraded: openssl\n",
    )
    .unwrap();
    let root = app.path("volatile/mail/root");
    wait_until(&app, "mail in root's mailbox", || {
        !mail::maildir_new(&root).is_empty()
    });
    let out = app.agent(&["mail-to-sentry"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("1 message(s) to root sent to Sentry"),
        "{}",
        stdout(&out)
    );
    let event = sentry.join().unwrap();
    assert!(
        event.contains("unattended-upgrades result for ecs") && event.contains("openssl"),
        "{event}"
    );
    assert!(mail::maildir_new(&root).is_empty(), "the sent mail is still new");
    assert_eq!(std::fs::read_dir(root.join("cur")).unwrap().count(), 1);

    // The relay down: status says so.
    Command::new("postfix")
        .arg("-c")
        .arg(&conf)
        .arg("stop")
        .run_checked()
        .unwrap();
    let status = stdout(&app.agent(&["status"]));
    assert!(
        status.contains("mail relay: DOWN: postfix is not running"),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&app.agent(&["status", "--json"]))).unwrap();
    assert!(json["mail"].as_str().unwrap().contains("DOWN"), "{json}");
}
