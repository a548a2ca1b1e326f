//! The seed's `user-data`: only the cloud-config part of env.yml (`ssh_authorized_keys`,
//! `ssh_keys`, `disable_root` and any other cloud-init key it carries). cloud-init 24.x and
//! later check user-data against their schema and report a key they do not know (`appliance:`,
//! `ecs:`) as a schema error, which leaves `cloud-init status` at `degraded done`; so the whole
//! env.yml travels beside it on the seed as its own file (`SEED_ENV_FILE`) for the agent.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::load::HEADER;
use crate::model::Env;
use crate::schema;

/// The name of the full env.yml in the root of the seed (ISO or FAT). NoCloud reads only
/// `user-data`, `meta-data`, `vendor-data` and `network-config`, and ignores it.
pub const SEED_ENV_FILE: &str = "env.yml";

impl Env {
    /// `#cloud-config` with the keys of env.yml that are cloud-init's, and nothing else.
    /// Keys of the original appliance that nobody reads (`ssh_deprecated_keys`) are left out,
    /// and so is an empty `ssh_authorized_keys` (cloud-init's schema wants at least one).
    /// Scalars are written as in env.yml, YAML 1.1-safe (`yes`, `on`, `0644` stay strings).
    pub fn cloud_config_yaml(&self) -> String {
        let mut keys: BTreeMap<&str, Value> = BTreeMap::new();
        if !self.ssh_authorized_keys.is_empty() {
            keys.insert("ssh_authorized_keys", self.ssh_authorized_keys.clone().into());
        }
        if !self.ssh_keys.is_empty() {
            let map = self
                .ssh_keys
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            keys.insert("ssh_keys", Value::Object(map));
        }
        if let Some(disable_root) = self.disable_root {
            keys.insert("disable_root", disable_root.into());
        }
        for (k, v) in &self.cloud_config {
            if schema::legacy(k).is_none() {
                keys.insert(k, v.clone());
            }
        }
        let mut options = serde_saphyr::SerializerOptions::default();
        // Long single lines (ssh keys) stay on one line instead of being folded.
        options.folded_wrap_chars = 1 << 20;
        let body = if keys.is_empty() {
            String::new()
        } else {
            serde_saphyr::to_string_with_options(&keys, options)
                .expect("a map of JSON values serializes to YAML")
        };
        format!(
            "{HEADER}\n# The cloud-init part of this appliance's env.yml, made by ecs-build; the whole\n\
             # env.yml is the file {SEED_ENV_FILE} beside this one, read by ecs-agent.\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cloud_init_keys_and_no_empty_key_list() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/original-env.yml"
        ))
        .unwrap();
        let (mut env, _) = Env::from_yaml_str(&text, "original-env.yml").unwrap();
        let yaml = env.cloud_config_yaml();
        assert!(yaml.starts_with("#cloud-config\n"), "{yaml}");
        assert!(yaml.contains("ssh_authorized_keys:"), "{yaml}");
        assert!(yaml.contains("disable_root: false"), "{yaml}");
        for absent in ["appliance:", "ecs:", "ssh_deprecated_keys:"] {
            assert!(!yaml.lines().any(|l| l.starts_with(absent)), "{absent} in {yaml}");
        }
        env.ssh_authorized_keys.clear();
        assert!(!env.cloud_config_yaml().contains("ssh_authorized_keys"));
    }
}
