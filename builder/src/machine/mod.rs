//! The machine.yml model: what `ecs-build image` builds (base system, disks, outputs, env, agent,
//! baked container images). Strict: unknown keys are errors naming the key and its line.
//! Loading resolves relative paths against the file's directory; `validate` checks values
//! before any work starts. The pipeline itself lives in `crate::pipeline`.

use std::fmt;
use std::path::{Path, PathBuf};

use image_layout::{Size, TableKind};
use serde::{Deserialize, Deserializer};

/// The commented default, printed by `ecs-build image --print-default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

/// machine.yml could not be read, parsed or validated. The message names the file, the line
/// or key, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
    /// More than one invalid value: every one is reported at once, `(key, message)` in key order.
    #[error("{}", several(.path, .problems))]
    Several {
        path: String,
        problems: Vec<(String, String)>,
    },
}

fn several(path: &str, problems: &[(String, String)]) -> String {
    let lines: String = problems
        .iter()
        .map(|(key, message)| format!("\n  {path}: {key}: {message}"))
        .collect();
    format!("{path}: {} problems:{lines}", problems.len())
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Machine {
    pub name: String,
    pub hostname: String,
    pub seed: String,
    pub base: Base,
    pub disks: Disks,
    pub outputs: Outputs,
    pub env: Option<PathBuf>,
    pub embed_env: bool,
    pub agent: Agent,
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Base {
    pub distribution: String,
    pub suite: String,
    pub mirror: Option<String>,
    pub packages: Vec<String>,
    pub extra_packages: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Mbr,
    Gpt,
}

impl From<Table> for TableKind {
    fn from(t: Table) -> Self {
        match t {
            Table::Mbr => TableKind::Mbr,
            Table::Gpt => TableKind::Gpt,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Disks {
    pub table: Table,
    #[serde(deserialize_with = "size")]
    pub root_size: Size,
    #[serde(deserialize_with = "size")]
    pub volatile_size: Size,
    #[serde(deserialize_with = "size")]
    pub data_size: Size,
    pub raid1: bool,
    pub kernel_cmdline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outputs {
    pub dir: PathBuf,
    pub raw: bool,
    pub qcow2: bool,
    pub vmdk: bool,
    pub vagrant_box: bool,
    pub packer: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agent {
    pub binary: Option<PathBuf>,
    pub units: Option<PathBuf>,
}

/// The appliance package set (see default.yml for the reasons behind each group).
pub const DEFAULT_PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "initramfs-tools",
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "systemd-timesyncd",
    "udev",
    "dbus",
    "cloud-init",
    "cloud-guest-utils",
    "docker.io",
    "docker-cli",
    "nftables",
    "docker-compose",
    "lvm2",
    "mdadm",
    "duplicity",
    "gnupg",
    "nginx",
    "openssh-server",
    "postgresql-client",
    "unattended-upgrades",
    "ca-certificates",
    "e2fsprogs",
    "iproute2",
    "netbase",
    "openssl",
    "kmod",
    "procps",
    "sudo",
    "less",
    "xz-utils",
    "xorriso",
    "mtools",
    "curl",
    "gnupg1",
    "postfix",
    "opendkim",
];

impl Default for Machine {
    fn default() -> Self {
        Machine {
            name: "ecs-appliance".into(),
            hostname: "ecs".into(),
            seed: "ecs-appliance".into(),
            base: Base::default(),
            disks: Disks::default(),
            outputs: Outputs::default(),
            env: None,
            embed_env: false,
            agent: Agent::default(),
            images: Vec::new(),
        }
    }
}

impl Default for Base {
    fn default() -> Self {
        Base {
            distribution: "debian".into(),
            suite: "trixie".into(),
            mirror: None,
            packages: DEFAULT_PACKAGES.iter().map(|p| p.to_string()).collect(),
            extra_packages: Vec::new(),
        }
    }
}

impl Default for Disks {
    fn default() -> Self {
        Disks {
            table: Table::Mbr,
            root_size: Size::gib(10),
            volatile_size: Size::gib(10),
            data_size: Size::gib(50),
            raid1: false,
            kernel_cmdline: "console=tty0 console=ttyS0,115200n8".into(),
        }
    }
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            dir: PathBuf::from("out"),
            raw: true,
            qcow2: true,
            vmdk: false,
            vagrant_box: false,
            packer: true,
        }
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Num(n) => Ok(Size(n)),
        Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// A loaded machine.yml: the model with its paths resolved, the file's bytes (for the manifest)
/// and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedMachine {
    pub machine: Machine,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Table::Mbr => "mbr",
            Table::Gpt => "gpt",
        })
    }
}

/// The largest machine.yml read (the commented default is 5 KiB).
pub const MAX_MACHINE_BYTES: usize = 1024 * 1024;

/// Limits that keep a hostile machine.yml cheap: aliases may not multiply the document (an alias
/// bomb), nesting stays shallow, and the whole document stays small.
fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 100_000;
    budget.max_nodes = 50_000;
    budget.max_depth = 32;
    budget.max_total_scalar_bytes = 4 * MAX_MACHINE_BYTES;
    budget.max_documents = 1;
    o.budget = Some(budget);
    o.alias_limits.max_total_replayed_events = 10_000;
    o.alias_limits.max_replay_stack_depth = 16;
    o.with_snippet = false;
    o
}

/// Parses machine.yml text; `name` is used in messages.
pub fn parse(name: &str, text: &str) -> Result<Machine, MachineError> {
    if text.len() > MAX_MACHINE_BYTES {
        return Err(MachineError::Parse {
            path: name.to_string(),
            line: 1,
            column: 1,
            message: format!(
                "the file is {} bytes, more than the limit of {} MiB for machine.yml",
                text.len(),
                MAX_MACHINE_BYTES / (1024 * 1024)
            ),
        });
    }
    if text.trim().is_empty() {
        return Ok(Machine::default());
    }
    serde_saphyr::from_str_with_options::<Machine>(text, options()).map_err(|e| parse_error(name, &e))
}

/// serde-saphyr's message without its trailing position, in `file:line:column: message` form
/// (line 1 when the parser names no position, e.g. for a budget limit).
fn parse_error(name: &str, e: &serde_saphyr::Error) -> MachineError {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or(&full).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match first.rfind(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let (line, column) = e
        .location()
        .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
    MachineError::Parse {
        path: name.to_string(),
        line,
        column,
        message: shorten(message),
    }
}

/// Messages quote values from the file: at most 200 characters of them.
fn shorten(message: &str) -> String {
    let n = message.chars().count();
    if n <= 200 {
        return message.to_string();
    }
    let head: String = message.chars().take(200).collect();
    format!("{head}… ({n} characters)")
}

/// Reads, parses, resolves relative paths against the file's directory, and validates.
pub fn load(path: &Path) -> Result<LoadedMachine, MachineError> {
    let name = path.display().to_string();
    // A regular file only (not a FIFO, device or directory), and no more than the limit.
    let bytes =
        host_util::read_regular(path, MAX_MACHINE_BYTES as u64).map_err(|source| MachineError::Read {
            path: name.clone(),
            source,
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        MachineError::Parse {
            path: name.clone(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
            column: String::from_utf8_lossy(&good[line_start..]).chars().count() + 1,
            message: "expected UTF-8 text, found a byte sequence that is not UTF-8".into(),
        }
    })?;
    let mut machine = parse(&name, text)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    machine.resolve_paths(dir);
    machine.validate(&name)?;
    Ok(LoadedMachine {
        machine,
        path: path.to_path_buf(),
        bytes,
    })
}

impl Machine {
    fn resolve_paths(&mut self, dir: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        join(&mut self.outputs.dir);
        self.env.as_mut().map(join);
        self.agent.binary.as_mut().map(join);
        self.agent.units.as_mut().map(join);
        self.images.iter_mut().for_each(join);
    }

    /// The packages handed to mmdebstrap: the set plus extras, sorted and deduplicated.
    pub fn package_list(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .base
            .packages
            .iter()
            .chain(&self.base.extra_packages)
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Checks values the types cannot: names, sizes, package names, reserved outputs, what goes
    /// into grub.cfg and apt's sources, the disk layout. Every problem is reported, not only the first.
    pub fn validate(&self, file: &str) -> Result<(), MachineError> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut bad = |key: &str, message: String| problems.push((key.to_string(), message));
        let file_safe = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        };
        if !file_safe(&self.name) {
            bad(
                "name",
                format!(
                    "{:?}: expected letters, digits, '.', '_', '+', '-' (it names files)",
                    self.name
                ),
            );
        }
        if !valid_hostname(&self.hostname) {
            bad(
                "hostname",
                format!(
                    "{:?}: expected a host name label (a-z, 0-9, '-', at most 63)",
                    self.hostname
                ),
            );
        }
        if self.seed.is_empty() {
            bad("seed", "expected a non-empty string".into());
        }
        if self.base.distribution != "debian" {
            bad(
                "base.distribution",
                format!("{:?}: only `debian` is supported", self.base.distribution),
            );
        }
        if self.base.suite.is_empty()
            || !self
                .base
                .suite
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            bad(
                "base.suite",
                format!("{:?}: expected a suite name like trixie", self.base.suite),
            );
        }
        if let Some(m) = &self.base.mirror
            && let Err(e) = mirror(m)
        {
            bad("base.mirror", e);
        }
        for (key, list) in [
            ("base.packages", &self.base.packages),
            ("base.extra_packages", &self.base.extra_packages),
        ] {
            for (i, p) in list.iter().enumerate() {
                if !valid_package(p) {
                    bad(
                        &format!("{key}[{i}]"),
                        format!("{p:?} is not a Debian package name"),
                    );
                }
            }
        }
        if !self.package_list().iter().any(|p| p.starts_with("linux-image-")) {
            bad(
                "base.packages",
                "no kernel: the image boots only with a linux-image-* package".into(),
            );
        }
        let min = Size::mib(256);
        let mut sizes_ok = true;
        for (key, size) in [
            ("disks.root_size", self.disks.root_size),
            ("disks.volatile_size", self.disks.volatile_size),
        ] {
            if size < min || !size.bytes().is_multiple_of(Size::MIB) {
                sizes_ok = false;
                bad(
                    key,
                    format!("{size}: expected a whole number of MiB, at least {min}"),
                );
            }
        }
        // The system disk's partitions as `disk system` and the image build will lay them out,
        // so a table that cannot hold them (MBR beyond 2 TiB) is refused before the base build.
        if sizes_ok {
            let plan = image_layout::SystemDiskPlan {
                table: self.disks.table.into(),
                root_size: self.disks.root_size,
                volatile_size: self.disks.volatile_size,
                root_label: image_layout::system::DEFAULT_ROOT_LABEL.into(),
                volatile_label: image_layout::system::DEFAULT_VOLATILE_LABEL.into(),
                kernel_cmdline: String::new(),
                seed: image_layout::Seed(self.seed.clone()),
                timestamp: 0,
            };
            if let Err(e) = image_layout::layout::Layout::system(&plan) {
                bad(
                    "disks",
                    format!(
                        "root_size {} + volatile_size {} on {}: {}",
                        self.disks.root_size, self.disks.volatile_size, self.disks.table, e.0
                    ),
                );
            }
        }
        if self.disks.data_size < Size::gib(1) {
            bad(
                "disks.data_size",
                format!("{}: expected at least 1G", self.disks.data_size),
            );
        }
        if let Err(e) = kernel_cmdline(&self.disks.kernel_cmdline) {
            bad("disks.kernel_cmdline", e);
        }
        if self.outputs.vagrant_box {
            bad(
                "outputs.vagrant_box",
                "reserved: vagrant boxes are not built by `ecs-build image` yet; set it to false".into(),
            );
        }
        if !self.outputs.raw && !self.outputs.qcow2 && !self.outputs.vmdk {
            bad("outputs", "expected at least one of raw, qcow2, vmdk".into());
        }
        if self.embed_env && self.env.is_none() {
            bad("embed_env", "true needs `env:` to name an env.yml".into());
        }
        if let Some(env) = &self.env
            && !env.is_file()
        {
            bad("env", format!("{}: no such file", env.display()));
        }
        for (i, image) in self.images.iter().enumerate() {
            if !image.is_file() {
                bad(
                    &format!("images[{i}]"),
                    format!("{}: no such file", image.display()),
                );
            }
        }
        if let Some(units) = &self.agent.units
            && !units.is_dir()
        {
            bad("agent.units", format!("{}: no such directory", units.display()));
        }
        let path = file.to_string();
        match problems.len() {
            0 => Ok(()),
            1 => {
                let (key, message) = problems.remove(0);
                Err(MachineError::Invalid { path, key, message })
            }
            _ => Err(MachineError::Several { path, problems }),
        }
    }
}

/// Characters that end or change a grub.cfg word: the command line goes unquoted after
/// `linux /vmlinuz` (and into the kernel's own parser, where `"` groups words).
const GRUB_SPECIAL: &str = "\"'`\\$;|&<>{}#";

/// The extra kernel command line: printable ASCII words, none of grub's special characters.
fn kernel_cmdline(cmdline: &str) -> Result<(), String> {
    if let Some(c) = cmdline
        .chars()
        .find(|c| !(c.is_ascii_graphic() || *c == ' ') || GRUB_SPECIAL.contains(*c))
    {
        return Err(format!(
            "{:?} contains {:?}; expected space-separated parameters like `console=ttyS0,115200n8` on one line, \
             without quotes, control characters or any of {GRUB_SPECIAL} (it goes unquoted into grub.cfg)",
            cmdline, c
        ));
    }
    Ok(())
}

/// A Debian mirror URL as apt's sources take it: one word, http(s):// or file://.
fn mirror(m: &str) -> Result<(), String> {
    if m.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{m:?}: expected one URL without spaces, newlines, control or non-ASCII characters (it goes into apt's sources)"
        ));
    }
    let rest = ["http://", "https://", "file://"]
        .iter()
        .find_map(|s| m.strip_prefix(s));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('[') => Ok(()),
        _ => Err(format!("{m:?}: expected an http://, https:// or file:// URL")),
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && !h.starts_with('-')
        && !h.ends_with('-')
        && h.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Debian policy §5.6.1, plus an optional `:arch` qualifier.
fn valid_package(p: &str) -> bool {
    let name = p.split_once(':').map_or(p, |(n, _)| n);
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_default_is_the_default() {
        let parsed = parse("default.yml", DEFAULT_CONFIG).unwrap();
        assert_eq!(parsed, Machine::default());
        parsed.validate("default.yml").unwrap();
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("m.yml", "name: x\ndisks:\n  root_size: 2G\n  rot_size: 1G\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("m.yml:4:3: unknown field `rot_size`"), "{msg}");
    }

    #[test]
    fn sizes_accept_units_and_reject_nonsense() {
        let m = parse("m.yml", "disks:\n  root_size: 3G\n  volatile_size: 536870912\n").unwrap();
        assert_eq!(m.disks.root_size, Size::gib(3));
        assert_eq!(m.disks.volatile_size, Size::mib(512));
        let err = parse("m.yml", "disks:\n  root_size: lots\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.yml:2:"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let mut m = Machine::default();
        m.outputs.vagrant_box = true;
        let err = m.validate("m.yml").unwrap_err().to_string();
        assert!(err.starts_with("m.yml: outputs.vagrant_box: reserved"), "{err}");
        let mut m = Machine::default();
        m.base.extra_packages = vec!["Bad Name".into()];
        let err = m.validate("m.yml").unwrap_err().to_string();
        assert!(err.contains("base.extra_packages[0]"), "{err}");
        let mut m = Machine::default();
        m.base.mirror = Some("deb.example".into());
        assert!(
            m.validate("m.yml")
                .unwrap_err()
                .to_string()
                .contains("base.mirror")
        );
    }

    #[test]
    fn kernel_cmdline_with_quotes_newlines_or_grub_syntax_is_refused() {
        for bad in [
            "console=ttyS0 \"quiet\"",
            "quiet'",
            "quiet\ninit=/bin/sh",
            "quiet\tsplash",
            "a;b",
            "$root",
            "x\u{7f}",
        ] {
            let mut m = Machine::default();
            m.disks.kernel_cmdline = bad.into();
            let err = m.validate("m.yml").unwrap_err().to_string();
            assert!(err.starts_with("m.yml: disks.kernel_cmdline: "), "{bad:?}: {err}");
            assert!(err.contains("it goes unquoted into grub.cfg"), "{err}");
        }
        let mut m = Machine::default();
        m.disks.kernel_cmdline = "console=ttyS0,115200n8 net.ifnames=0 quiet".into();
        m.validate("m.yml").unwrap();
    }

    #[test]
    fn mirror_must_be_one_http_or_file_url() {
        for bad in [
            "http://deb.debian.org/debian\ndeb http://evil/ trixie main",
            "http://deb.debian.org/debian [trusted=yes]",
            "http://deb.debian.org/\u{1b}debian",
            "ftp://deb.debian.org/debian",
            "deb.debian.org/debian",
            "http://",
        ] {
            let mut m = Machine::default();
            m.base.mirror = Some(bad.into());
            let err = m.validate("m.yml").unwrap_err().to_string();
            assert!(err.starts_with("m.yml: base.mirror: "), "{bad:?}: {err}");
        }
        for good in [
            "http://deb.debian.org/debian",
            "https://m.example/debian/",
            "file:///srv/mirror",
        ] {
            let mut m = Machine::default();
            m.base.mirror = Some(good.into());
            m.validate("m.yml").unwrap();
        }
    }

    #[test]
    fn mbr_beyond_two_tib_is_refused_at_load_as_the_layout_would() {
        // Exactly what `disk system` refuses: 1 MiB + root + volatile past 2 TiB.
        let text = "disks:\n  table: mbr\n  root_size: 1T\n  volatile_size: 1T\n";
        let m = parse("m.yml", text).unwrap();
        let err = m.validate("m.yml").unwrap_err().to_string();
        assert!(
            err.starts_with("m.yml: disks: root_size 1T + volatile_size 1T on mbr: "),
            "{err}"
        );
        assert!(err.contains("at most 2T (use GPT)"), "{err}");
        let m = parse("m.yml", &text.replace("mbr", "gpt")).unwrap();
        m.validate("m.yml").unwrap();
        let m = parse(
            "m.yml",
            "disks:\n  table: mbr\n  root_size: 1T\n  volatile_size: 1023G\n",
        )
        .unwrap();
        m.validate("m.yml").unwrap();
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "name: .hidden\nhostname: Bad_Host\nbase:\n  mirror: \"http://x/ y\"\n  extra_packages: [ok-pkg, Bad, also bad]\n\
                    disks:\n  table: mbr\n  root_size: 2T\n  kernel_cmdline: \"quiet \\\"x\\\"\"\noutputs:\n  vagrant_box: true\n";
        let m = parse("m.yml", text).unwrap();
        let err = m.validate("m.yml").unwrap_err();
        let MachineError::Several { problems, .. } = &err else {
            panic!("{err}");
        };
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "name",
                "hostname",
                "base.mirror",
                "base.extra_packages[1]",
                "base.extra_packages[2]",
                "disks",
                "disks.kernel_cmdline",
                "outputs.vagrant_box"
            ]
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with("m.yml: 8 problems:\n  m.yml: name: "),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 9, "{shown}");
    }

    #[test]
    fn package_list_is_sorted_and_unique() {
        let mut m = Machine::default();
        m.base.extra_packages = vec!["nginx".into(), "aaa-tool".into()];
        let list = m.package_list();
        assert_eq!(list[0], "aaa-tool");
        assert_eq!(list.iter().filter(|p| *p == "nginx").count(), 1);
    }
}
