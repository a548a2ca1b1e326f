//! Packer templates for building on top of an ecs-build raw image, emitted as HCL2
//! (`.pkr.hcl`) and as legacy JSON (`.json`) from one typed model.
//!
//! The output targets Packer 1.6.6 (Debian) as well as current releases: no `packer {
//! required_plugins }` block, no data sources, nothing that needs `packer init`. It knows
//! nothing of ECS: callers describe variables, sources and provisioners.

mod hcl;
mod json;

/// A value in a builder or provisioner block.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
    /// A reference to a template variable (`var.x` / `{{user `x`}}`).
    Var(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// A string variable with a default, overridable with `-var name=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub default: String,
    pub description: String,
}

/// A builder: `source "<kind>" "<name>"` in HCL2, `{"type": kind, "name": name}` in JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: String,
    pub name: String,
    pub settings: Vec<(String, Value)>,
}

/// A provisioner run on every source, e.g. `shell` with `inline`.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioner {
    pub kind: String,
    pub settings: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    pub variables: Vec<Variable>,
    pub sources: Vec<Source>,
    pub provisioners: Vec<Provisioner>,
}

/// A template that cannot be emitted: a name packer would reject, or a reference to an
/// undeclared variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packer template: {0}")]
pub struct TemplateError(pub String);

fn identifier_ok(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Template {
    /// Checks names and variable references before emitting.
    pub fn check(&self) -> Result<(), TemplateError> {
        let mut vars = Vec::new();
        for v in &self.variables {
            if !identifier_ok(&v.name) || vars.contains(&v.name.as_str()) {
                return Err(TemplateError(format!(
                    "variable name {:?} is invalid or repeated",
                    v.name
                )));
            }
            vars.push(v.name.as_str());
        }
        let mut names = Vec::new();
        for s in &self.sources {
            if !identifier_ok(&s.kind) || !identifier_ok(&s.name) || names.contains(&s.name.as_str()) {
                return Err(TemplateError(format!(
                    "source {:?} {:?}: invalid or repeated name",
                    s.kind, s.name
                )));
            }
            names.push(s.name.as_str());
        }
        let settings = self
            .sources
            .iter()
            .flat_map(|s| &s.settings)
            .chain(self.provisioners.iter().flat_map(|p| &p.settings));
        for (key, value) in settings {
            if !identifier_ok(key) {
                return Err(TemplateError(format!("setting name {key:?} is invalid")));
            }
            check_vars(value, &vars)?;
        }
        Ok(())
    }

    /// HCL2, for `packer build x.pkr.hcl` (Packer >= 1.6).
    pub fn to_hcl(&self) -> Result<String, TemplateError> {
        self.check()?;
        Ok(hcl::emit(self))
    }

    /// Legacy JSON, for every Packer version that reads JSON templates (name it `*.json`, not
    /// `*.pkr.json`, which Packer reads as HCL2-in-JSON).
    pub fn to_json(&self) -> Result<String, TemplateError> {
        self.check()?;
        Ok(json::emit(self))
    }
}

fn check_vars(value: &Value, vars: &[&str]) -> Result<(), TemplateError> {
    match value {
        Value::Var(v) if !vars.contains(&v.as_str()) => {
            Err(TemplateError(format!("reference to undeclared variable {v:?}")))
        }
        Value::List(items) => items.iter().try_for_each(|i| check_vars(i, vars)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Template {
        Template {
            variables: vec![Variable {
                name: "key".into(),
                default: "id_ed25519".into(),
                description: "SSH \"private\" key".into(),
            }],
            sources: vec![Source {
                kind: "qemu".into(),
                name: "ecs".into(),
                settings: vec![
                    ("disk_image".into(), true.into()),
                    ("iso_url".into(), "a ${b} %{c} \\ \"q\"".into()),
                    ("memory".into(), 2048.into()),
                    ("ssh_private_key_file".into(), Value::Var("key".into())),
                    (
                        "qemuargs".into(),
                        Value::List(vec![Value::List(vec!["-cdrom".into(), "seed.iso".into()])]),
                    ),
                ],
            }],
            provisioners: vec![Provisioner {
                kind: "shell".into(),
                settings: vec![("inline".into(), Value::List(vec!["echo {{x}}".into()]))],
            }],
        }
    }

    #[test]
    fn undeclared_variable_is_refused() {
        let mut t = sample();
        t.sources[0]
            .settings
            .push(("x".into(), Value::Var("nope".into())));
        assert!(t.to_hcl().unwrap_err().to_string().contains("nope"));
        let mut t = sample();
        t.sources.push(t.sources[0].clone());
        assert!(t.to_json().is_err());
    }
}
