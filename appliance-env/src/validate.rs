//! Value checks that types alone cannot express: domain syntax, PEM and OpenPGP armor blocks
//! (their base64 decoded), the TLS pair, the compose file, git URLs, file names, calendar
//! expressions. Every problem is collected, so `config check` names them all at once; each names
//! the key path and what was expected, never a secret value.

use crate::model::Env;
use crate::tree::Seg;
use crate::{calendar, compose, tls};

pub(crate) type Problem = (Vec<Seg>, String);

fn p(path: &[&str]) -> Vec<Seg> {
    path.iter().map(|s| Seg::Key((*s).to_string())).collect()
}

fn at(path: &[&str], i: usize) -> Vec<Seg> {
    let mut v = p(path);
    v.push(Seg::Index(i));
    v
}

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: Vec<Seg>, message: impl Into<String>) {
        self.0.push((path, message.into()));
    }

    fn check(&mut self, path: Vec<Seg>, result: Result<(), String>) {
        if let Err(m) = result {
            self.add(path, m);
        }
    }
}

/// Every problem found; empty when the values are good.
pub(crate) fn check(env: &Env) -> Vec<Problem> {
    let mut out = Problems::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for (i, key) in env.ssh_authorized_keys.iter().enumerate() {
        out.check(at(&["ssh_authorized_keys"], i), authorized_key(key));
    }
    for (name, value) in &env.ssh_keys {
        let path = p(&["ssh_keys", name]);
        if name.ends_with("_private") {
            let labels = [
                "OPENSSH PRIVATE KEY",
                "RSA PRIVATE KEY",
                "EC PRIVATE KEY",
                "PRIVATE KEY",
            ];
            out.check(path, pem(value, &labels).map(drop));
        } else {
            out.check(path, authorized_key(value));
        }
    }
    let a = &env.appliance;
    out.check(p(&["appliance", "domain"]), domain(&a.domain));
    match (&a.ssl.key, &a.ssl.cert) {
        (Some(_), None) => out.add(
            p(&["appliance", "ssl", "cert"]),
            "missing; ssl.key needs ssl.cert",
        ),
        (None, Some(_)) => out.add(p(&["appliance", "ssl", "key"]), "missing; ssl.cert needs ssl.key"),
        (Some(key), Some(cert)) => {
            let key_path = p(&["appliance", "ssl", "key"]);
            let cert_path = p(&["appliance", "ssl", "cert"]);
            let key = pem(key, PRIVATE).map_err(|m| out.add(key_path.clone(), m));
            let cert = pem(cert, &["CERTIFICATE"]).map_err(|m| out.add(cert_path.clone(), m));
            if let (Ok(key), Ok(cert)) = (key, cert) {
                let domain = domain(&a.domain).is_ok().then_some(a.domain.as_str());
                let (k, c) = tls::check_pair(&key, &cert, domain, now);
                k.into_iter().for_each(|m| out.add(key_path.clone(), m));
                c.into_iter().for_each(|m| out.add(cert_path.clone(), m));
            }
        }
        (None, None) => {}
    }
    if let Some(ca) = &a.ssl.client_ca {
        let key_path = p(&["appliance", "ssl", "client_ca", "key"]);
        let cert_path = p(&["appliance", "ssl", "client_ca", "cert"]);
        let cert = pem(&ca.cert, &["CERTIFICATE"]).map_err(|m| out.add(cert_path.clone(), m));
        let key = pem(&ca.key, PRIVATE).map_err(|m| out.add(key_path.clone(), m));
        if let (Ok(key), Ok(cert)) = (key, cert) {
            let (k, c) = tls::check_pair(&key, &cert, None, now);
            k.into_iter().for_each(|m| out.add(key_path.clone(), m));
            c.into_iter().for_each(|m| out.add(cert_path.clone(), m));
        }
    }
    if let Some(sentry) = &a.sentry
        && !(sentry.dsn.starts_with("https://") || sentry.dsn.starts_with("http://"))
    {
        out.add(p(&["appliance", "sentry", "dsn"]), "expected an http(s):// URL");
    }
    if let Some(relay) = &a.mail.relay_host {
        out.check(p(&["appliance", "mail", "relay_host"]), relay_host(relay));
    }
    if let Some(git) = &a.git {
        if let Some(source) = &git.source {
            out.check(p(&["appliance", "git", "source"]), git_url(source));
        }
        if let Some(branch) = &git.branch {
            out.check(p(&["appliance", "git", "branch"]), git_branch(branch));
        }
        out.check(
            p(&["appliance", "git", "commitid"]),
            commit(git.commitid.as_deref()),
        );
    }
    for (i, file) in a.extra.files.iter().enumerate() {
        let at = |k: &str| {
            let mut path = p(&["appliance", "extra", "files"]);
            path.push(Seg::Index(i));
            path.push(Seg::Key(k.to_string()));
            path
        };
        if !file.path.starts_with('/') || file.path.split('/').any(|c| c == "..") {
            out.add(
                at("path"),
                format!("expected an absolute path without `..`, found `{}`", file.path),
            );
        }
        if let Some(mode) = &file.permissions {
            let digits = mode.strip_prefix('0').unwrap_or(mode);
            if !(3..=4).contains(&digits.len()) || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                out.add(
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
                out.add(
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
            out.add(
                at(&["appliance", "extra", "packages"], i),
                format!("expected a Debian package name (optionally name=version), found `{pkg}`"),
            );
        }
    }
    out.check(
        p(&["appliance", "update", "oncalendar"]),
        calendar::oncalendar(&a.update.oncalendar),
    );
    if let Some(text) = &a.compose {
        for m in compose::check(text) {
            out.add(p(&["appliance", "compose"]), m);
        }
    }
    out.check(
        p(&["appliance", "dkim", "key"]),
        pem(&a.dkim.key, &["RSA PRIVATE KEY", "PRIVATE KEY"]).map(drop),
    );
    match a.backup.url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-".contains(&b)) => {}
        _ => out.add(
            p(&["appliance", "backup", "url"]),
            format!(
                "expected a duplicity URL like sftp://host/path or file:///path, found `{}`",
                a.backup.url
            ),
        ),
    }
    if let Some(mount) = &a.backup.mount
        && !mount.target.starts_with('/')
    {
        out.add(
            p(&["appliance", "backup", "mount", "target"]),
            "expected an absolute path",
        );
    }
    out.check(
        p(&["appliance", "backup", "encrypt"]),
        pgp_secret_key(&a.backup.encrypt),
    );
    for (i, entry) in a.firewall.allow.iter().enumerate() {
        if let Err(m) = crate::model::firewall_port(entry) {
            out.add(at(&["appliance", "firewall", "allow"], i), m);
        }
    }
    out.check(
        p(&["appliance", "backup", "schedule"]),
        calendar::oncalendar(&a.backup.schedule),
    );
    out.check(
        p(&["appliance", "backup", "full_if_older_than"]),
        duplicity_interval(&a.backup.full_if_older_than),
    );
    if a.backup.keep_full < 1 {
        out.add(
            p(&["appliance", "backup", "keep_full"]),
            "expected at least 1 (the number of full backups kept)",
        );
    }

    let e = &env.ecs;
    out.check(p(&["ecs", "git", "source"]), git_url(&e.git.source));
    out.check(p(&["ecs", "git", "branch"]), git_branch(&e.git.branch));
    out.check(p(&["ecs", "git", "commitid"]), commit(e.git.commitid.as_deref()));
    let db_ok = e
        .database
        .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && e.database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !db_ok {
        out.add(
            p(&["ecs", "database"]),
            "expected a lowercase PostgreSQL identifier like `ecs`",
        );
    }
    if let Some(name) = &e.recover.dump_filename {
        out.check(p(&["ecs", "recover", "dump_filename"]), file_name(name));
    }
    if let Some(user) = &e.first_user {
        out.check(p(&["ecs", "first_user", "email"]), email(&user.email));
        for (key, value) in [("first_name", &user.first_name), ("last_name", &user.last_name)] {
            if value.trim().is_empty() {
                out.add(p(&["ecs", "first_user", key]), "expected a name");
            }
        }
    }
    if e.settings.trim().is_empty() {
        out.add(p(&["ecs", "settings"]), "expected ECS's Python settings");
    }
    if domain(&a.domain).is_ok() {
        out.check(p(&["ecs", "settings"]), settings_domain(&e.settings, &a.domain));
    }
    out.check(p(&["ecs", "vault_encrypt"]), pgp_secret_key(&e.vault_encrypt));
    out.check(p(&["ecs", "vault_sign"]), pgp_secret_key(&e.vault_sign));
    out.0
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

/// postfix's relayhost: `[host]:port`, `[host]` (no MX lookup) or `host[:port]` (MX lookup),
/// host a domain name or an IPv4 address.
pub fn relay_host(value: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "expected `[host]:port` or `host[:port]` (e.g. [smtp.example.org]:587), found `{value}`"
        ))
    };
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return bad(),
            },
            None => return bad(),
        },
        None => match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        },
    };
    let ipv4 = host.parse::<std::net::Ipv4Addr>().is_ok();
    let name_ok = ipv4
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            }));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if name_ok && port_ok { Ok(()) } else { bad() }
}

/// An address mail can go to: a non-empty local part without whitespace, `@`, a domain name.
pub fn email(address: &str) -> Result<(), String> {
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

/// A git repository URL git may fetch from without running anything: `https://`, `http://`,
/// `ssh://`, `git://` or scp-like `user@host:path`. Option-like values (`--upload-pack=...`) and
/// the `ext::`/`fd::` remote helpers and local (`file://`, path) transports are refused.
fn git_url(url: &str) -> Result<(), String> {
    // The URL may carry a token (https://user:token@host/...): messages never show it.
    let expected = "expected an https://, http://, ssh:// or git:// URL or user@host:path";
    if url.starts_with('-') {
        return Err(format!(
            "starts with `-`, which git takes for an option; {expected}"
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains spaces or control characters; {expected}"));
    }
    if let Some((transport, _)) = url.split_once("::") {
        let transport: String = transport.chars().take(16).collect();
        return Err(format!(
            "names the git remote helper `{transport}::`, which can run commands or read local files; {expected}"
        ));
    }
    let scheme_ok = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .any(|s| url.len() > s.len() && url.starts_with(s));
    let scp_like = match url.split_once(':') {
        Some((host, path)) => {
            !host.is_empty() && !host.contains('/') && !path.is_empty() && !path.starts_with("//")
        }
        None => false,
    };
    if scheme_ok || scp_like {
        return Ok(());
    }
    match url.split_once("://") {
        Some((scheme, _)) if scheme.len() <= 16 => {
            Err(format!("the `{scheme}://` transport is not allowed; {expected}"))
        }
        _ => Err(format!("a local path or unknown form; {expected}")),
    }
}

/// A branch name as `git check-ref-format --branch` takes it, and never option-like.
fn git_branch(branch: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "expected a git branch name like `master` ({why}), found `{branch}`"
        ))
    };
    if branch.is_empty() || branch.starts_with('-') {
        return bad("not empty, no leading `-`");
    }
    if branch
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
    {
        return bad("no spaces, control characters or any of ~^:?*[\\");
    }
    if branch.contains("..")
        || branch.contains("@{")
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.ends_with('.')
        || branch.ends_with(".lock")
        || branch.contains("//")
        || branch.split('/').any(|c| c.starts_with('.'))
    {
        return bad("no `..`, `@{`, empty or dot-leading components, no `.lock` ending");
    }
    Ok(())
}

/// A file name in the dump directory: no directory part, nothing `pg_restore` takes for an option.
fn file_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.starts_with('-')
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "expected a file name in the dump directory like `ecs.pgdump.gz` (no `/`, `..` or leading `-`), found `{}`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// ECS's own `DOMAIN = '...'` in ecs.settings must be appliance.domain: ECS builds its URLs and
/// ALLOWED_HOSTS from it, and answers 400 to any other host.
fn settings_domain(settings: &str, domain: &str) -> Result<(), String> {
    for (i, line) in settings.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("DOMAIN") else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.split('#').next().unwrap_or("").trim();
        let quoted = ['\'', '"']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)));
        if let Some(found) = quoted
            && found != domain
        {
            // Single quotes: the settings are secret, and `redact` hides their backtick quotations.
            return Err(format!(
                "line {} of the settings sets DOMAIN = '{found}', but appliance.domain is '{domain}'; expected the same domain",
                i + 1
            ));
        }
    }
    Ok(())
}

/// One or more PEM blocks, the first with one of `labels`; returns every block decoded.
fn pem(text: &str, labels: &[&str]) -> Result<Vec<Block>, String> {
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

/// A duplicity time interval: numbers with units s, m, h, D, W, M, Y, e.g. `1M` or `2W3D`.
fn duplicity_interval(text: &str) -> Result<(), String> {
    let expected = "expected a duplicity interval like `1M`, `2W` or `1W3D` (units s m h D W M Y)";
    let mut digits = 0;
    let mut units = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => digits += 1,
            's' | 'm' | 'h' | 'D' | 'W' | 'M' | 'Y' if digits > 0 => {
                digits = 0;
                units += 1;
            }
            _ => return Err(format!("{expected}, found `{text}`")),
        }
    }
    if units == 0 || digits > 0 {
        return Err(format!("{expected}, found `{text}`"));
    }
    Ok(())
}

fn pgp_secret_key(text: &str) -> Result<(), String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if first != "-----BEGIN PGP PRIVATE KEY BLOCK-----" {
        return Err(
            "expected an ASCII-armored OpenPGP secret key `-----BEGIN PGP PRIVATE KEY BLOCK-----`".into(),
        );
    }
    armored_blocks(text, true).map(drop)
}

/// A PEM or armor block: its label and decoded contents.
pub(crate) struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every BEGIN has a matching END and base64 lines between them that decode (armor headers and
/// the OpenPGP checksum line allowed when `pgp`). Messages never show the contents.
fn armored_blocks(text: &str, pgp: bool) -> Result<Vec<Block>, String> {
    use base64::Engine;
    let mut blocks = Vec::new();
    let mut open: Option<&str> = None;
    let mut in_headers = false;
    let mut body = String::new();
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
            body.clear();
            continue;
        }
        if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            match open.take() {
                Some(l) if l == label => {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(&body)
                        .map_err(|_| {
                            format!(
                                "the base64 inside `{l}` does not decode: a character is missing, extra or changed (the block is damaged)"
                            )
                        })?;
                    if der.is_empty() {
                        return Err(format!("expected base64 contents inside `{l}`, found none"));
                    }
                    blocks.push(Block {
                        label: l.to_string(),
                        der,
                    });
                    continue;
                }
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
        // The OpenPGP armor's checksum line (`=` and 4 base64 characters) is not data.
        if pgp && line.starts_with('=') {
            continue;
        }
        if !line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            return Err(format!("expected base64 lines inside `{label}`"));
        }
        body.push_str(line);
    }
    match open {
        Some(label) => Err(format!("expected `-----END {label}-----` (the block is cut off)")),
        None => Ok(blocks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_ports() {
        use crate::model::{FirewallPort, firewall_port};
        assert_eq!(
            firewall_port("tcp/8443"),
            Ok(FirewallPort {
                proto: "tcp",
                port: 8443
            })
        );
        assert_eq!(
            firewall_port("udp/1"),
            Ok(FirewallPort {
                proto: "udp",
                port: 1
            })
        );
        for bad in [
            "8443",
            "tcp/0",
            "tcp/65536",
            "sctp/80",
            "tcp/+80",
            "tcp/",
            "TCP/80",
        ] {
            let e = firewall_port(bad).unwrap_err();
            assert!(e.starts_with("expected tcp/PORT or udp/PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn relay_hosts() {
        for ok in [
            "[smtp.example.org]:587",
            "[10.0.0.5]",
            "mail.example.org",
            "relay:25",
            "[a-b.example.org]:2525",
        ] {
            assert!(relay_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "[smtp.example.org",
            "[x]587",
            "smtp.example.org:",
            "host:0",
            "host:99999",
            "a b",
            "smtp://x",
            "-x.org",
        ] {
            let e = relay_host(bad).unwrap_err();
            assert!(e.contains("[host]:port"), "{bad}: {e}");
        }
    }

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
