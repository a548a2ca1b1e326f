//! Every env.yml key in one table: its type, default, who reads it and what it means. The table
//! drives the key check (unknown keys, suggestions, legacy warnings), the comments `to_yaml`
//! writes, and docs/env.md; a test keeps it in step with the serde model.

/// One key. `path` is dotted; `[]` stands for any item of a list.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub path: &'static str,
    pub ty: &'static str,
    pub required: bool,
    /// The value used when the key is absent ("" when there is none: the feature is off).
    pub default: &'static str,
    /// Who reads the value.
    pub reader: &'static str,
    /// What it means; written as comments into env.yml.
    pub doc: &'static str,
    /// Shown as a commented-out example in env.yml when the key is absent.
    pub example: &'static str,
    /// Whether error messages may quote the value (see `Secret`).
    pub secret: Secret,
}

/// How much of a key's value an error message may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// Anything (capped in length).
    No,
    /// Never the value: at most its length and, for long values, a short sha256 fingerprint.
    Value,
    /// A URL that may carry a password: shown with the password replaced by `***`.
    Url,
}

impl Key {
    /// The path of the mapping this key sits in ("" for the top level).
    pub fn parent(&self) -> &'static str {
        parent_of(self.path)
    }

    /// The last path component.
    pub fn name(&self) -> &'static str {
        let p = self.path;
        let cut = p.rfind('.').map(|i| i + 1).unwrap_or(0);
        &p[cut..]
    }
}

pub(crate) fn parent_of(path: &str) -> &str {
    match path.rfind('.') {
        Some(i) => {
            let p = &path[..i];
            p.strip_suffix("[]").unwrap_or(p)
        }
        None => "",
    }
}

mod table;

pub use table::{KEYS, LEGACY};

pub fn key(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// How much an error about the key at `pattern` (indices written `[]`) may show of its value.
/// `ssh_keys.*_private` covers the host key types the table does not list.
pub fn secret(pattern: &str) -> Secret {
    if let Some(name) = pattern.strip_prefix("ssh_keys.")
        && name.ends_with("_private")
    {
        return Secret::Value;
    }
    key(pattern).map_or(Secret::No, |k| k.secret)
}

/// Whether a secret key sits somewhere below `pattern` ("" is the top level): a scalar written
/// there may be secret text pasted one level too high.
pub fn holds_secrets(pattern: &str) -> bool {
    pattern.is_empty()
        || pattern == "ssh_keys"
        || KEYS.iter().any(|k| {
            k.secret != Secret::No
                && k.path
                    .strip_prefix(pattern)
                    .is_some_and(|r| r.starts_with(['.', '[']))
        })
}

pub fn legacy(path: &str) -> Option<&'static str> {
    LEGACY.iter().find(|(p, _)| *p == path).map(|(_, m)| *m)
}

/// The keys directly inside `parent`, in table order.
pub fn children(parent: &str) -> impl Iterator<Item = &'static Key> + '_ {
    KEYS.iter().filter(move |k| k.parent() == parent)
}

/// Whether `name` is a cloud-init `ssh_keys` entry.
pub(crate) fn is_ssh_keys_name(name: &str) -> bool {
    matches!(
        name.split_once('_'),
        Some(("ed25519" | "rsa" | "ecdsa", "private" | "public" | "certificate"))
    )
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a likely misspelling.
pub(crate) fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The key table as Markdown (the reference part of docs/env.md).
pub fn markdown_table() -> String {
    let mut out = String::from("| key | type | default | read by | meaning |\n|---|---|---|---|---|\n");
    let cell = |s: &str| s.replace('\n', " ").replace('|', "\\|");
    for k in KEYS {
        let default = if k.required {
            "**required**".to_string()
        } else if k.default.is_empty() {
            "none".to_string()
        } else if !k.default.contains(' ') || k.default.starts_with("*-*-*") {
            format!("`{}`", k.default)
        } else {
            k.default.to_string()
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.path,
            cell(k.ty),
            default,
            cell(k.reader),
            cell(k.doc)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_children() {
        assert_eq!(
            key("appliance.extra.files[].path").unwrap().parent(),
            "appliance.extra.files"
        );
        assert_eq!(key("appliance.domain").unwrap().name(), "domain");
        assert!(children("appliance.ssl").any(|k| k.name() == "letsencrypt"));
        for k in KEYS {
            assert!(
                k.parent().is_empty() || key(k.parent()).is_some(),
                "{} has no parent entry",
                k.path
            );
        }
    }

    #[test]
    fn secrets_are_marked() {
        for path in [
            "ssh_keys.rsa_private",
            "ssh_keys.ecdsa_private",
            "appliance.ssl.key",
            "appliance.dkim.key",
            "appliance.backup.encrypt",
            "appliance.extra.files[].contents",
            "ecs.settings",
            "ecs.vault_sign",
        ] {
            assert_eq!(secret(path), Secret::Value, "{path}");
        }
        assert_eq!(secret("appliance.backup.url"), Secret::Url);
        assert_eq!(secret("appliance.domain"), Secret::No);
        assert_eq!(secret("ssh_keys.rsa_public"), Secret::No);
        for path in [
            "",
            "appliance",
            "appliance.dkim",
            "appliance.extra.files",
            "ssh_keys",
            "ecs",
        ] {
            assert!(holds_secrets(path), "{path}");
        }
        for path in [
            "appliance.metric",
            "appliance.domain",
            "appliance.dkim.key",
            "appliance.ssl.letsencrypt",
        ] {
            assert!(!holds_secrets(path), "{path}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("domian", ["domain", "ssl"]), Some("domain"));
        assert_eq!(closest("completely", ["domain", "ssl"]), None);
        assert_eq!(closest("ecs", ["ssh_keys", "ecs"]), Some("ecs"));
    }
}
