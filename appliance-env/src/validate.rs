//! Value checks that types alone cannot express: domain syntax, PEM and OpenPGP armor blocks,
//! paths, URLs. Each failure names the key path and what was expected.

use crate::model::Env;
use crate::tree::Seg;

type Problem = (Vec<Seg>, String);

fn p(path: &[&str]) -> Vec<Seg> {
    path.iter().map(|s| Seg::Key((*s).to_string())).collect()
}

fn fail<T>(path: Vec<Seg>, message: impl Into<String>) -> Result<T, Problem> {
    Err((path, message.into()))
}

/// The first problem found, in file order.
pub(crate) fn check(env: &Env) -> Result<(), Problem> {
    for (i, key) in env.ssh_authorized_keys.iter().enumerate() {
        if let Err(m) = authorized_key(key) {
            let mut path = p(&["ssh_authorized_keys"]);
            path.push(Seg::Index(i));
            return fail(path, m);
        }
    }
    for (name, value) in &env.ssh_keys {
        let path = p(&["ssh_keys", name]);
        if name.ends_with("_private") {
            pem(
                value,
                &[
                    "OPENSSH PRIVATE KEY",
                    "RSA PRIVATE KEY",
                    "EC PRIVATE KEY",
                    "PRIVATE KEY",
                ],
            )
            .or_else(|m| fail(path.clone(), m))?;
        } else if let Err(m) = authorized_key(value) {
            return fail(path, m);
        }
    }
    let a = &env.appliance;
    domain(&a.domain).or_else(|m| fail(p(&["appliance", "domain"]), m))?;
    match (&a.ssl.key, &a.ssl.cert) {
        (Some(_), None) => {
            return fail(
                p(&["appliance", "ssl", "cert"]),
                "missing; ssl.key needs ssl.cert",
            );
        }
        (None, Some(_)) => return fail(p(&["appliance", "ssl", "key"]), "missing; ssl.cert needs ssl.key"),
        (Some(key), Some(cert)) => {
            pem(key, PRIVATE).or_else(|m| fail(p(&["appliance", "ssl", "key"]), m))?;
            pem(cert, &["CERTIFICATE"]).or_else(|m| fail(p(&["appliance", "ssl", "cert"]), m))?;
        }
        (None, None) => {}
    }
    if let Some(ca) = &a.ssl.client_ca {
        pem(&ca.cert, &["CERTIFICATE"])
            .or_else(|m| fail(p(&["appliance", "ssl", "client_ca", "cert"]), m))?;
        pem(&ca.key, PRIVATE).or_else(|m| fail(p(&["appliance", "ssl", "client_ca", "key"]), m))?;
    }
    if let Some(sentry) = &a.sentry
        && !(sentry.dsn.starts_with("https://") || sentry.dsn.starts_with("http://"))
    {
        return fail(p(&["appliance", "sentry", "dsn"]), "expected an http(s):// URL");
    }
    if let Some(git) = &a.git {
        commit(git.commitid.as_deref()).or_else(|m| fail(p(&["appliance", "git", "commitid"]), m))?;
    }
    for (i, file) in a.extra.files.iter().enumerate() {
        let at = |k: &str| {
            let mut path = p(&["appliance", "extra", "files"]);
            path.push(Seg::Index(i));
            path.push(Seg::Key(k.to_string()));
            path
        };
        if !file.path.starts_with('/') || file.path.split('/').any(|c| c == "..") {
            return fail(
                at("path"),
                format!("expected an absolute path without `..`, found `{}`", file.path),
            );
        }
        if let Some(mode) = &file.permissions {
            let digits = mode.strip_prefix('0').unwrap_or(mode);
            if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return fail(
                    at("permissions"),
                    format!("expected an octal mode like '0644', found `{mode}`"),
                );
            }
        }
        if let Some(owner) = &file.owner {
            let ok = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            };
            let valid = match owner.split_once(':') {
                Some((u, g)) => ok(u) && ok(g),
                None => ok(owner),
            };
            if !valid {
                return fail(
                    at("owner"),
                    format!("expected user or user:group, found `{owner}`"),
                );
            }
        }
    }
    for (i, pkg) in a.extra.packages.iter().enumerate() {
        let name = pkg.split('=').next().unwrap_or("");
        let valid = name.len() >= 2
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        if !valid {
            let mut path = p(&["appliance", "extra", "packages"]);
            path.push(Seg::Index(i));
            return fail(
                path,
                format!("expected a Debian package name (optionally name=version), found `{pkg}`"),
            );
        }
    }
    if a.update.oncalendar.trim().is_empty() {
        return fail(
            p(&["appliance", "update", "oncalendar"]),
            "expected a systemd OnCalendar= expression",
        );
    }
    pem(&a.dkim.key, &["RSA PRIVATE KEY", "PRIVATE KEY"])
        .or_else(|m| fail(p(&["appliance", "dkim", "key"]), m))?;
    match a.backup.url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-".contains(&b)) => {}
        _ => {
            return fail(
                p(&["appliance", "backup", "url"]),
                format!(
                    "expected a duplicity URL like sftp://host/path or file:///path, found `{}`",
                    a.backup.url
                ),
            );
        }
    }
    if let Some(mount) = &a.backup.mount
        && !mount.target.starts_with('/')
    {
        return fail(
            p(&["appliance", "backup", "mount", "target"]),
            "expected an absolute path",
        );
    }
    pgp_secret_key(&a.backup.encrypt).or_else(|m| fail(p(&["appliance", "backup", "encrypt"]), m))?;

    let e = &env.ecs;
    commit(e.git.commitid.as_deref()).or_else(|m| fail(p(&["ecs", "git", "commitid"]), m))?;
    let db_ok = e
        .database
        .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && e.database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !db_ok {
        return fail(
            p(&["ecs", "database"]),
            "expected a lowercase PostgreSQL identifier like `ecs`",
        );
    }
    if let Some(user) = &e.first_user {
        email(&user.email).or_else(|m| fail(p(&["ecs", "first_user", "email"]), m))?;
        for (key, value) in [("first_name", &user.first_name), ("last_name", &user.last_name)] {
            if value.trim().is_empty() {
                return fail(p(&["ecs", "first_user", key]), "expected a name");
            }
        }
    }
    if e.settings.trim().is_empty() {
        return fail(p(&["ecs", "settings"]), "expected ECS's Python settings");
    }
    pgp_secret_key(&e.vault_encrypt).or_else(|m| fail(p(&["ecs", "vault_encrypt"]), m))?;
    pgp_secret_key(&e.vault_sign).or_else(|m| fail(p(&["ecs", "vault_sign"]), m))?;
    Ok(())
}

const PRIVATE: &[&str] = &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// A DNS name the appliance can be reached and certified under: at least two labels of
/// lowercase letters, digits and inner hyphens, 253 characters at most.
pub fn domain(name: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "expected a domain name like ecs.example.org ({why}), found `{name}`"
        ))
    };
    if name.is_empty() || name.len() > 253 {
        return bad("1 to 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return bad("at least two labels");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return bad("labels of 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("lowercase letters, digits and hyphens");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("no hyphen at the start or end of a label");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("not an IP address");
    }
    Ok(())
}

fn email(address: &str) -> Result<(), String> {
    match address.rsplit_once('@') {
        Some((local, host))
            if !local.is_empty() && !local.contains(char::is_whitespace) && domain(host).is_ok() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "expected an email address like office@example.org, found `{address}`"
        )),
    }
}

/// A full commit id: the ECS image is built from a git context at this ref, and git fetches a
/// commit by its full id only.
fn commit(id: Option<&str>) -> Result<(), String> {
    match id {
        Some(id) if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) => Err(format!(
            "expected a full commit id of 40 hex digits (`git rev-parse HEAD`), found `{id}`"
        )),
        _ => Ok(()),
    }
}

/// An OpenSSH public key line: `[options] type base64 [comment]`.
fn authorized_key(line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let found = words.windows(2).any(|w| {
        let known = w[0].starts_with("ssh-") || w[0].starts_with("ecdsa-") || w[0].starts_with("sk-");
        known
            && w[1].len() >= 16
            && w[1]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    });
    if found {
        Ok(())
    } else {
        let shown: String = line.chars().take(40).collect();
        Err(format!(
            "expected an OpenSSH public key like `ssh-ed25519 AAAA... comment`, found `{shown}`"
        ))
    }
}

/// One or more PEM blocks, the first with one of `labels`.
fn pem(text: &str, labels: &[&str]) -> Result<(), String> {
    let expected = || format!("expected a PEM block `-----BEGIN {}-----`", labels[0]);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty()).peekable();
    let first = lines.peek().copied().ok_or_else(expected)?;
    let label = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(expected)?;
    if !labels.contains(&label) {
        return Err(format!("{}, found `-----BEGIN {label}-----`", expected()));
    }
    armored_blocks(text, false)
}

fn pgp_secret_key(text: &str) -> Result<(), String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if first != "-----BEGIN PGP PRIVATE KEY BLOCK-----" {
        return Err(
            "expected an ASCII-armored OpenPGP secret key `-----BEGIN PGP PRIVATE KEY BLOCK-----`".into(),
        );
    }
    armored_blocks(text, true)
}

/// Every BEGIN has a matching END and base64 lines between them (armor headers and the
/// OpenPGP checksum line allowed when `pgp`).
fn armored_blocks(text: &str, pgp: bool) -> Result<(), String> {
    let mut open: Option<&str> = None;
    let mut in_headers = false;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some(prev) = open {
                return Err(format!("expected `-----END {prev}-----` before `{line}`"));
            }
            open = Some(label);
            in_headers = true;
            continue;
        }
        if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            match open.take() {
                Some(l) if l == label => continue,
                Some(l) => return Err(format!("expected `-----END {l}-----`, found `{line}`")),
                None => return Err(format!("`{line}` without a BEGIN line")),
            }
        }
        let Some(label) = open else {
            if line.is_empty() {
                continue;
            }
            return Err("expected only PEM blocks, found text outside them".into());
        };
        if line.is_empty() {
            in_headers = false;
            continue;
        }
        if in_headers && line.contains(": ") {
            continue;
        }
        in_headers = false;
        let body = if pgp {
            line.strip_prefix('=').unwrap_or(line)
        } else {
            line
        };
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return Err(format!("expected base64 lines inside `{label}`"));
        }
    }
    match open {
        Some(label) => Err(format!("expected `-----END {label}-----` (the block is cut off)")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in [
            "ecs.example.org",
            "a.b",
            "xn--bcher-kva.example",
            "ecs-1.example.org",
        ] {
            assert!(domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "Ecs.example.org",
            "-a.example.org",
            "a..b",
            "a b.org",
            "1.2.3.4",
            "a_b.org",
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pem_blocks() {
        let good = "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n";
        assert!(pem(good, &["CERTIFICATE"]).is_ok());
        assert!(pem(good, &["PRIVATE KEY"]).is_err());
        assert!(pem("-----BEGIN CERTIFICATE-----\nQUJD\n", &["CERTIFICATE"]).is_err());
        assert!(
            pem(
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----",
                &["CERTIFICATE"]
            )
            .is_err()
        );
        let armor = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: x\n\nQUJD\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----\n";
        assert!(pgp_secret_key(armor).is_ok());
    }

    #[test]
    fn commit_ids_are_full() {
        assert!(commit(None).is_ok());
        assert!(commit(Some("b09f0d57572e0e320e51c8acb0229250892ecfbb")).is_ok());
        for bad in [
            "b09f0d5",
            "b09f0d57572e0e320e51c8acb0229250892ecfbbX",
            "master",
            "",
        ] {
            let e = commit(Some(bad)).unwrap_err();
            assert!(e.starts_with("expected a full commit id of 40 hex digits"), "{e}");
        }
    }

    #[test]
    fn authorized_keys() {
        assert!(authorized_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx me@host").is_ok());
        assert!(authorized_key("no-pty ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB").is_ok());
        assert!(authorized_key("hello world").is_err());
    }
}
