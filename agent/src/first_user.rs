//! `ecs-agent create-first-user`: the office's first user, with a client certificate to log in.
//!
//! The app does the work through two hooks of its definition (`x-ecs.hooks`), run as migrate
//! is (`compose run --rm <hooks.service>`):
//!
//! - `create-user EMAIL FIRST LAST GENDER`: creates the user or reuses it, puts it in the
//!   office group and marks it internal; its last line is `created` or `existed`;
//! - `issue-client-certificate EMAIL DAYS`: a certificate valid DAYS (1), signed by the app's CA,
//!   packed as PKCS#12 under the transport password it reads from stdin, mailed to EMAIL through
//!   the appliance's relay; it may print `serial=HEX` last.
//!
//! The transport password is made here (CSPRNG, 120 bits) and shown once, on the operator's
//! console (stdout): it never goes to argv, the environment, the journal, the lifecycle record,
//! status, Sentry or the mail. Before any hook runs, the app's CA must be there and the relay
//! must answer; otherwise the command refuses and nothing is made. A second run says the user
//! existed and issues a new certificate.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context as _;
use ring::rand::SecureRandom;

use crate::appdef::AppDef;
use crate::envfile::LoadedEnv;
use crate::lifecycle::{Job, Refused};
use crate::userdata::ConfigError;

/// How long the first certificate is valid: long enough to install it, short enough that a
/// mail that went astray is of little use.
pub const CERT_DAYS: u32 = 1;

/// 32 lowercase letters and digits without 0, 1, l, o: read off a console and typed without
/// doubt. 32 symbols: 5 bits each, from a byte without bias.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// 24 symbols of 5 bits: 120 bits.
pub const PASSWORD_LEN: usize = 24;

/// The longest name or address taken (RFC 5321's path limit).
const MAX_LEN: usize = 254;

/// The user as given on the command line: all four values, or none (then env.yml's).
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
}

/// The user to create, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `f` or `m`.
    pub gender: String,
}

/// The transport password; its Debug form hides it.
pub struct TransportPassword(String);

impl TransportPassword {
    pub fn generate() -> anyhow::Result<TransportPassword> {
        let mut bytes = [0u8; PASSWORD_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
        Ok(TransportPassword(
            bytes
                .iter()
                .map(|b| ALPHABET[usize::from(b & 31)] as char)
                .collect(),
        ))
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the password replaced: for hook errors, which carry the
    /// tail of the hook's stderr into the console, the journal, the record and Sentry.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "[transport password]")
    }
}

impl std::fmt::Debug for TransportPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportPassword([hidden])")
    }
}

/// A value that becomes a hook's argument: not empty, no control characters (they would forge
/// lines in the hook's output and the mail's headers), not option-like (`-x` would be read as
/// an option by the hook's argument parser), and of bounded length.
fn check_value(what: &str, value: &str) -> Result<(), ConfigError> {
    let problem = if value.trim().is_empty() {
        Some("expected a value, found an empty one".to_string())
    } else if value.chars().any(char::is_control) {
        Some("expected no control characters (newlines, tabs, ...)".to_string())
    } else if value.starts_with('-') {
        Some("expected a value that does not start with `-` (it would be taken for an option)".into())
    } else if value.chars().count() > MAX_LEN {
        Some(format!("expected at most {MAX_LEN} characters"))
    } else {
        None
    };
    match problem {
        Some(p) => Err(ConfigError(format!("{what}: {p}"))),
        None => Ok(()),
    }
}

/// The user from the arguments (all four) or else from env.yml's `ecs.first_user`; every
/// value checked, errors naming the argument or the key.
pub fn user(args: &Args, env: &LoadedEnv, env_name: &str) -> Result<User, ConfigError> {
    let given = [&args.email, &args.first_name, &args.last_name, &args.gender];
    let (user, names) = if given.iter().all(|v| v.is_some()) {
        let u = User {
            email: args.email.clone().unwrap_or_default(),
            first_name: args.first_name.clone().unwrap_or_default(),
            last_name: args.last_name.clone().unwrap_or_default(),
            gender: args.gender.clone().unwrap_or_default(),
        };
        (
            u,
            ["--email", "--first-name", "--last-name", "--gender"].map(String::from),
        )
    } else if given.iter().any(|v| v.is_some()) {
        return Err(ConfigError(
            "arguments: expected all of --email, --first-name, --last-name and --gender, \
             or none of them (then env.yml's ecs.first_user)"
                .into(),
        ));
    } else {
        let Some(f) = &env.settings.first_user else {
            return Err(ConfigError(format!(
                "{env_name}: key ecs.first_user: missing (expected email, first_name, last_name and \
                 gender of the office's first user), and no --email, --first-name, --last-name, --gender given"
            )));
        };
        let gender = match f.gender {
            appliance_env::Gender::Female => "f",
            appliance_env::Gender::Male => "m",
        };
        let u = User {
            email: f.email.clone(),
            first_name: f.first_name.clone(),
            last_name: f.last_name.clone(),
            gender: gender.into(),
        };
        let key = |k: &str| format!("{env_name}: key ecs.first_user.{k}");
        (u, ["email", "first_name", "last_name", "gender"].map(key))
    };
    let values = [&user.email, &user.first_name, &user.last_name, &user.gender];
    for (name, value) in names.iter().zip(values) {
        check_value(name, value)?;
    }
    appliance_env::check_email(&user.email).map_err(|e| ConfigError(format!("{}: {e}", names[0])))?;
    let gender = user.gender.to_ascii_lowercase();
    if gender != "f" && gender != "m" {
        return Err(ConfigError(format!(
            "{}: expected f or m, found `{}`",
            names[3], user.gender
        )));
    }
    Ok(User { gender, ..user })
}

/// One SMTP reply (its last line's code and text), multi-line replies read to the end.
fn smtp_reply(r: &mut impl BufRead) -> anyhow::Result<(u16, String)> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            anyhow::bail!("the connection closed");
        }
        let line = line.trim_end();
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        match (code, line.as_bytes().get(3)) {
            (Some(_), Some(b'-')) => continue,
            (Some(code), _) => return Ok((code, line.to_string())),
            (None, _) => anyhow::bail!("expected an SMTP reply, found {line:?}"),
        }
    }
}

/// Whether the relay takes mail at 127.0.0.1:`port`: its greeting, a NOOP, QUIT.
pub fn relay_answers(port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).context("connecting")?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let expect = |r: &mut BufReader<TcpStream>, want: u16, after: &str| -> anyhow::Result<()> {
        let (code, text) = smtp_reply(r).with_context(|| format!("reading the reply to {after}"))?;
        if code != want {
            anyhow::bail!("expected {want} after {after}, found {text:?}");
        }
        Ok(())
    };
    expect(&mut reader, 220, "connecting")?;
    stream.write_all(b"NOOP\r\n")?;
    expect(&mut reader, 250, "NOOP")?;
    stream.write_all(b"QUIT\r\n")?;
    // The relay answered; how it says goodbye does not matter.
    let _ = smtp_reply(&mut reader);
    Ok(())
}

/// The hooks and the CA directory the command needs from the app's definition.
struct Plan<'a> {
    create_user: &'a [String],
    issue: &'a [String],
    ca_cert: std::path::PathBuf,
}

fn plan<'a>(ctx: &crate::context::Context, def: &'a AppDef) -> Result<Plan<'a>, ConfigError> {
    let missing = |key: &str, what: &str| {
        ConfigError(format!(
            "the app definition has no x-ecs.{key} ({what}): create-first-user needs it"
        ))
    };
    let create_user = def
        .hooks
        .create_user
        .as_deref()
        .ok_or_else(|| missing("hooks.create-user", "the command that creates the user"))?;
    let issue = def.hooks.issue_client_certificate.as_deref().ok_or_else(|| {
        missing(
            "hooks.issue-client-certificate",
            "the command that issues and mails the certificate",
        )
    })?;
    let ca = def.client_ca.as_ref().ok_or_else(|| {
        missing(
            "client-ca",
            "where the app keeps the CA that signs client certificates",
        )
    })?;
    Ok(Plan {
        create_user,
        issue,
        ca_cert: ctx.data_dir.join(&ca.dir).join(&ca.cert),
    })
}

/// The last non-empty line of a hook's output.
fn last_line(out: &str) -> &str {
    out.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// `serial=HEX` (as `openssl x509 -serial` prints it) among the last lines, if the hook printed it.
fn serial(out: &str) -> Option<String> {
    out.lines().rev().map(str::trim).find_map(|l| {
        let v = l.strip_prefix("serial=")?;
        (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_string())
    })
}

/// `ecs-agent create-first-user`.
pub fn command(job: &mut Job, args: &Args) -> anyhow::Result<String> {
    let ctx = job.ctx;
    let env_name = ctx.active_env.display().to_string();
    let user = user(args, &job.env, &env_name)?;
    job.detail("email", user.email.clone());
    job.require_running()?;
    let (compose, def) = crate::start::project(ctx, &job.env)?;
    let plan = plan(ctx, &def)?;
    if !plan.ca_cert.is_file() {
        return Err(Refused(format!(
            "the app's CA is not there yet ({} is missing): the app or the start's client-ca step \
             makes it; see `ecs-agent status`, then run create-first-user again",
            plan.ca_cert.display()
        ))
        .into());
    }
    if let Err(e) = relay_answers(ctx.mail_port) {
        return Err(Refused(format!(
            "the appliance's mail relay does not answer at 127.0.0.1:{} ({e:#}): the certificate \
             could not be mailed; see `ecs-agent status`, then run create-first-user again",
            ctx.mail_port
        ))
        .into());
    }
    let password = TransportPassword::generate()?;
    let service = &def.hooks.service;

    let mut argv = plan.create_user.to_vec();
    argv.extend([&user.email, &user.first_name, &user.last_name, &user.gender].map(String::clone));
    let out = compose
        .run(service, &argv)
        .context("creating the user (hook x-ecs.hooks.create-user)")?;
    let created = match last_line(&out) {
        "created" => true,
        "existed" => false,
        other => anyhow::bail!(
            "hook x-ecs.hooks.create-user: expected `created` or `existed` as its last line, found {other:?}"
        ),
    };
    let word = if created { "created" } else { "existed" };
    job.detail("user", word);
    job.checkpoint();

    let mut argv = plan.issue.to_vec();
    argv.extend([user.email.clone(), CERT_DAYS.to_string()]);
    let input = format!("{}\n", password.reveal());
    let out = compose
        .run_input(service, &argv, input.as_bytes())
        .map_err(|e| anyhow::anyhow!(password.redact(&format!("{e:#}"))))
        .context("issuing and mailing the client certificate (hook x-ecs.hooks.issue-client-certificate)")?;
    let serial = serial(&out);
    job.detail("certificate_days", CERT_DAYS);
    if let Some(s) = &serial {
        job.detail("certificate_serial", s.clone());
    }
    // The one place the password is shown: the operator's console.
    println!(
        "ecs-agent: transport password for {}: {}",
        user.email,
        password.reveal()
    );
    println!("ecs-agent: pass it on over another channel than mail; it is not shown again");
    Ok(format!(
        "user {} {word}; a client certificate{} valid {CERT_DAYS} day mailed to it as PKCS#12 \
         (its transport password was shown on the console)",
        user.email,
        serial.map(|s| format!(" (serial {s})")).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(first_user: Option<appliance_env::FirstUser>) -> LoadedEnv {
        LoadedEnv {
            settings: crate::envfile::Settings {
                first_user,
                ..Default::default()
            },
            vars: Default::default(),
            warnings: Vec::new(),
        }
    }

    fn args(v: [&str; 4]) -> Args {
        Args {
            email: Some(v[0].into()),
            first_name: Some(v[1].into()),
            last_name: Some(v[2].into()),
            gender: Some(v[3].into()),
        }
    }

    #[test]
    fn user_comes_from_all_arguments_or_env_yml() {
        let from_env = appliance_env::FirstUser {
            email: "office@example.org".into(),
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            gender: appliance_env::Gender::Female,
        };
        let u = user(&Args::default(), &env(Some(from_env.clone())), "env.yml").unwrap();
        assert_eq!((u.email.as_str(), u.gender.as_str()), ("office@example.org", "f"));
        let u = user(
            &args(["a@example.org", "Max", "Muster", "M"]),
            &env(Some(from_env)),
            "env.yml",
        )
        .unwrap();
        assert_eq!((u.email.as_str(), u.gender.as_str()), ("a@example.org", "m"));

        let e = user(&Args::default(), &env(None), "/run/active-env.yml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/run/active-env.yml: key ecs.first_user: missing"),
            "{e}"
        );
        let some = Args {
            email: Some("a@example.org".into()),
            ..Default::default()
        };
        let e = user(&some, &env(None), "env.yml").unwrap_err().to_string();
        assert!(e.contains("expected all of --email"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let cases = [
            (
                ["not-an-address", "A", "B", "f"],
                "--email: expected an email address",
            ),
            (
                ["a@example.org", "--help", "B", "f"],
                "--first-name: expected a value that does not start with `-`",
            ),
            (
                ["a@example.org", "A", "B\nBcc: x@y.org", "f"],
                "--last-name: expected no control characters",
            ),
            (["a@example.org", "A", " ", "f"], "--last-name: expected a value"),
            (["a@example.org", "A", "B", "x"], "--gender: expected f or m"),
            (
                ["-a@example.org", "A", "B", "f"],
                "--email: expected a value that does not start",
            ),
        ];
        for (v, want) in cases {
            let e = user(&args(v), &env(None), "env.yml").unwrap_err().to_string();
            assert!(e.contains(want), "{v:?}: {e}");
        }
        let bad_env = appliance_env::FirstUser {
            email: "office@example.org".into(),
            first_name: "-rf".into(),
            last_name: "Doe".into(),
            gender: appliance_env::Gender::Male,
        };
        let e = user(&Args::default(), &env(Some(bad_env)), "env.yml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("env.yml: key ecs.first_user.first_name: expected a value that does not"),
            "{e}"
        );
    }

    #[test]
    fn password_has_120_bits_from_the_alphabet_and_hides_in_debug() {
        let a = TransportPassword::generate().unwrap();
        let b = TransportPassword::generate().unwrap();
        assert_eq!(a.reveal().len(), PASSWORD_LEN);
        assert_ne!(a.reveal(), b.reveal());
        assert!(a.reveal().bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(ALPHABET.len(), 32);
        let mut sorted = ALPHABET.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 32, "no symbol twice");
        const { assert!(PASSWORD_LEN * 5 >= 120 && PASSWORD_LEN >= 15) };
        assert!(!format!("{a:?}").contains(a.reveal()));
        assert_eq!(
            a.redact(&format!("x {} y", a.reveal())),
            "x [transport password] y"
        );
    }

    #[test]
    fn hook_output_is_read_from_its_last_lines() {
        assert_eq!(last_line("noise\ncreated\n\n"), "created");
        assert_eq!(serial("mailed\nserial=0A1F\n").as_deref(), Some("0A1F"));
        assert_eq!(serial("serial=xyz\n"), None);
        assert_eq!(serial("mailed\n"), None);
    }

    /// The default ECS template has both hooks, their Python compiles, and they take the
    /// arguments the command appends.
    #[test]
    fn ecs_template_has_the_hooks() {
        let def =
            crate::appdef::parse(std::path::Path::new("default"), crate::appdef::DEFAULT_TEMPLATE).unwrap();
        assert!(def.client_ca.is_some());
        for hook in [
            def.hooks.create_user.unwrap(),
            def.hooks.issue_client_certificate.unwrap(),
        ] {
            assert_eq!(hook[..3], ["run", "python", "-c"]);
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; compile(sys.argv[1], 'hook', 'exec')", &hook[3]])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(
                hook[3].contains("sys.argv[1"),
                "the hook reads its appended arguments"
            );
        }
    }

    #[test]
    fn relay_check_speaks_smtp() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"220-relay\r\n220 ready\r\n").unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut got = Vec::new();
            for reply in [&b"250 ok\r\n"[..], b"221 bye\r\n"] {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                got.push(line);
                s.write_all(reply).unwrap();
            }
            got
        });
        relay_answers(port).unwrap();
        assert_eq!(t.join().unwrap(), ["NOOP\r\n", "QUIT\r\n"]);
        // Nothing listens there any more.
        let e = format!("{:#}", relay_answers(port).unwrap_err());
        assert!(e.contains("connecting"), "{e}");
        // Something that is not an SMTP server.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        });
        let e = format!("{:#}", relay_answers(port).unwrap_err());
        assert!(e.contains("expected an SMTP reply"), "{e}");
    }
}
