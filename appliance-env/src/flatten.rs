//! env.yml as environment variables, as the original's flatyaml did for its shell scripts:
//! keys joined with `_` and upper-cased (`appliance.backup.mount.type` becomes
//! `APPLIANCE_BACKUP_MOUNT_TYPE`), lists as `_0`..`_n` plus `_LEN`, booleans `true`/`false`.
//! Defaults are filled in; absent optional keys are left out. cloud-init's own keys other than
//! `ssh_authorized_keys` are not included.

use serde_json::Value;

use crate::model::Env;

impl Env {
    /// `(NAME, value)` pairs in file order. Values are raw (not shell-quoted).
    pub fn flatten(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let sections: [(&str, Value); 3] = [
            (
                "SSH_AUTHORIZED_KEYS",
                serde_json::to_value(&self.ssh_authorized_keys).unwrap_or(Value::Null),
            ),
            (
                "APPLIANCE",
                serde_json::to_value(&self.appliance).unwrap_or(Value::Null),
            ),
            ("ECS", serde_json::to_value(&self.ecs).unwrap_or(Value::Null)),
        ];
        for (prefix, value) in sections {
            flatten_into(&mut out, prefix.to_string(), &value);
        }
        out
    }
}

fn name_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn flatten_into(out: &mut Vec<(String, String)>, name: String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((name, b.to_string())),
        Value::Number(n) => out.push((name, n.to_string())),
        Value::String(s) => out.push((name, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_into(out, format!("{name}_{i}"), item);
            }
            out.push((format!("{name}_LEN"), items.len().to_string()));
        }
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(out, format!("{name}_{}", name_part(k)), v);
            }
        }
    }
}
