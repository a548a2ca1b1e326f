//! Test harness: `Appliance`, one temp tree standing in for an appliance's /data, /volatile,
//! /run and /app, driven through the real `ecs-agent` binary, against the private dockerd with
//! the fixture images from e2e_tests::docker. Shared by the test binaries; everything is built
//! once per run.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use host_util::{CommandExt, Tool};
use sha2::{Digest, Sha256};

pub use e2e_tests::docker::Harness;

pub mod smtp;

pub const COMPOSE: Tool = Tool::new("docker-compose", "docker-compose");
pub const CURL: Tool = Tool::new("curl", "curl");
pub const GPG: Tool = Tool::new("gpg", "gnupg");
pub const DUPLICITY: Tool = Tool::new("duplicity", "duplicity");
pub const NGINX: Tool = Tool::new("nginx", "nginx-light");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn need(tool: Tool) -> PathBuf {
    tool.path().unwrap_or_else(|e| panic!("{e}"))
}

/// `docker` talking to the shared dockerd at `host`.
pub fn docker(host: &str) -> Command {
    e2e_tests::docker::command(host)
}

pub fn require_root() {
    assert!(
        e2e_tests::is_root(),
        "these tests start dockerd, nginx and loop devices: run them as root (CI does)"
    );
}

/// The shared dockerd with the fixture images (e2e_tests::docker), plus the tools the agent
/// tests drive; started (or reused) once per test process.
pub fn harness() -> &'static Harness {
    require_root();
    need(COMPOSE);
    need(NGINX);
    e2e_tests::docker::harness()
}

/// An IPv4 address of this host that containers reach through their network's gateway (the
/// source address of the default route): the tests' dockerd has no default bridge, so docker's
/// `host-gateway` has no value; the context's mail-gateway takes this instead.
pub fn host_address() -> String {
    static ADDR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ADDR.get_or_init(|| {
        let run = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        // No packet is sent: `route get` only asks which source address a route would use.
        let route = run(&["-4", "route", "get", "1.1.1.1"]);
        let words: Vec<&str> = route.split_whitespace().collect();
        let global = run(&["-4", "-o", "addr", "show", "scope", "global"]);
        words
            .windows(2)
            .find(|w| w[0] == "src")
            .map(|w| w[1].to_string())
            .or_else(|| {
                let w: Vec<&str> = global.split_whitespace().collect();
                w.windows(2)
                    .find(|w| w[0] == "inet")
                    .and_then(|w| w[1].split('/').next().map(str::to_string))
            })
            // Only the mail test needs it reachable; the others need a valid address.
            .unwrap_or_else(|| "127.0.0.1".into())
    })
    .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temp tree standing in for one appliance, with its own ports and compose project.
pub struct Appliance {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub http: u16,
    pub https: u16,
    pub upstream: u16,
    /// The mail ports (context smtp-port, smtps-port, mail-port, smtpd-port), free ones.
    pub smtp: u16,
    pub smtps: u16,
    pub mail_port: u16,
    pub smtpd: u16,
    /// Run the mail relay (step mail); off unless a test turns it on (`with_mail`).
    pub mail: bool,
    pub docker_host: String,
    /// Extra context keys (YAML lines).
    pub extra_context: Vec<String>,
}

pub const DOMAIN: &str = "appliance.example.org";

/// `appliance.database.password` of every test env.yml (unless a test writes its own).
pub const DB_PASSWORD: &str = "fixture-db-password-7f3a9c";

/// Syntactically valid stand-ins for key material the start sequence does not use.
const DUMMY_PEM: &str = "-----BEGIN PRIVATE KEY-----\n      Zml4dHVyZQ==\n      -----END PRIVATE KEY-----";
const DUMMY_PGP: &str =
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n      Zml4dHVyZQ==\n      -----END PGP PRIVATE KEY BLOCK-----";

/// An env.yml for the test domain: `extra_appliance` and `extra_ecs` are lines indented by two
/// spaces; a `  backup:` section in `extra_appliance` replaces the dummy one, a `  git:` section
/// in `extra_ecs` the fixture app's version (branch v1).
pub fn env_text(extra_appliance: &str, extra_ecs: &str) -> String {
    let backup = if extra_appliance.contains("\n  backup:") || extra_appliance.starts_with("  backup:") {
        String::new()
    } else {
        format!("  backup:\n    url: file:///nonexistent\n    encrypt: |\n      {DUMMY_PGP}\n")
    };
    let database = if extra_appliance.contains("  database:") {
        String::new()
    } else {
        format!("  database:\n    password: {DB_PASSWORD}\n")
    };
    // The fixture's app version (its image tag, agent/fixtures/app/compose.yml).
    let git = if extra_ecs.contains("  git:") {
        ""
    } else {
        "  git:\n    branch: v1\n"
    };
    format!(
        "#cloud-config\nappliance:\n  domain: {DOMAIN}\n  dkim:\n    key: |\n      {DUMMY_PEM}\n{backup}{database}{extra_appliance}\
         ecs:\n  settings: \"# fixture\"\n  vault_encrypt: |\n    {v}\n  vault_sign: |\n    {v}\n{git}{extra_ecs}",
        v = DUMMY_PGP.replace("\n      ", "\n    "),
    )
}

impl Appliance {
    pub fn new(name: &str) -> Appliance {
        let h = harness();
        let dir = tempfile::Builder::new()
            .prefix(&format!("ecs-agent-{name}-"))
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["data", "volatile", "run", "app", "images"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::copy(fixtures().join("app/compose.yml"), dir.path().join("compose.yml")).unwrap();
        Appliance {
            name: format!("t{}{}", name.replace(['-', '_'], ""), std::process::id()),
            dir,
            http: free_port(),
            https: free_port(),
            upstream: free_port(),
            smtp: free_port(),
            smtps: free_port(),
            mail_port: free_port(),
            smtpd: free_port(),
            mail: false,
            docker_host: h.docker_host.clone(),
            extra_context: Vec::new(),
        }
    }

    /// Turns the mail relay on (step mail): its postfix and opendkim live under this tree.
    pub fn with_mail(mut self) -> Appliance {
        self.mail = true;
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn context_file(&self) -> PathBuf {
        let p = self.path("context.yml");
        let text = format!(
            "run-dir: {r}/run/ecs\nactive-env: {r}/run/active-env.yml\napp-env: {r}/app/env.yml\nseed-devices: []\n\
             data-dir: {r}/data\nvolatile-dir: {r}/volatile\nstorage: directories\ndocker-host: {dh}\n\
             project: {p}\nimages-dir: {r}/images\ncompose-template: {r}/compose.yml\nlisten-address: 127.0.0.1\nhttp-port: {h}\n\
             https-port: {s}\nupstream-port: {u}\ndatabase-timeout-secs: 60\nhealth-timeout-secs: 120\n\
             systemd-run-dir: null\nlisten-address-v6: \"::1\"\naccess-log-socket: null\nfirewall: false\n\
             mail: {mail}\nsmtp-port: {smtp}\nsmtps-port: {smtps}\nmail-port: {mp}\n\
             smtpd-port: {smtpd}\nmail-queue-dir: {r}/volatile/mail-queue\nmail-gateway: {gw}\n",
            r = self.dir.path().display(),
            dh = self.docker_host,
            p = self.name,
            h = self.http,
            s = self.https,
            u = self.upstream,
            mail = self.mail,
            smtp = self.smtp,
            smtps = self.smtps,
            mp = self.mail_port,
            smtpd = self.smtpd,
            gw = host_address(),
        );
        // Extra lines replace the defaults with the same key.
        let key = |l: &str| l.split(':').next().unwrap_or_default().to_string();
        let mut text: String = text
            .lines()
            .filter(|l| !self.extra_context.iter().any(|x| key(x) == key(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        for l in &self.extra_context {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes /app/env.yml (see `env_text`).
    pub fn write_env(&self, extra_appliance: &str, extra_ecs: &str) {
        std::fs::write(self.path("app/env.yml"), env_text(extra_appliance, extra_ecs)).unwrap();
    }

    pub fn agent(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_ecs-agent"))
            .arg("--context")
            .arg(self.context_file())
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "--- ecs-agent {args:?} exit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `ecs-agent start`; prints a `bench:` line (seconds from start to healthy, and per
    /// step) that scripts/bench/agent.sh collects.
    pub fn start(&self) -> Output {
        let out = self.agent(&["start"]);
        if let Ok(bytes) = std::fs::read(self.path("run/ecs/status.json"))
            && let Ok(s) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && s["phase"] == "running"
        {
            let steps = s["steps"].as_array().cloned().unwrap_or_default();
            let end = steps
                .iter()
                .filter_map(|x| x["finished"].as_f64())
                .fold(0.0, f64::max);
            let per: Vec<String> = steps
                .iter()
                .map(|x| {
                    let took = x["finished"].as_f64().unwrap_or(0.0) - x["started"].as_f64().unwrap_or(0.0);
                    format!("{}={took:.1}", x["name"].as_str().unwrap_or("?"))
                })
                .collect();
            let total = end - s["started"].as_f64().unwrap_or(end);
            eprintln!("bench: {} total={total:.1} {}", self.name, per.join(" "));
        }
        out
    }

    /// The app version the agent runs: update-ecs's record, else env.yml's (v1).
    pub fn app_version(&self) -> String {
        std::fs::read(self.path("data/etc/ecs-agent/lifecycle.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|l| l["facts"]["app-version"].as_str().map(str::to_string))
            .unwrap_or_else(|| "v1".into())
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("run/ecs/status.json")).unwrap()).unwrap()
    }

    pub fn step_state(&self, name: &str) -> (String, String) {
        let s = self.status();
        let step = s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()
            .clone();
        (
            step["state"].as_str().unwrap().to_string(),
            step["message"].as_str().unwrap().to_string(),
        )
    }

    /// The public page says the state ("failed") and `class`, and none of `hidden`, which
    /// status.json (0600) holds; no path of the appliance either.
    pub fn assert_public_page(&self, https: bool, class: &str, hidden: &[&str]) {
        let a = self;
        let (code, body) = a.get(https, "/");
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("The appliance failed to start") && body.contains(&format!("(reason: {class})")),
            "{body}"
        );
        let status = std::fs::read_to_string(a.path("run/ecs/status.json")).unwrap();
        for h in hidden {
            assert!(status.contains(h), "status.json lacks {h:?}: {status}");
            assert!(!body.contains(h), "the public page shows {h:?}: {body}");
        }
        let dir = a.dir.path().display().to_string();
        assert!(!body.contains(&dir), "the public page shows a path: {body}");
        let mode = std::fs::metadata(a.path("run/ecs/status.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "status.json is root's alone");
        assert_eq!(a.status()["reason"], class);
    }

    pub fn compose(&self) -> Command {
        let mut c = Command::new(need(COMPOSE));
        c.env("DOCKER_HOST", &self.docker_host)
            .env("AGENT_DATA_DIR", self.path("data"))
            .env("AGENT_DUMP_DIR", self.path("data/dump/ecs-postgres"))
            .env("AGENT_UPSTREAM_PORT", self.upstream.to_string())
            .env("AGENT_SMTPD_PORT", self.smtpd.to_string())
            .env("AGENT_MAIL_HOST", "host.docker.internal")
            .env("AGENT_MAIL_PORT", self.mail_port.to_string())
            .env("AGENT_MAIL_GATEWAY", host_address())
            .env("APPLIANCE_DATABASE", "ecs")
            .env("APPLIANCE_DATABASE_PASSWORD", DB_PASSWORD)
            .env("AGENT_APP_TAG", self.app_version())
            .args(["--ansi", "never", "-p", &self.name, "-f"])
            .arg(self.path("compose.yml"));
        c
    }

    /// SQL as the superuser in the running database service.
    pub fn psql(&self, sql: &str) -> String {
        self.compose()
            .args([
                "exec", "-T", "db", "psql", "-X", "-U", "postgres", "-d", "ecs", "-tAc", sql,
            ])
            .run_stdout()
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    }

    /// Each table of the app database (public schema) with its row count and a checksum of its
    /// rows' text (`table_digests`): equal fingerprints mean equal content.
    pub fn db_fingerprint(&self) -> BTreeMap<String, (u64, String)> {
        table_digests(self)
    }

    /// The lifecycle records (data/etc/ecs-agent/lifecycle.json).
    pub fn lifecycle(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("data/etc/ecs-agent/lifecycle.json")).unwrap())
            .unwrap()
    }

    /// `compose run --rm -T --no-deps web python3 /app/fixture_app.py`: a fixture command in a
    /// one-off app container; append its arguments.
    pub fn app_command(&self) -> Command {
        let mut cmd = self.compose();
        cmd.args([
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "web",
            "python3",
            "/app/fixture_app.py",
        ]);
        cmd
    }

    pub fn app(&self, args: &[&str]) {
        self.app_command()
            .args(args)
            .run_checked()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// (status code, body) of a GET through the frontend; `https` selects the port.
    pub fn get(&self, https: bool, path: &str) -> (u16, String) {
        let url = if https {
            format!("https://{DOMAIN}:{}{path}", self.https)
        } else {
            format!("http://{DOMAIN}:{}{path}", self.http)
        };
        let port = if https { self.https } else { self.http };
        let out = Command::new(need(CURL))
            .args([
                "-sS",
                "-k",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--resolve",
            ])
            .arg(format!("{DOMAIN}:{port}:127.0.0.1"))
            .arg(&url)
            .run_stdout()
            .unwrap_or_else(|e| panic!("{e}"));
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    /// The certificate the frontend serves (PEM text of `openssl s_client`'s peer).
    pub fn served_issuer(&self) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo | openssl s_client -connect 127.0.0.1:{} -servername {DOMAIN} 2>/dev/null | openssl x509 -noout -issuer",
                self.https
            ))
            .run_stdout()
            .unwrap();
        out.trim().to_string()
    }

    pub fn stop(&self) {
        let _ = self.compose().args(["down", "--remove-orphans"]).run_checked();
        if self.mail {
            let conf = self.path("run/ecs/mail/postfix");
            if conf.join("main.cf").exists() {
                let _ = Command::new("postfix")
                    .arg("-c")
                    .arg(&conf)
                    .arg("stop")
                    .run_checked();
            }
            if let Ok(pid) = std::fs::read_to_string(self.path("run/ecs/mail/opendkim/opendkim.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).run_checked();
            }
        }
        let conf = self.path("run/ecs/frontend/nginx.conf");
        if self.path("run/ecs/frontend/nginx.pid").exists() {
            let _ = Command::new(need(NGINX))
                .arg("-c")
                .arg(&conf)
                .args(["-s", "stop"])
                .run_checked();
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// sha256 of every file under `dir`, by relative path.
pub fn checksums(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub const LOSETUP: Tool = Tool::new("losetup", "mount");
pub const PARTX: Tool = Tool::new("partx", "util-linux");

/// A loop device over an image file, detached on drop.
pub struct Loop(pub PathBuf);

impl Loop {
    /// Attaches `image` read-write.
    pub fn attach(image: &Path) -> Loop {
        Loop::attach_with(image, &[])
    }

    /// Attaches `image` read-only (`losetup -r`): what a test must not change.
    pub fn attach_read_only(image: &Path) -> Loop {
        Loop::attach_with(image, &["-r"])
    }

    fn attach_with(image: &Path, extra: &[&str]) -> Loop {
        require_root();
        let dev = LOSETUP
            .command()
            .unwrap_or_else(|e| panic!("{e}"))
            .args(["-f", "--show"])
            .args(extra)
            .arg(image)
            .run_stdout()
            .unwrap_or_else(|e| panic!("{e}"));
        Loop(PathBuf::from(dev.trim()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // Partitions told to the kernel with partx outlive the detach; the next user of this
        // loop device would find them.
        if let Ok(mut c) = PARTX.command() {
            let _ = c.arg("--delete").arg(&self.0).run_checked();
        }
        if let Ok(mut c) = LOSETUP.command() {
            let _ = c.arg("-d").arg(&self.0).run_checked();
        }
    }
}

/// The env.yml of a real `ecs-build config new` for DOMAIN (made once per test process): the
/// tests use the key material operators get, not keys the tests made.
pub fn config_new_env() -> &'static appliance_env::Env {
    static ENV: std::sync::OnceLock<appliance_env::Env> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = Command::new(e2e_tests::workspace_binary("ecs-build"))
            .args(["config", "new", "--domain", DOMAIN, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ecs-build config new: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(out.join("env.yml")).unwrap();
        appliance_env::Env::from_yaml_str(&text, "env.yml").unwrap().0
    })
}

/// `appliance.backup.encrypt` of `config_new_env`: the backups and restores of the tests use
/// the key material operators get.
pub fn config_new_backup_key() -> &'static str {
    &config_new_env().appliance.backup.encrypt
}

/// The backup key of `config_new_backup_key` imported into the GnuPG home `home`:
/// (fingerprint, armored secret key).
pub fn backup_key(home: &Path) -> (String, String) {
    let key = config_new_backup_key().to_string();
    let file = home.join("ecs_backup.asc");
    std::fs::write(&file, &key).unwrap();
    let gpg = || {
        let mut c = Command::new(need(GPG));
        c.arg("--batch").arg("--homedir").arg(home);
        c
    };
    gpg().arg("--import").arg(&file).run_checked().unwrap();
    std::fs::remove_file(&file).unwrap();
    let colons = gpg()
        .args(["--with-colons", "--list-secret-keys"])
        .run_stdout()
        .unwrap();
    let fpr = colons
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_string();
    (fpr, key)
}

pub fn indent(text: &str, by: usize) -> String {
    text.lines().map(|l| format!("{}{l}\n", " ".repeat(by))).collect()
}

/// Where a test's backups go (a file:// target) and the key they are encrypted to.
pub struct BackupTarget {
    /// The GnuPG home with the secret key (and duplicity's archive dir).
    pub keys: tempfile::TempDir,
    pub fpr: String,
    pub key: String,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl BackupTarget {
    pub fn new() -> BackupTarget {
        let keys = tempfile::tempdir().unwrap();
        let (fpr, key) = backup_key(keys.path());
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        BackupTarget {
            keys,
            fpr,
            key,
            dir,
            url,
        }
    }

    /// env.yml's `appliance.backup` for this target (two-space indented, for `write_env`).
    pub fn env_section(&self) -> String {
        format!(
            "  backup:\n    url: {}\n    encrypt: |\n{}",
            self.url,
            indent(&self.key, 6)
        )
    }
}

/// A backup of `app` (running, its env.yml carrying `target.env_section()`) to `target`, made
/// by `ecs-agent backup` itself: every test that restores reads what the command wrote.
pub fn make_backup(app: &Appliance, target: &BackupTarget) {
    let out = app.agent(&["backup"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "ecs-agent backup: {text}");
    assert!(text.contains("ecs-agent: backup ok: "), "{text}");
    let env = std::fs::read_to_string(app.path("run/active-env.yml")).unwrap();
    assert!(
        env.contains(&target.url),
        "the appliance's env.yml does not back up to {}: write it with target.env_section()",
        target.url
    );
}

/// Tables the fixture's hooks write at every migrate (one row per run): a restore adds to them.
pub const HOOK_TABLES: &[&str] = &["hook_runs", "migrations"];

/// Every table of the app database's public schema: (row count, md5 of its rows in order).
pub fn table_digests(app: &Appliance) -> BTreeMap<String, (u64, String)> {
    let tables = app.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    tables
        .lines()
        .map(|t| {
            let row = app.psql(&format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '-') FROM \"{t}\" x"
            ));
            let (n, md5) = row.split_once(' ').unwrap();
            (t.to_string(), (n.parse().unwrap(), md5.to_string()))
        })
        .collect()
}

/// `table_digests` without the hooks' own tables: the data a restore must give back exactly.
pub fn app_data(app: &Appliance) -> BTreeMap<String, (u64, String)> {
    let mut d = table_digests(app);
    d.retain(|t, _| !HOOK_TABLES.contains(&t.as_str()));
    d
}

/// A one-shot HTTP server standing in for Sentry: returns the request it got.
pub fn sentry_listener() -> (u16, std::thread::JoinHandle<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut s, &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                }
            }
        }
        std::io::Write::write_all(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    });
    (port, h)
}
