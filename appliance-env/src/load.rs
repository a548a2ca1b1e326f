//! Reading env.yml: header, YAML syntax, key names (against `schema`), types (serde), values
//! (`validate`). Every error carries file, line, column and key path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::error::{EnvError, Location, Warning};
use crate::model::Env;
use crate::redact::scrub;
use crate::schema;
use crate::tree::{self, Node, Pos, Seg};
use crate::validate;

/// The first line cloud-init needs to treat user-data as cloud-config.
pub const HEADER: &str = "#cloud-config";

/// The largest env.yml read: a generated one is about 30 KiB; this leaves room for a long
/// `ecs.settings` and `extra.files`, and keeps a hostile file from costing memory.
pub const MAX_ENV_BYTES: usize = 4 * 1024 * 1024;

/// Top-level cloud-init keys that are never taken for a misspelling of ours.
const CLOUD_INIT_NEIGHBOURS: &[&str] = &[
    "ssh",
    "ssh_pwauth",
    "ssh_deletekeys",
    "ssh_genkeytypes",
    "ssh_quiet_keygen",
    "ssh_publish_hostkeys",
    "disable_root_opts",
    "users",
    "groups",
    "apt",
    "ntp",
    "chef",
    "mcollective",
    "phone_home",
];

impl Env {
    /// Reads and validates an env.yml. Warnings name keys of the original appliance that are
    /// read differently or ignored. Only a regular file of at most `MAX_ENV_BYTES` is read.
    pub fn load(path: &Path) -> Result<(Env, Vec<Warning>), EnvError> {
        let bytes = read_file(path)?;
        let file = path.display().to_string();
        let text = utf8(&bytes, &file)?;
        Env::from_yaml_str(text, &file)
    }

    /// Like `load`, for text already read; `file` names it in messages.
    pub fn from_yaml_str(text: &str, file: &str) -> Result<(Env, Vec<Warning>), EnvError> {
        Env::from_yaml_str_unscrubbed(text, file).map_err(scrub)
    }

    fn from_yaml_str_unscrubbed(text: &str, file: &str) -> Result<(Env, Vec<Warning>), EnvError> {
        check_size(text, file)?;
        let first = text.lines().next().unwrap_or("");
        if first.trim_end() != HEADER {
            return Err(EnvError::Syntax {
                at: at(file, Pos { line: 1, column: 1 }),
                message: format!(
                    "expected `{HEADER}` as the first line (cloud-init ignores user-data without it)"
                ),
            });
        }
        let doc = parse_tree(text, file)?;
        let warnings = check_keys(&doc, file)?;
        let env = deserialize_yaml(text, file, &doc)?;
        check_values(&env, file, Some(&doc))?;
        Ok((env, warnings))
    }

    /// Merges a partial env (e.g. `config new --extra extra.yml`) over this one: mappings merge
    /// key by key, anything else replaces. Errors point into `file`.
    pub fn merge_yaml_str(&self, text: &str, file: &str) -> Result<(Env, Vec<Warning>), EnvError> {
        self.merge_yaml_str_unscrubbed(text, file).map_err(scrub)
    }

    fn merge_yaml_str_unscrubbed(&self, text: &str, file: &str) -> Result<(Env, Vec<Warning>), EnvError> {
        check_size(text, file)?;
        let doc = parse_tree(text, file)?;
        let warnings = check_keys(&doc, file)?;
        let extra: serde_json::Value = if matches!(&doc, Node::Map { entries, .. } if entries.is_empty()) {
            serde_json::Value::Object(Default::default())
        } else {
            serde_saphyr::from_str_with_options(text, options()).map_err(|e| EnvError::Syntax {
                at: saphyr_location(file, &e),
                message: strip_location(&e.to_string()),
            })?
        };
        let mut merged = serde_json::to_value(self).map_err(|e| EnvError::Syntax {
            at: at(file, Pos::default()),
            message: format!("serializing the generated env: {e}"),
        })?;
        merge(&mut merged, extra);
        let env = serde_path_to_error::deserialize::<_, Env>(merged).map_err(|e| {
            let path = segments(e.path());
            let message = friendly(&e.inner().to_string());
            invalid(file, &doc, path, message)
        })?;
        check_values(&env, file, Some(&doc))?;
        Ok((env, warnings))
    }

    /// Validates values of an env built in memory (e.g. freshly generated).
    pub fn validate(&self, file: &str) -> Result<(), EnvError> {
        check_values(self, file, None).map_err(scrub)
    }
}

/// Reads an env.yml (or a file merged into one): a regular file, at most `MAX_ENV_BYTES`.
/// A directory, FIFO or device is refused at once, without reading from it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, EnvError> {
    host_util::read_regular(path, MAX_ENV_BYTES as u64).map_err(|source| EnvError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The bytes as text, or an error at the line and column of the first byte that is not UTF-8.
pub fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, EnvError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        EnvError::Syntax {
            at: at(file, Pos { line, column }),
            message: "expected UTF-8 text, found a byte sequence that is not UTF-8".into(),
        }
    })
}

/// Text handed in directly (the agent reads the seed itself) is held to the same size limit.
fn check_size(text: &str, file: &str) -> Result<(), EnvError> {
    if text.len() <= MAX_ENV_BYTES {
        return Ok(());
    }
    let head = &text.as_bytes()[..MAX_ENV_BYTES];
    let line = head.iter().filter(|&&b| b == b'\n').count() + 1;
    Err(EnvError::Syntax {
        at: at(file, Pos { line, column: 1 }),
        message: format!(
            "the file is {} bytes, more than the limit of {} MiB for env.yml (the limit is reached on this line)",
            text.len(),
            MAX_ENV_BYTES / (1024 * 1024)
        ),
    })
}

fn at(file: &str, pos: Pos) -> Location {
    Location {
        file: file.to_string(),
        line: pos.line,
        column: pos.column,
    }
}

fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    // Plain scalars that are numbers or booleans must be quoted where a string is expected:
    // PyYAML (cloud-init) would read them as numbers or booleans.
    o.no_schema = true;
    o.with_snippet = false;
    o.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // `tree::parse` has already refused alias bombs and deep nesting; these keep the
    // deserializer within the same bounds should it ever run first.
    o.alias_limits.max_total_replayed_events = tree::MAX_NODES;
    if let Some(budget) = o.budget.as_mut() {
        budget.max_depth = tree::MAX_DEPTH;
        budget.max_nodes = tree::MAX_NODES;
    }
    o
}

fn parse_tree(text: &str, file: &str) -> Result<Node, EnvError> {
    let doc = tree::parse(text).map_err(|e| EnvError::Syntax {
        at: at(file, e.at),
        message: format!("invalid YAML: {}", e.message),
    })?;
    if !matches!(doc, Node::Map { .. }) {
        return Err(EnvError::Syntax {
            at: at(file, doc.at()),
            message: "expected a mapping of keys (appliance:, ecs:, ...) at the top level".into(),
        });
    }
    Ok(doc)
}

fn invalid(file: &str, doc: &Node, path: Vec<Seg>, message: String) -> EnvError {
    let pos = doc.locate(&path);
    EnvError::Invalid {
        at: at(file, pos),
        key: tree::path_string(&path),
        message,
    }
}

/// Checks key names against the schema; collects warnings for legacy keys.
fn check_keys(doc: &Node, file: &str) -> Result<Vec<Warning>, EnvError> {
    let mut warnings = Vec::new();
    let mut path = Vec::new();
    walk(doc, &mut path, file, &mut warnings)?;
    Ok(warnings)
}

fn walk(node: &Node, path: &mut Vec<Seg>, file: &str, warnings: &mut Vec<Warning>) -> Result<(), EnvError> {
    let parent = tree::pattern_string(path);
    match node {
        Node::Map { entries, .. } => {
            for entry in entries {
                path.push(Seg::Key(entry.key.clone()));
                let pattern = tree::pattern_string(path);
                let result = check_entry(&parent, &pattern, entry, path, file, warnings);
                let descend = match result {
                    Ok(d) => d,
                    Err(e) => {
                        path.pop();
                        return Err(e);
                    }
                };
                if descend {
                    walk(&entry.value, path, file, warnings)?;
                }
                path.pop();
            }
        }
        Node::Seq { items, .. } => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(item, path, file, warnings)?;
                path.pop();
            }
        }
        Node::Scalar {
            value,
            plain,
            at: pos,
        } => {
            let is_bool = schema::key(&parent).is_some_and(|k| k.ty == "bool");
            if is_bool && let Some(message) = ambiguous_bool(value) {
                return Err(EnvError::Invalid {
                    at: at(file, *pos),
                    key: tree::path_string(path),
                    message,
                });
            }
            let ours = matches!(path.first(), Some(Seg::Key(k)) if k == "appliance" || k == "ecs");
            if ours
                && *plain
                && let Some(reading) = tree::yaml11_reading(value)
            {
                return Err(EnvError::Invalid {
                    at: at(file, *pos),
                    key: tree::path_string(path),
                    message: format!(
                        "`{value}` is {reading} to cloud-init's YAML 1.1 parser; expected a quoted string: '{value}'"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `y`, `n`, `Y`, `N` (in any case, quoted or not) where a boolean belongs: PyYAML, and so
/// cloud-init, reads them as strings (cloud-init's `disable_root: y` means false), serde-saphyr's
/// YAML 1.1 booleans as true/false. Refused rather than guessed. The other spellings (true,
/// yes, on, false, no, off) mean the same to both.
fn ambiguous_bool(value: &str) -> Option<String> {
    matches!(value.trim(), "y" | "Y" | "n" | "N").then(|| {
        format!(
            "`{value}` is not a boolean to cloud-init's YAML 1.1 parser (PyYAML reads the string '{value}'); expected true or false"
        )
    })
}

/// cloud-init's own top-level keys are passed through, and written back when env.yml is
/// generated (`config new --extra`): plain scalars PyYAML reads differently from us are refused
/// there too, so what cloud-init finally reads is what was written.
fn check_cloud_config(node: &Node, path: &mut Vec<Seg>, file: &str) -> Result<(), EnvError> {
    match node {
        Node::Map { entries, .. } => {
            for entry in entries {
                path.push(Seg::Key(entry.key.clone()));
                check_cloud_config(&entry.value, path, file)?;
                path.pop();
            }
        }
        Node::Seq { items, .. } => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                check_cloud_config(item, path, file)?;
                path.pop();
            }
        }
        Node::Scalar {
            value,
            plain: true,
            at: pos,
        } => {
            let message = ambiguous_bool(value).or_else(|| {
                tree::yaml11_reading(value).map(|reading| {
                    format!(
                        "`{value}` is {reading} to cloud-init's YAML 1.1 parser; expected a quoted string: '{value}'"
                    )
                })
            });
            if let Some(message) = message {
                return Err(EnvError::Invalid {
                    at: at(file, *pos),
                    key: tree::path_string(path),
                    message,
                });
            }
        }
        Node::Scalar { .. } => {}
    }
    Ok(())
}

/// Whether to look inside the entry's value.
fn check_entry(
    parent: &str,
    pattern: &str,
    entry: &tree::Entry,
    path: &[Seg],
    file: &str,
    warnings: &mut Vec<Warning>,
) -> Result<bool, EnvError> {
    let name = entry.key.as_str();
    if let Some(message) = schema::legacy(pattern) {
        warnings.push(Warning {
            at: at(file, entry.key_at),
            key: tree::path_string(path),
            message: message.to_string(),
        });
        return Ok(false);
    }
    if let Some(key) = schema::key(pattern) {
        // Only mappings and lists are looked into; a scalar there is serde's type error.
        // A scalar where a container belongs (or the reverse) is left to serde's type error.
        let container = key.ty.starts_with("mapping") || key.ty.starts_with("list");
        let scalar = matches!(entry.value, Node::Scalar { .. });
        return Ok(container != scalar);
    }
    let unknown = |message: String| EnvError::Invalid {
        at: at(file, entry.key_at),
        key: tree::path_string(path),
        message,
    };
    if parent.is_empty() {
        // Other top-level keys are cloud-init's: passed through, unless they look like ours.
        let ours = schema::children("").map(|k| k.name());
        if !CLOUD_INIT_NEIGHBOURS.contains(&name)
            && let Some(near) = schema::closest(name, ours)
        {
            return Err(unknown(format!("unknown key; did you mean `{near}`?")));
        }
        let mut inner = path.to_vec();
        check_cloud_config(&entry.value, &mut inner, file)?;
        return Ok(false);
    }
    if parent == "ssh_keys" {
        if schema::is_ssh_keys_name(name) {
            return Ok(false);
        }
        return Err(unknown(
            "unknown key; expected {ed25519,rsa,ecdsa}_{private,public,certificate}".to_string(),
        ));
    }
    let siblings: Vec<&str> = schema::children(parent).map(|k| k.name()).collect();
    let message = match schema::closest(name, siblings.iter().copied()) {
        Some(near) => {
            let prefix = tree::path_string(&path[..path.len() - 1]);
            format!("unknown key; did you mean `{prefix}.{near}`?")
        }
        None => format!("unknown key; expected one of: {}", siblings.join(", ")),
    };
    Err(unknown(message))
}

fn deserialize_yaml(text: &str, file: &str, doc: &Node) -> Result<Env, EnvError> {
    let mut failed_at = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize::<_, Env>(de).map_err(|e| {
            failed_at = Some(segments(e.path()));
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let raw = e.to_string();
        let path = failed_at.unwrap_or_default();
        if let Some(field) = missing_field(&raw) {
            let mut key = path.clone();
            key.push(Seg::Key(field.to_string()));
            let pos = if path.is_empty() {
                Pos { line: 1, column: 1 }
            } else {
                doc.locate(&path)
            };
            return EnvError::Invalid {
                at: at(file, pos),
                key: tree::path_string(&key),
                message: "missing; this key is required".to_string(),
            };
        }
        let message = friendly(&strip_location(&raw));
        if !path.is_empty() && doc.contains(&path) {
            invalid(file, doc, path, message)
        } else {
            EnvError::Invalid {
                at: saphyr_location(file, &e),
                key: tree::path_string(&path),
                message,
            }
        }
    })
}

fn saphyr_location(file: &str, e: &serde_saphyr::Error) -> Location {
    match e.location() {
        Some(l) => Location {
            file: file.to_string(),
            line: l.line() as usize,
            column: l.column() as usize,
        },
        // No position: the document as a whole.
        None => at(file, Pos { line: 1, column: 1 }),
    }
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    path.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            _ => None,
        })
        .collect()
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// serde-saphyr appends " at line N, column M"; we print the position in front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Says what was expected, in the operator's terms.
fn friendly(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("The string value [")
        && let Some(value) = rest.strip_suffix("] must be quoted")
    {
        return format!(
            "`{value}` is not a string to cloud-init's YAML 1.1 parser; expected a quoted string: '{value}'"
        );
    }
    match message {
        "expected string scalar" => "expected a string".to_string(),
        "invalid boolean" => "expected true or false".to_string(),
        m if m.starts_with("duplicate mapping key") => {
            let key = m
                .trim_start_matches("duplicate mapping key: ")
                .split(',')
                .next()
                .unwrap_or("");
            format!("duplicate key `{key}`")
        }
        m => m.to_string(),
    }
}

/// Every value problem, in file order: one is `Invalid`, more are `Several`.
fn check_values(env: &Env, file: &str, doc: Option<&Node>) -> Result<(), EnvError> {
    let mut errors: Vec<(Pos, EnvError)> = validate::check(env)
        .into_iter()
        .map(|(path, message)| {
            // A key left at its default is not in the file: name the nearest enclosing key that is.
            let pos = doc.map_or_else(Pos::default, |d| d.locate(&path));
            let error = EnvError::Invalid {
                at: at(file, pos),
                key: tree::path_string(&path),
                message,
            };
            (pos, error)
        })
        .collect();
    errors.sort_by_key(|(pos, _)| (pos.line == 0, pos.line, pos.column));
    let mut errors: Vec<EnvError> = errors.into_iter().map(|(_, e)| e).collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(EnvError::Several(errors)),
    }
}

/// Deep merge: mappings key by key; anything else replaces.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Deserializes a defaulted container that may be written as an empty key (YAML null), as the
/// original template did (`ssh_authorized_keys:` followed only by comments).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The top level: our keys typed, any other key kept for cloud-init.
impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EnvVisitor)
    }
}

struct EnvVisitor;

impl<'de> Visitor<'de> for EnvVisitor {
    type Value = Env;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a cloud-config mapping with appliance: and ecs:")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Env, A::Error> {
        let mut ssh_authorized_keys = None;
        let mut ssh_keys = None;
        let mut disable_root = None;
        let mut appliance = None;
        let mut ecs = None;
        let mut cloud_config = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let dup = || de::Error::custom(format!("duplicate key `{key}`"));
            match key.as_str() {
                "ssh_authorized_keys" => {
                    let v: Option<Vec<String>> = map.next_value()?;
                    ssh_authorized_keys
                        .replace(v.unwrap_or_default())
                        .map_or(Ok(()), |_| Err(dup()))?;
                }
                "ssh_keys" => {
                    let v: Option<BTreeMap<String, String>> = map.next_value()?;
                    ssh_keys
                        .replace(v.unwrap_or_default())
                        .map_or(Ok(()), |_| Err(dup()))?;
                }
                "disable_root" => {
                    let v: Option<bool> = map.next_value()?;
                    disable_root.replace(v).map_or(Ok(()), |_| Err(dup()))?;
                }
                "appliance" => {
                    appliance
                        .replace(map.next_value()?)
                        .map_or(Ok(()), |_| Err(dup()))?;
                }
                "ecs" => {
                    ecs.replace(map.next_value()?).map_or(Ok(()), |_| Err(dup()))?;
                }
                _ => {
                    let v: serde_json::Value = map.next_value()?;
                    cloud_config.insert(key, v);
                }
            }
        }
        Ok(Env {
            ssh_authorized_keys: ssh_authorized_keys.unwrap_or_default(),
            ssh_keys: ssh_keys.unwrap_or_default(),
            disable_root: disable_root.flatten(),
            appliance: appliance.ok_or_else(|| de::Error::missing_field("appliance"))?,
            ecs: ecs.ok_or_else(|| de::Error::missing_field("ecs"))?,
            cloud_config,
        })
    }
}
