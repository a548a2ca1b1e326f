//! The package list of a base tree, read from `var/lib/dpkg/status` inside mmdebstrap's tarball
//! (no extraction, no chroot): recorded in the rootfs cache entry and in the image manifest.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no var/lib/dpkg/status inside: not a Debian tree")]
    NoStatus { path: String },
}

/// Installed packages, sorted by name.
pub fn from_tarball(tarball: &Path) -> Result<Vec<Package>, PackagesError> {
    let io = |source| PackagesError::Io {
        path: tarball.display().to_string(),
        source,
    };
    let file = std::fs::File::open(tarball).map_err(io)?;
    let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        let p = path.to_string_lossy();
        if p.trim_start_matches("./") == "var/lib/dpkg/status" {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(io)?;
            return Ok(parse_status(&text));
        }
    }
    Err(PackagesError::NoStatus {
        path: tarball.display().to_string(),
    })
}

/// Parses dpkg's status file: paragraphs of `Field: value`, keeping installed packages.
pub fn parse_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        let installed = field("Status").is_some_and(|s| s.ends_with(" installed"));
        if let (true, Some(name), Some(version)) = (installed, field("Package"), field("Version")) {
            out.push(Package {
                name,
                version,
                architecture: field("Architecture").unwrap_or_default(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.architecture.cmp(&b.architecture)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_installed_packages_only() {
        let status = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.3\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 13.8\nDescription: x\n y\n";
        let p = parse_status(status);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "base-files");
        assert_eq!(p[1].version, "1:1.3");
    }
}
