//! Writing env.yml: `#cloud-config`, then every key in schema order with its meaning as
//! comments (absent optional sections as commented-out examples), as the original template did.
//! Scalars go through serde-saphyr, which quotes whatever YAML 1.1 would read as something
//! other than a string (`yes`, `on`, `0644`, `12:30`, `~`, dates); multi-line text becomes a
//! literal block.

use std::fmt::Write;

use serde_json::Value;

use crate::load::HEADER;
use crate::model::Env;
use crate::schema;

impl Env {
    /// The self-documenting env.yml text.
    pub fn to_yaml(&self) -> String {
        let value = serde_json::to_value(self).expect("the env model serializes to JSON");
        let Value::Object(top) = value else {
            unreachable!("Env serializes as a mapping")
        };
        let mut out = String::new();
        out.push_str(HEADER);
        out.push('\n');
        let _ = write!(
            out,
            "# The configuration of the ECS appliance {domain}, with all its key material.\n\
             # Keep it secret (mode 0600) and keep its printout (env.pdf) in a safe place.\n\
             # cloud-init reads the top-level keys it knows; ecs-agent reads appliance: and ecs:.\n\
             # Every key is described in docs/env.md. After editing: ecs-build config check env.yml\n",
            domain = self.appliance.domain
        );
        let mut emitted = Vec::new();
        for key in schema::children("") {
            out.push('\n');
            emit_key(&mut out, 0, key.path, top.get(key.name()));
            emitted.push(key.name());
        }
        let others: Vec<(&String, &Value)> = top
            .iter()
            .filter(|(k, _)| !emitted.contains(&k.as_str()))
            .collect();
        if !others.is_empty() {
            out.push_str("\n# Other cloud-config, passed to cloud-init unchanged.\n");
            for (k, v) in others {
                let one: std::collections::BTreeMap<&String, &Value> = [(k, v)].into_iter().collect();
                out.push_str(&serde_saphyr::to_string(&one).unwrap_or_default());
            }
        }
        out
    }
}

fn comment(out: &mut String, indent: usize, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{:indent$}# {line}", "");
    }
}

/// A schema key: its doc comment, then its value, or a commented example when absent.
fn emit_key(out: &mut String, indent: usize, path: &str, value: Option<&Value>) {
    let Some(key) = schema::key(path) else { return };
    match value {
        Some(v) => {
            comment(out, indent, key.doc);
            emit_value(out, indent, path, key.name(), v);
        }
        None if !key.example.is_empty() => {
            comment(out, indent, key.doc);
            comment(out, indent, key.example);
        }
        None => {}
    }
}

fn emit_value(out: &mut String, indent: usize, path: &str, name: &str, value: &Value) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if map.is_empty() => {
            let _ = writeln!(out, "{pad}{}: {{}}", scalar_key(name));
        }
        Value::Object(map) => {
            let _ = writeln!(out, "{pad}{}:", scalar_key(name));
            let mut done = Vec::new();
            for child in schema::children(path) {
                if path.is_empty() {
                    break;
                }
                emit_key(out, indent + 2, child.path, map.get(child.name()));
                done.push(child.name());
            }
            for (k, v) in map.iter().filter(|(k, _)| !done.contains(&k.as_str())) {
                emit_value(out, indent + 2, &format!("{path}.{k}"), k, v);
            }
        }
        Value::Array(items) if items.is_empty() => {
            let _ = writeln!(out, "{pad}{}: []", scalar_key(name));
        }
        Value::Array(items) => {
            let _ = writeln!(out, "{pad}{}:", scalar_key(name));
            for item in items {
                emit_item(out, indent + 2, &format!("{path}[]"), item);
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}: {}", scalar_key(name), scalar(other, indent));
        }
    }
}

/// A list item: `- scalar`, or a mapping whose first key sits on the dash line.
fn emit_item(out: &mut String, indent: usize, path: &str, item: &Value) {
    let pad = " ".repeat(indent);
    match item {
        Value::Object(map) if !map.is_empty() => {
            let mut body = String::new();
            let mut done = Vec::new();
            for child in schema::children(path) {
                if let Some(v) = map.get(child.name()) {
                    emit_value(&mut body, indent + 2, child.path, child.name(), v);
                    done.push(child.name());
                }
            }
            for (k, v) in map.iter().filter(|(k, _)| !done.contains(&k.as_str())) {
                emit_value(&mut body, indent + 2, &format!("{path}.{k}"), k, v);
            }
            // The first line's indentation becomes the dash.
            let first_pad = " ".repeat(indent + 2);
            let body = body.strip_prefix(&first_pad).unwrap_or(&body);
            let _ = write!(out, "{pad}- {body}");
        }
        Value::Array(_) | Value::Object(_) => {
            let text = serde_saphyr::to_string(item).unwrap_or_default();
            let mut lines = text.lines();
            let _ = writeln!(out, "{pad}- {}", lines.next().unwrap_or("[]"));
            for line in lines {
                let _ = writeln!(out, "{pad}  {line}");
            }
        }
        other => {
            let _ = writeln!(out, "{pad}- {}", scalar(other, indent));
        }
    }
}

fn scalar_key(name: &str) -> String {
    let text = scalar(&Value::String(name.to_string()), 0);
    if text.starts_with(['|', '>']) {
        format!("{name:?}")
    } else {
        text
    }
}

/// A scalar in YAML 1.1-safe form; block scalars are indented under the key at `indent`.
fn scalar(value: &Value, indent: usize) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    // Long single lines (ssh keys) stay on one line instead of being folded.
    options.folded_wrap_chars = 1 << 20;
    let text = serde_saphyr::to_string_with_options(value, options).unwrap_or_default();
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if !text.starts_with(['|', '>']) {
        return text.to_string();
    }
    let pad = " ".repeat(indent);
    let mut lines = text.split('\n');
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}
