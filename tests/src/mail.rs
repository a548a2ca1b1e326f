//! A real SMTP server for tests to send mail to, and DKIM verification with the real tools.
//!
//! - `MailSink::start()`: Debian's aiosmtpd (`python3 -m aiosmtpd`, its Maildir handler) on a
//!   free port of 127.0.0.1; `messages()` are the raw messages it took, oldest first. Point the
//!   appliance's relay at it with env.yml `appliance.mail.relay_host: "[127.0.0.1]:PORT"`.
//! - `dkim_record(zone)`: the TXT value of `default._domainkey` in `ecs-build config dns`'s
//!   output; `dkim_verifies(message, domain, record)`: dkimpy checks the message's signature
//!   for `domain` against that record (served to it in place of DNS).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host_util::Tool;

pub const PYTHON: Tool = Tool::new("python3", "python3");

/// Debian's python3, whose modules the python3-* packages install (a python3 earlier on PATH,
/// e.g. pyenv's, lacks them).
fn python() -> PathBuf {
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PYTHON.path().unwrap_or_else(|e| panic!("{e}"))
    }
}

fn need_module(module: &str, package: &str) {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python3 module {module} is missing: install Debian's {package} (scripts/deps.sh)"
    );
}

/// An SMTP server on 127.0.0.1 that keeps every message; stopped on drop.
pub struct MailSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl MailSink {
    /// Starts the server and waits until it answers.
    pub fn start() -> MailSink {
        need_module("aiosmtpd", "python3-aiosmtpd");
        let dir = tempfile::Builder::new().prefix("mail-sink-").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        MailSink { port, dir, child }
    }

    /// `[127.0.0.1]:PORT`, postfix's relayhost syntax (no MX lookup).
    pub fn relay_host(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    /// Every message received so far, raw (headers and body), oldest first.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.dir.path().join("maildir/new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap(), e.path()))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read(p).unwrap())
            .collect()
    }

    /// Waits up to `timeout` for a message containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| String::from_utf8_lossy(m).contains(needle))
            {
                return Some(m);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the `default._domainkey` TXT record in `ecs-build config dns` output (its
/// quoted strings joined, as a resolver returns them).
pub fn dkim_record(zone: &str) -> String {
    let start = zone
        .find("default._domainkey.")
        .expect("no default._domainkey record in the zone text");
    let rest = &zone[start..];
    let end = rest.find(')').map(|i| i + 1).unwrap_or(rest.len());
    let rest = &rest[..end];
    let rest = rest
        .split_once('\n')
        .filter(|_| !rest.contains('('))
        .map_or(rest, |(l, _)| l);
    rest.split('"').skip(1).step_by(2).collect()
}

/// True if dkimpy verifies the message's DKIM signature, made for `domain` (its d= tag), with
/// `record` as the selector's TXT record.
pub fn dkim_verifies(message: &[u8], domain: &str, record: &str) -> bool {
    need_module("dkim", "python3-dkim");
    let dir = tempfile::tempdir().unwrap();
    let (msg, rec) = (dir.path().join("msg"), dir.path().join("record"));
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&rec, record).unwrap();
    let script = "import dkim, re, sys
msg = open(sys.argv[1], 'rb').read()
rec = open(sys.argv[2], 'rb').read()
sig = re.search(rb'^DKIM-Signature:(.*?)\\r?\\n(?![ \\t])', msg, re.M | re.S)
if not sig: sys.exit('no DKIM-Signature header')
d = re.search(rb'\\bd=([^;\\s]+)', sig.group(1))
if not d or d.group(1).decode().lower() != sys.argv[3].lower(): sys.exit(f'signed for {d and d.group(1)}, not {sys.argv[3]}')
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec)
sys.exit(0 if ok else 'dkim.verify: the signature does not verify')";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(&msg)
        .arg(&rec)
        .arg(domain)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("dkim_verifies: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    out.status.success()
}

/// Sends one message over SMTP to `host`:`port` with python's smtplib: `tls` is "starttls",
/// "implicit" or "none" (certificates are not checked). Ok(()) if the server took it; Err with
/// its answer (e.g. a refused recipient) otherwise.
pub fn send(
    host: &str,
    port: u16,
    tls: &str,
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<(), String> {
    let script = "import smtplib, ssl, sys
host, port, tls, frm, to, subject, body = sys.argv[1:8]
ctx = ssl._create_unverified_context()
msg = f'From: {frm}\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\n{body}\\r\\n'
try:
    if tls == 'implicit':
        s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=20)
    else:
        s = smtplib.SMTP(host, int(port), timeout=20)
        if tls == 'starttls':
            s.starttls(context=ctx)
    s.sendmail(frm, [to], msg)
    s.quit()
except Exception as e:
    sys.exit(f'{type(e).__name__}: {e}')";
    let out = Command::new(python())
        .args([
            "-c",
            script,
            host,
            &port.to_string(),
            tls,
            from,
            to,
            subject,
            body,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Reads a Maildir's `new/` messages (e.g. root's mailbox on the appliance), oldest first.
pub fn maildir_new(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}
