//! What an error about env.yml may show of a value. Every error leaves `Env::from_yaml_str`,
//! `merge_yaml_str` and `validate` through `scrub`, so a check added later cannot leak by
//! quoting a value: for keys the schema marks secret (and the mappings holding them, where a
//! secret pasted one level too high lands), quoted text becomes its length and, for long
//! values, a short fingerprint; URLs lose their password; anything else quoted is shortened.

use sha2::{Digest, Sha256};

use crate::error::EnvError;
use crate::schema::{self, Secret};

/// Longest quoted value shown in full; longer ones are cut.
const MAX_QUOTED: usize = 80;
/// Longest key path shown in full (keys come from the file and may be anything).
const MAX_KEY: usize = 160;
/// Quoted text in a message that names no key (a syntax error) is shown only when this short.
const MAX_UNKEYED: usize = 24;

pub(crate) fn scrub(e: EnvError) -> EnvError {
    match e {
        EnvError::Invalid { at, key, message } => {
            let pattern = pattern_of(&key);
            let secret = match schema::secret(&pattern) {
                Secret::No if schema::holds_secrets(&pattern) => Secret::Value,
                s => s,
            };
            let message = match secret {
                Secret::No => shorten_quoted(&message, MAX_QUOTED),
                s => hide_quoted(&message, s),
            };
            EnvError::Invalid {
                at,
                key: cut(&key, MAX_KEY),
                message,
            }
        }
        EnvError::Syntax { at, message } => EnvError::Syntax {
            at,
            // No key to judge by: short quoted words (`on`, a key name) stay, longer text goes.
            message: hide_long_tokens(&shorten_quoted(&message, MAX_UNKEYED)),
        },
        EnvError::Several(all) => EnvError::Several(all.into_iter().map(scrub).collect()),
        other => other,
    }
}

/// `appliance.extra.files[1].path` → `appliance.extra.files[].path`, as the schema names it.
fn pattern_of(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// The spans of `message` quoted with backticks or double quotes: (start, end) byte offsets of
/// the whole quotation, delimiters included.
fn quoted_spans(message: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut open: Option<(usize, char)> = None;
    for (i, c) in message.char_indices() {
        match open {
            None if c == '`' || c == '"' => open = Some((i, c)),
            Some((start, q)) if c == q => {
                spans.push((start, i + 1));
                open = None;
            }
            _ => {}
        }
    }
    // An unterminated quotation runs to the end: treat it as quoted.
    if let Some((start, _)) = open {
        spans.push((start, message.len()));
    }
    spans
}

fn replace_spans(message: &str, mut replacement: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(message.len());
    let mut last = 0;
    for (start, end) in quoted_spans(message) {
        out.push_str(&message[last..start]);
        match replacement(&message[start..end]) {
            Some(r) => out.push_str(&r),
            None => out.push_str(&message[start..end]),
        }
        last = end;
    }
    out.push_str(&message[last..]);
    out
}

/// Quoted text longer than `max` characters is cut, saying how long it was.
fn shorten_quoted(message: &str, max: usize) -> String {
    replace_spans(message, |quoted| {
        let q = &quoted[..1];
        let inner = quoted[1..].strip_suffix(q).unwrap_or(&quoted[1..]);
        let n = inner.chars().count();
        (n > max).then(|| {
            let head: String = inner.chars().take(max / 2).collect();
            format!("{q}{head}…{q} ({n} characters)")
        })
    })
}

/// Quoted text becomes a description, except what is known not to be secret: PEM/OpenPGP armor
/// lines with a proper label, and key paths. A URL is shown without its password. Every other
/// place the hidden text appears (e.g. repeated in single quotes) is hidden too.
fn hide_quoted(message: &str, secret: Secret) -> String {
    let mut hidden: Vec<(String, String)> = Vec::new();
    let out = replace_spans(message, |quoted| {
        let q = &quoted[..1];
        let inner = quoted[1..].strip_suffix(q).unwrap_or(&quoted[1..]);
        if is_armor_line(inner) || is_label(inner) || schema::key(&pattern_of(inner)).is_some() {
            return None;
        }
        if secret == Secret::Url {
            // Without `:` or `@` there is no place for a password (`on`, a bare host name).
            if !inner.contains([':', '@']) {
                return None;
            }
            if inner.contains("://") && !inner.contains(char::is_whitespace) {
                let redacted = host_util::redact_url(inner);
                if redacted == inner {
                    return None;
                }
                hidden.push((inner.to_string(), redacted.clone()));
                return Some(format!("{q}{redacted}{q}"));
            }
        }
        let shown = describe(inner);
        hidden.push((inner.to_string(), shown.clone()));
        Some(shown)
    });
    let mut out = out;
    // Shorter text is no secret worth hiding, and would match ordinary words.
    for (text, shown) in hidden.into_iter().filter(|(t, _)| t.chars().count() >= 4) {
        out = out.replace(&text, &shown);
    }
    hide_long_tokens(&out)
}

/// `[hidden: 1679 characters, sha256 1a2b3c4d]`; short values (passwords) get no fingerprint,
/// which could be brute-forced.
fn describe(value: &str) -> String {
    let n = value.chars().count();
    let unit = if n == 1 { "character" } else { "characters" };
    if n >= 32 {
        let digest = Sha256::digest(value.as_bytes());
        format!("[hidden: {n} {unit}, sha256 {}]", hex::encode(&digest[..4]))
    } else {
        format!("[hidden: {n} {unit}]")
    }
}

/// `-----BEGIN RSA PRIVATE KEY-----` and the like.
fn is_armor_line(s: &str) -> bool {
    ["-----BEGIN ", "-----END "].iter().any(|p| {
        s.strip_prefix(p)
            .and_then(|l| l.strip_suffix("-----"))
            .is_some_and(is_label)
    })
}

/// `RSA PRIVATE KEY`, `PGP PRIVATE KEY BLOCK`: capitals, digits and single spaces.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
        && !s.contains("  ")
}

/// Unquoted words that look like key material (long runs of base64) are hidden as well.
fn hide_long_tokens(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && !"+/=".contains(c));
        let base64ish = core.len() >= 20
            && core
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            && core.bytes().any(|b| b.is_ascii_digit() || b"+/".contains(&b))
            && core.bytes().any(|b| b.is_ascii_lowercase())
            && core.bytes().any(|b| b.is_ascii_uppercase());
        if base64ish {
            out.push_str(&word.replace(core, &describe(core)));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// At most `max` characters of `s`, saying how many were left out.
fn cut(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({n} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;

    fn invalid(key: &str, message: &str) -> String {
        scrub(EnvError::Invalid {
            at: Location {
                file: "env.yml".into(),
                line: 3,
                column: 5,
            },
            key: key.into(),
            message: message.into(),
        })
        .to_string()
    }

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY----- MIIEpAIBAAKCAQEArZweCxTcnzQrX7T31ptXX0X+RLTYA66iFGjJSB+tAUTn7nCA -----END RSA PRIVATE KEY-----";

    #[test]
    fn secret_values_are_described_not_shown() {
        let m = invalid(
            "appliance.dkim.key",
            &format!("expected a PEM block `-----BEGIN RSA PRIVATE KEY-----`, found `{PEM}`"),
        );
        assert!(!m.contains("MIIEpAIB"), "{m}");
        assert!(
            m.contains("expected a PEM block `-----BEGIN RSA PRIVATE KEY-----`, found [hidden: "),
            "{m}"
        );
        assert!(m.starts_with("env.yml:3:5: appliance.dkim.key: "), "{m}");
        // One level too high, and repeated in single quotes.
        let m = invalid("appliance.dkim", &format!("`{PEM}` is odd; write '{PEM}'"));
        assert!(!m.contains("MIIEpAIB"), "{m}");
        // Unquoted base64 in a message about a secret key.
        let m = invalid("ecs.vault_sign", "found lQOYBF0AAAABCADt0kJ2+qW3 inside");
        assert!(!m.contains("lQOYBF0"), "{m}");
        let m = invalid("ssh_keys.ecdsa_private", "found `short`");
        assert_eq!(
            m,
            "env.yml:3:5: ssh_keys.ecdsa_private: found [hidden: 5 characters]"
        );
    }

    #[test]
    fn url_passwords_are_hidden() {
        let m = invalid(
            "appliance.backup.url",
            "expected a duplicity URL, found `sftp+x://backup:hunter2@host/p`",
        );
        assert!(m.ends_with("found `sftp+x://backup:***@host/p`"), "{m}");
        let m = invalid(
            "appliance.backup.url",
            "expected a URL, found `backup:hunter2@host/p`",
        );
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn other_values_are_shown_but_shortened() {
        assert_eq!(
            invalid("appliance.domain", "expected a domain name, found `not a domain`"),
            "env.yml:3:5: appliance.domain: expected a domain name, found `not a domain`"
        );
        let long = "x".repeat(500);
        let m = invalid("appliance.domain", &format!("found `{long}`"));
        assert!(
            m.ends_with(&format!("found `{}…` (500 characters)", "x".repeat(40))),
            "{m}"
        );
        let m = invalid(&"k".repeat(1000), "unknown key");
        assert!(m.len() < 300, "{m}");
        assert_eq!(
            pattern_of("appliance.extra.files[12].contents"),
            "appliance.extra.files[].contents"
        );
    }
}
