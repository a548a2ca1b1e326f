//! Errors and warnings about an env.yml, each pointing at file, line, column and key path.

use std::fmt;
use std::path::PathBuf;

/// Where in which file something is: `env.yml:12:5`, or just `env.yml` when the value was not
/// read from that file (e.g. a generated default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A key we read differently from the original appliance (or not at all); the file still loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Location,
    /// Dotted key path, e.g. `appliance.allowed_hosts`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not the shape cloud-init and the appliance expect.
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// A key is unknown, missing, of the wrong type or has an invalid value.
    #[error("{at}: {key}: {message}")]
    Invalid {
        at: Location,
        key: String,
        message: String,
    },
    /// More than one `Invalid` value, in file order: `config check` reports every one at once.
    #[error("{} problems:{}", .0.len(), .0.iter().map(|e| format!("\n  {e}")).collect::<String>())]
    Several(Vec<EnvError>),
}

impl EnvError {
    /// The key path the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            EnvError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Every problem this error reports: the list of `Several`, else the error itself.
    pub fn problems(&self) -> Vec<&EnvError> {
        match self {
            EnvError::Several(list) => list.iter().collect(),
            other => vec![other],
        }
    }
}
