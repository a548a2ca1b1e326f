//! Step app-dirs: what the app's containers expect to find under /data before they start.
//!
//! `x-ecs.data-dirs` are directories the app mounts (ECS: its CA), created if missing and given
//! the owner and mode of the user the app runs as inside its container, at every start.
//!
//! `x-ecs.keyrings` are GnuPG homes (ECS: the storage vault's ecs-gpg) rebuilt from the keys in
//! env.yml at every start, as the original's prepare_storagevault did: env.yml stays the only
//! source of the keys. The new keyring is imported next to the old one, checked against the
//! fingerprints GnuPG 2 reads from env.yml, and only then swapped in, so a bad key fails the
//! step and leaves the previous keyring as it was. Key material goes to gpg on stdin only and
//! never into a message.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use host_util::{AtomicDir, CommandError, CommandExt, Tool};
use serde::Deserialize;

use crate::appdef::AppDef;
use crate::tools::GPG;
use crate::userdata::ConfigError;

/// GnuPG 1.4, for keyrings the app reads with 1.4 (ECS's container is Ubuntu xenial).
pub const GPG1: Tool = Tool::new("gpg1", "gnupg1");
pub const GPGCONF: Tool = Tool::new("gpgconf", "gpgconf");

/// `x-ecs.data-dirs[]`: a directory under the data dir with its owner and mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DataDir {
    /// Relative to the data dir.
    pub path: String,
    /// `uid:gid` as numbers: the ids the app has inside its container, not the host's names.
    pub owner: String,
    /// Octal, e.g. `"0700"`.
    pub mode: String,
}

/// Which GnuPG reads the keyring: 1.4 keeps pubring.gpg/secring.gpg, 2.x a keybox and
/// private-keys-v1.d. Each is written by its own version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Gnupg1,
    Gnupg2,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Gnupg1 => "gnupg1",
            Format::Gnupg2 => "gnupg2",
        }
    }
}

/// `x-ecs.keyrings[]`: a GnuPG home holding exactly the listed env.yml keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Keyring {
    /// Relative to the data dir.
    pub dir: String,
    pub format: Format,
    /// `uid:gid` as numbers.
    pub owner: String,
    /// Flattened env.yml names (e.g. ECS_VAULT_ENCRYPT) of ASCII-armored secret keys.
    pub keys: Vec<String>,
}

/// A checked `x-ecs.data-dirs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirPlan {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A checked `x-ecs.keyrings` entry; `key` is its name in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPlan {
    pub key: String,
    pub dir: PathBuf,
    pub format: Format,
    pub uid: u32,
    pub gid: u32,
    pub keys: Vec<String>,
}

/// A path below the data dir: relative, without `..` or `.`, not empty.
pub(crate) fn rel_path(key: &str, value: &str) -> Result<PathBuf, String> {
    let p = Path::new(value);
    let ok = !value.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(format!(
            "key {key}: expected a path relative to the data dir without `..` (e.g. ecs-ca), found {value:?}"
        ));
    }
    Ok(p.to_path_buf())
}

fn owner(key: &str, value: &str) -> Result<(u32, u32), String> {
    value
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
        .ok_or_else(|| {
            format!("key {key}: expected `uid:gid` as numbers (e.g. \"1000:1000\"), found {value:?}")
        })
}

fn mode(key: &str, value: &str) -> Result<u32, String> {
    let octal = (1..=4).contains(&value.len()) && value.chars().all(|c| ('0'..='7').contains(&c));
    u32::from_str_radix(value, 8)
        .ok()
        .filter(|_| octal)
        .ok_or_else(|| format!("key {key}: expected an octal mode (e.g. \"0700\"), found {value:?}"))
}

fn env_name(key: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "key {key}: expected a flattened env.yml name (e.g. ECS_VAULT_ENCRYPT), found {value:?}"
        ))
    }
}

/// Checks `x-ecs.data-dirs` and `x-ecs.keyrings`; errors name the key and what was expected.
pub fn plan(def: &AppDef) -> Result<(Vec<DirPlan>, Vec<RingPlan>), String> {
    let mut dirs = Vec::new();
    for (i, d) in def.data_dirs.iter().enumerate() {
        let key = format!("x-ecs.data-dirs[{i}]");
        let (uid, gid) = owner(&format!("{key}.owner"), &d.owner)?;
        dirs.push(DirPlan {
            path: rel_path(&format!("{key}.path"), &d.path)?,
            uid,
            gid,
            mode: mode(&format!("{key}.mode"), &d.mode)?,
        });
    }
    let mut rings: Vec<RingPlan> = Vec::new();
    for (i, r) in def.keyrings.iter().enumerate() {
        let key = format!("x-ecs.keyrings[{i}]");
        let dir = rel_path(&format!("{key}.dir"), &r.dir)?;
        if let Some(o) = rings
            .iter()
            .find(|o| o.dir.starts_with(&dir) || dir.starts_with(&o.dir))
        {
            return Err(format!(
                "key {key}.dir: {:?} overlaps {}.dir (expected separate directories)",
                r.dir, o.key
            ));
        }
        if r.keys.is_empty() {
            return Err(format!(
                "key {key}.keys: expected at least one env.yml key name, found an empty list"
            ));
        }
        for (j, k) in r.keys.iter().enumerate() {
            env_name(&format!("{key}.keys[{j}]"), k)?;
        }
        let (uid, gid) = owner(&format!("{key}.owner"), &r.owner)?;
        rings.push(RingPlan {
            key,
            dir,
            format: r.format,
            uid,
            gid,
            keys: r.keys.clone(),
        });
    }
    // The keyring step replaces its directories whole: nothing else may live in them.
    for (i, d) in dirs.iter().enumerate() {
        if let Some(o) = rings.iter().find(|o| d.path.starts_with(&o.dir)) {
            return Err(format!(
                "key x-ecs.data-dirs[{i}].path: {:?} lies in {}.dir, which is rebuilt at every start \
                 (expected a directory outside the keyrings)",
                d.path, o.key
            ));
        }
    }
    Ok((dirs, rings))
}

/// The step: data dirs first, then every keyring. `vars` is env.yml flattened.
pub fn run(data_dir: &Path, def: &AppDef, vars: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let (dirs, rings) = plan(def).map_err(ConfigError)?;
    let mut done = Vec::new();
    for d in &dirs {
        ensure_dir(data_dir, d)?;
        done.push(format!("{} {}:{} {:04o}", d.path.display(), d.uid, d.gid, d.mode));
    }
    for r in &rings {
        let fprs = rebuild_keyring(data_dir, r, vars)?;
        done.push(format!(
            "keyring {} ({}): {}",
            r.dir.display(),
            r.format.name(),
            fprs.join(", ")
        ));
    }
    if done.is_empty() {
        return Ok("nothing to do (no x-ecs.data-dirs or x-ecs.keyrings)".into());
    }
    Ok(done.join("; "))
}

fn ensure_dir(base: &Path, d: &DirPlan) -> anyhow::Result<()> {
    let p = base.join(&d.path);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!("{}: exists and is not a directory (x-ecs.data-dirs)", p.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    }
    std::os::unix::fs::lchown(&p, Some(d.uid), Some(d.gid))
        .with_context(|| format!("changing the owner of {} to {}:{}", p.display(), d.uid, d.gid))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(d.mode))
        .with_context(|| format!("setting the mode of {} to {:04o}", p.display(), d.mode))?;
    Ok(())
}

/// `gpg --homedir <dir> --batch` of the format's GnuPG.
fn gpg(format: Format, home: &Path) -> anyhow::Result<Command> {
    let mut c = match format {
        Format::Gnupg1 => GPG1.command()?,
        Format::Gnupg2 => GPG.command()?,
    };
    c.arg("--homedir").arg(home).arg("--batch");
    Ok(c)
}

/// The gist of a failed gpg run: its last two stderr lines (gpg names keys by id and uid only,
/// never by their material); the full argv and stderr would drown the message.
fn gpg_said(e: &CommandError) -> String {
    match e {
        CommandError::Failed { status, stderr, .. } => {
            let lines: Vec<&str> = stderr.split(" | ").collect();
            format!(
                "gpg {status}: {}",
                lines[lines.len().saturating_sub(2)..].join(" | ")
            )
        }
        CommandError::Spawn { .. } => e.to_string(),
    }
}

/// Primary-key fingerprints of `sec` records in `--with-colons` output.
fn secret_fingerprints(colons: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sec = false;
    for line in colons.lines() {
        if in_sec
            && line.starts_with("fpr:")
            && let Some(f) = line.split(':').nth(9)
        {
            out.push(f.to_string());
        }
        in_sec = line.starts_with("sec:");
    }
    out
}

/// A scratch GnuPG home removed on drop, with any gpg-agent it started stopped first.
struct Scratch(PathBuf);

impl Scratch {
    fn create(path: PathBuf) -> anyhow::Result<Scratch> {
        if path.exists() {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        stop_agent(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// GnuPG 2 starts an agent per home for secret keys; it must not outlive the import.
fn stop_agent(home: &Path) {
    if let Ok(mut c) = GPGCONF.command() {
        let _ = c
            .arg("--homedir")
            .arg(home)
            .args(["--kill", "gpg-agent"])
            .run_checked();
    }
    // gpgconf returns when the agent was told to go; it removes its sockets on the way out. The
    // home is the app's keyring: no socket of a dead agent may be left in it, so wait (briefly).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let has_socket = || {
        fs::read_dir(home).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("S.gpg-agent"))
        })
    };
    while has_socket() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Stops the agent of the new keyring (on success and on failure) before the directory goes.
struct AgentGuard<'a>(&'a Path, Format);

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        if self.1 == Format::Gnupg2 {
            stop_agent(self.0);
        }
    }
}

/// `.<name>.<what>-*` next to `target`: what an interrupted earlier run left (temp, old or probe
/// homes, possibly holding secret keys).
fn remove_leftovers(target: &Path) -> anyhow::Result<()> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(());
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let ours = [".tmp-", ".old-", ".probe-"]
            .iter()
            .any(|w| file.starts_with(&format!(".{name}{w}")));
        if ours {
            let p = e.path();
            stop_agent(&p);
            fs::remove_dir_all(&p).with_context(|| format!("removing the leftover {}", p.display()))?;
        }
    }
    Ok(())
}

/// Builds the keyring afresh and swaps it in; returns `NAME fingerprint` per key.
fn rebuild_keyring(
    data_dir: &Path,
    r: &RingPlan,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<String>> {
    let target = data_dir.join(&r.dir);
    let shown = target.display().to_string();
    let bad = |m: String| anyhow::Error::new(ConfigError(format!("keyring {shown} ({}): {m}", r.key)));
    let mut keys = Vec::new();
    for name in &r.keys {
        match vars.get(name) {
            Some(text) if !text.trim().is_empty() => keys.push((name.as_str(), text.as_str())),
            _ => {
                return Err(bad(format!(
                    "{name} is not set in env.yml (expected an armored secret key)"
                )));
            }
        }
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    remove_leftovers(&target)?;
    let name = r
        .dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let sibling = |what: &str| target.with_file_name(format!(".{name}.{what}-{}", std::process::id()));

    // What the keys are, read by GnuPG 2 (which reads every OpenPGP key type) without importing.
    let probe = Scratch::create(sibling("probe"))?;
    let mut expected = Vec::new();
    for (name, text) in &keys {
        let out = gpg(Format::Gnupg2, &probe.0)?
            .args([
                "--no-autostart",
                "--with-colons",
                "--import-options",
                "show-only",
                "--import",
            ])
            .run_with_input(text.as_bytes())
            .map_err(|e| bad(format!("{name}: not a key GnuPG reads ({})", gpg_said(&e))))?;
        let fprs = secret_fingerprints(&String::from_utf8_lossy(&out.stdout));
        if fprs.is_empty() {
            return Err(bad(format!("{name}: expected an OpenPGP secret key, found none")));
        }
        expected.push((*name, fprs));
    }
    drop(probe);

    let new = AtomicDir::create(&target, 0o700, true)
        .with_context(|| format!("creating the new keyring next to {shown}"))?;
    let agent = AgentGuard(new.path(), r.format);
    for (name, text) in &keys {
        gpg(r.format, new.path())?
            .arg("--import")
            .run_with_input(text.as_bytes())
            .map_err(|e| {
                bad(format!(
                    "importing {name} with {}: {}",
                    r.format.name(),
                    gpg_said(&e)
                ))
            })?;
    }
    let listed = gpg(r.format, new.path())?
        .args(["--with-colons", "--fingerprint", "--list-secret-keys"])
        .run_stdout()
        .map_err(|e| bad(format!("listing the imported keys: {}", gpg_said(&e))))?;
    let have = secret_fingerprints(&listed);
    let mut summary = Vec::new();
    for (name, fprs) in &expected {
        for f in fprs {
            if !have.contains(f) {
                let hint = match r.format {
                    Format::Gnupg1 => {
                        " (GnuPG 1.4 reads RSA, DSA and Elgamal keys only, not Ed25519/Curve25519)"
                    }
                    Format::Gnupg2 => "",
                };
                return Err(bad(format!(
                    "{name}: secret key {f} is not usable in the {} keyring after import{hint}",
                    r.format.name()
                )));
            }
        }
        summary.push(format!("{name} {}", fprs.join(" ")));
    }
    if r.format == Format::Gnupg1 && !new.path().join("secring.gpg").is_file() {
        return Err(bad("gpg1 wrote no secring.gpg".into()));
    }
    drop(agent);
    finish_tree(new.path(), r.uid, r.gid)?;
    new.commit()
        .with_context(|| format!("replacing {shown} with the new keyring"))?;
    Ok(summary)
}

/// Files 0600 and directories 0700, owned by `uid:gid`; sockets and gpg's `~` backups dropped.
fn finish_tree(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    let ctx = |p: &Path| format!("fixing the owner and mode of {}", p.display());
    for e in fs::read_dir(dir).with_context(|| ctx(dir))? {
        let p = e.with_context(|| ctx(dir))?.path();
        let meta = fs::symlink_metadata(&p).with_context(|| ctx(&p))?;
        let stray = !meta.is_dir() && !meta.is_file() || p.to_string_lossy().ends_with('~');
        if stray {
            fs::remove_file(&p).with_context(|| ctx(&p))?;
        } else if meta.is_dir() {
            finish_tree(&p, uid, gid)?;
        } else {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).with_context(|| ctx(&p))?;
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).with_context(|| ctx(&p))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).with_context(|| ctx(dir))?;
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).with_context(|| ctx(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::appdef::{self, DEFAULT_TEMPLATE};

    const SERVICES: &str = "services:\n  db: {image: x}\nx-ecs:\n  database: {service: db, owner: app, dump-dir: /d}\n  hooks: {service: db, migrate: [m]}\n  app: [db]\n";

    fn parse(extra: &str) -> anyhow::Result<AppDef> {
        appdef::parse(Path::new("t.yml"), &format!("{SERVICES}{extra}"))
    }

    fn err(extra: &str) -> String {
        format!("{:#}", parse(extra).unwrap_err())
    }

    #[test]
    fn default_template_sets_up_ecs_ca_and_the_vault_keyring() {
        let def = appdef::parse(Path::new("default"), DEFAULT_TEMPLATE).unwrap();
        let (dirs, rings) = plan(&def).unwrap();
        let ca = dirs.iter().find(|d| d.path == Path::new("ecs-ca")).unwrap();
        assert_eq!((ca.uid, ca.gid, ca.mode), (1000, 1000, 0o700));
        assert_eq!(rings.len(), 1);
        assert_eq!(rings[0].dir, Path::new("ecs-gpg"));
        assert_eq!(rings[0].format, Format::Gnupg1);
        assert_eq!((rings[0].uid, rings[0].gid), (1000, 1000));
        // The names are what env.yml's ecs.vault_encrypt / ecs.vault_sign flatten to.
        let pgp = "|\n    -----BEGIN PGP PRIVATE KEY BLOCK-----\n\n    Zml4dHVyZQ==\n    -----END PGP PRIVATE KEY BLOCK-----";
        let pem = "|\n      -----BEGIN PRIVATE KEY-----\n      Zml4dHVyZQ==\n      -----END PRIVATE KEY-----";
        let env = format!(
            "#cloud-config\nappliance:\n  domain: a.example.org\n  dkim:\n    key: {pem}\n  backup:\n    url: file:///b\n    encrypt: {p}\n\
             ecs:\n  settings: \"# s\"\n  vault_encrypt: {pgp}\n  vault_sign: {pgp}\n",
            p = pgp.replace("\n    ", "\n      ")
        );
        let vars = crate::envfile::parse("env.yml", &env).unwrap().vars;
        for k in &rings[0].keys {
            assert!(vars.contains_key(k), "{k} is not a flattened env.yml name");
        }
    }

    #[test]
    fn no_entries_is_fine() {
        let def = parse("").unwrap();
        assert!(def.data_dirs.is_empty() && def.keyrings.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let msg = run(dir.path(), &def, &BTreeMap::new()).unwrap();
        assert!(msg.contains("nothing to do"), "{msg}");
    }

    #[test]
    fn bad_entries_are_named_with_their_key() {
        let dd = |path: &str, owner: &str, mode: &str| {
            err(&format!(
                "  data-dirs:\n    - {{path: ok}}\n    - {{path: {path:?}, owner: {owner:?}, mode: {mode:?}}}\n"
            ))
        };
        // The first entry lacks owner and mode: serde names the missing field.
        assert!(dd("x", "1:1", "0700").contains("missing field"));
        let ok = "  data-dirs:\n    - {path: a, owner: \"1:1\", mode: \"0700\"}\n";
        let dd = |path: &str, owner: &str, mode: &str| {
            err(&format!(
                "{ok}    - {{path: {path:?}, owner: {owner:?}, mode: {mode:?}}}\n"
            ))
        };
        for p in ["../x", "/etc", "", "a/../b", ".", "./a"] {
            let e = dd(p, "1:1", "0700");
            assert!(
                e.contains("t.yml: key x-ecs.data-dirs[1].path: expected a path relative"),
                "{p}: {e}"
            );
        }
        for o in ["app:app", "1000", "1000:", ":1", "-1:0"] {
            let e = dd("b", o, "0700");
            assert!(
                e.contains("key x-ecs.data-dirs[1].owner: expected `uid:gid`"),
                "{o}: {e}"
            );
        }
        for m in ["0800", "rwx", "", "07777", "+7", "0o700"] {
            let e = dd("b", "1:1", m);
            assert!(
                e.contains("key x-ecs.data-dirs[1].mode: expected an octal mode"),
                "{m}: {e}"
            );
        }
        let kr = |fields: &str| {
            err(&format!(
                "  keyrings:\n    - {{dir: g, format: gnupg1, owner: \"1:1\", keys: [A]}}\n    - {{{fields}}}\n"
            ))
        };
        let e = kr("dir: ../g, format: gnupg1, owner: \"1:1\", keys: [B]");
        assert!(
            e.contains("key x-ecs.keyrings[1].dir: expected a path relative"),
            "{e}"
        );
        let e = kr("dir: h, format: gnupg1, owner: \"1:1\", keys: []");
        assert!(
            e.contains("key x-ecs.keyrings[1].keys: expected at least one"),
            "{e}"
        );
        let e = kr("dir: h, format: gnupg1, owner: \"1:1\", keys: [A, ecs.vault]");
        assert!(
            e.contains("key x-ecs.keyrings[1].keys[1]: expected a flattened env.yml name"),
            "{e}"
        );
        let e = kr("dir: g/sub, format: gnupg2, owner: \"1:1\", keys: [B]");
        assert!(
            e.contains("key x-ecs.keyrings[1].dir: \"g/sub\" overlaps x-ecs.keyrings[0].dir"),
            "{e}"
        );
        let e = kr("dir: h, format: gnupg3, owner: \"1:1\", keys: [B]");
        assert!(e.contains("gnupg3"), "{e}");
        let e = err(
            "  data-dirs:\n    - {path: g/x, owner: \"1:1\", mode: \"0700\"}\n  keyrings:\n    - {dir: g, format: gnupg1, owner: \"1:1\", keys: [A]}\n",
        );
        assert!(
            e.contains("key x-ecs.data-dirs[0].path: \"g/x\" lies in x-ecs.keyrings[0].dir"),
            "{e}"
        );
    }

    #[test]
    fn data_dirs_are_created_and_fixed_at_every_run() {
        let data = tempfile::tempdir().unwrap();
        let me = fs::metadata(data.path()).unwrap();
        let def = parse(&format!(
            "  data-dirs:\n    - {{path: ecs-ca, owner: \"{u}:{g}\", mode: \"0700\"}}\n    - {{path: a/b, owner: \"{u}:{g}\", mode: \"2750\"}}\n",
            u = me.uid(),
            g = me.gid()
        ))
        .unwrap();
        for _ in 0..2 {
            run(data.path(), &def, &BTreeMap::new()).unwrap();
            let mode = |p: &str| fs::metadata(data.path().join(p)).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode("ecs-ca"), 0o700);
            assert_eq!(mode("a/b"), 0o2750);
            fs::set_permissions(data.path().join("ecs-ca"), fs::Permissions::from_mode(0o777)).unwrap();
        }
        fs::remove_dir(data.path().join("ecs-ca")).unwrap();
        fs::write(data.path().join("ecs-ca"), "").unwrap();
        let e = format!("{:#}", run(data.path(), &def, &BTreeMap::new()).unwrap_err());
        assert!(e.contains("ecs-ca: exists and is not a directory"), "{e}");
    }

    /// Secret keys made by GnuPG 2, each in its own scratch home: (fingerprint, armored key).
    struct Keys(tempfile::TempDir, std::cell::RefCell<Vec<PathBuf>>);

    impl Keys {
        fn new() -> Keys {
            Keys(tempfile::tempdir().unwrap(), Default::default())
        }

        fn make(&self, uid: &str, algo: &str) -> (String, String) {
            let home = self.0.path().join(self.1.borrow().len().to_string());
            fs::create_dir(&home).unwrap();
            fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
            self.1.borrow_mut().push(home.clone());
            let gpg = || gpg(Format::Gnupg2, &home).unwrap();
            let usage = if algo.starts_with("rsa") {
                "encrypt,sign"
            } else {
                "default"
            };
            gpg()
                .args(["--passphrase", "", "--quick-gen-key", uid, algo, usage, "never"])
                .run_checked()
                .unwrap();
            let fpr = secret_fingerprints(
                &gpg()
                    .args(["--with-colons", "--list-secret-keys", uid])
                    .run_stdout()
                    .unwrap(),
            )
            .remove(0);
            let key = gpg()
                .args(["--armor", "--export-secret-keys", &fpr])
                .run_stdout()
                .unwrap();
            (fpr, key)
        }
    }

    impl Drop for Keys {
        fn drop(&mut self) {
            for home in self.1.borrow().iter() {
                stop_agent(home);
            }
        }
    }

    fn gpg1_secret_keys(home: &Path) -> Vec<String> {
        secret_fingerprints(
            &gpg(Format::Gnupg1, home)
                .unwrap()
                .args(["--with-colons", "--fingerprint", "--list-secret-keys"])
                .run_stdout()
                .unwrap(),
        )
    }

    #[test]
    fn keyring_is_rebuilt_checked_and_swapped_and_a_bad_key_leaves_it() {
        let keys = Keys::new();
        let (enc_fpr, enc) = keys.make("ecs_mediaserver", "rsa2048");
        let (sign_fpr, sign) = keys.make("ecs_authority", "rsa2048");
        let (new_fpr, new_sign) = keys.make("ecs_authority", "rsa2048");
        let (_, ed25519) = keys.make("ecs_ed25519", "ed25519");
        let data = tempfile::tempdir().unwrap();
        let me = fs::metadata(data.path()).unwrap();
        let def = parse(&format!(
            "  keyrings:\n    - {{dir: ecs-gpg, format: gnupg1, owner: \"{}:{}\", keys: [ECS_VAULT_ENCRYPT, ECS_VAULT_SIGN]}}\n",
            me.uid(),
            me.gid()
        ))
        .unwrap();
        let vars = |e: &str, s: &str| {
            BTreeMap::from([
                ("ECS_VAULT_ENCRYPT".to_string(), e.to_string()),
                ("ECS_VAULT_SIGN".to_string(), s.to_string()),
            ])
        };
        let home = data.path().join("ecs-gpg");
        let entries = || {
            let mut v: Vec<String> = fs::read_dir(data.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };

        let msg = run(data.path(), &def, &vars(&enc, &sign)).unwrap();
        assert!(msg.contains(&format!("ECS_VAULT_ENCRYPT {enc_fpr}")), "{msg}");
        assert!(msg.contains(&format!("ECS_VAULT_SIGN {sign_fpr}")), "{msg}");
        assert_eq!(gpg1_secret_keys(&home), [enc_fpr.clone(), sign_fpr.clone()]);
        assert_eq!(fs::metadata(&home).unwrap().permissions().mode() & 0o777, 0o700);
        for f in ["pubring.gpg", "secring.gpg"] {
            let m = fs::metadata(home.join(f)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
        }
        assert_eq!(entries(), ["ecs-gpg"]);

        // A changed key replaces the old one.
        run(data.path(), &def, &vars(&enc, &new_sign)).unwrap();
        assert_eq!(gpg1_secret_keys(&home), [enc_fpr.clone(), new_fpr.clone()]);
        assert_eq!(entries(), ["ecs-gpg"]);

        // Bad keys fail, say which key, show no key material, and leave the keyring.
        let before: Vec<(String, Vec<u8>)> = ["pubring.gpg", "secring.gpg"]
            .iter()
            .map(|f| (f.to_string(), fs::read(home.join(f)).unwrap()))
            .collect();
        let garbage = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nZml4dHVyZSBrZXkgbWF0ZXJpYWw=\n-----END PGP PRIVATE KEY BLOCK-----\n";
        let cases = [
            (
                vars(&enc, garbage),
                "ECS_VAULT_SIGN: not a key GnuPG reads (gpg exit status: 2: ",
            ),
            (vars(&ed25519, &sign), "(GnuPG 1.4 reads RSA"),
            (vars(&enc, ""), "ECS_VAULT_SIGN is not set in env.yml"),
            (BTreeMap::new(), "ECS_VAULT_ENCRYPT is not set in env.yml"),
        ];
        for (v, want) in cases {
            let e = run(data.path(), &def, &v).unwrap_err();
            assert!(e.chain().any(|c| c.is::<ConfigError>()), "{e:#}");
            let e = format!("{e:#}");
            assert!(e.contains(want), "{e}");
            assert!(e.contains("keyring ") && e.contains("(x-ecs.keyrings[0])"), "{e}");
            assert!(!e.contains("Zml4") && !e.contains("PRIVATE KEY"), "{e}");
            for (f, bytes) in &before {
                assert_eq!(&fs::read(home.join(f)).unwrap(), bytes, "{f} changed");
            }
            assert_eq!(entries(), ["ecs-gpg"]);
        }

        // The same keys in a GnuPG 2 keyring.
        let def2 = parse(&format!(
            "  keyrings:\n    - {{dir: gpg2/home, format: gnupg2, owner: \"{}:{}\", keys: [ECS_VAULT_SIGN, ECS_VAULT_ENCRYPT]}}\n",
            me.uid(),
            me.gid()
        ))
        .unwrap();
        run(data.path(), &def2, &vars(&ed25519, &sign)).unwrap();
        let home2 = data.path().join("gpg2/home");
        let listed = gpg(Format::Gnupg2, &home2)
            .unwrap()
            .args(["--with-colons", "--list-secret-keys"])
            .run_stdout()
            .unwrap();
        stop_agent(&home2);
        assert_eq!(secret_fingerprints(&listed).len(), 2, "{listed}");
        assert!(home2.join("private-keys-v1.d").is_dir());
        let sockets = fs::read_dir(&home2)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("S.")
            })
            .count();
        assert_eq!(sockets, 0);
    }
}
