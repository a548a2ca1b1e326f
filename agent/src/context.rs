//! Where the agent finds and puts things: every path, port, socket and timeout of a run.
//!
//! The defaults are the appliance's (`/data`, `/volatile`, `/run/ecs`, port 443, the system dockerd).
//! Integration tests and unusual installs pass a YAML file (`--context FILE`) that overrides some of
//! them, so the same steps run on a build host against a temp root and a private dockerd.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// How the storage step finds /data and /volatile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageMode {
    /// Find the filesystems by label (and LVM), create them on blank disks, mount them.
    Devices,
    /// `data-dir` and `volatile-dir` are plain directories (tests, or a host that mounts them itself).
    Directories,
}

/// Everything that differs between the appliance and a test run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Context {
    /// The agent's runtime directory: status.json, the compose project, the frontend, GnuPG homes.
    pub run_dir: PathBuf,
    /// The validated env.yml, written mode 0600 on every start.
    pub active_env: PathBuf,
    /// The operator's env.yml, used when no seed device is found.
    pub app_env: PathBuf,
    /// Filesystem labels of a NoCloud seed.
    pub seed_labels: Vec<String>,
    /// Only these devices are considered as seeds (default: every device blkid finds by label).
    pub seed_devices: Option<Vec<PathBuf>>,
    pub data_dir: PathBuf,
    pub volatile_dir: PathBuf,
    pub storage: StorageMode,
    /// Only these disks are considered for /data when it must be created (default: every
    /// writable whole disk except the system disk).
    pub data_disks: Option<Vec<PathBuf>>,
    /// Host tests only: loop devices named in `data-disks` are accepted as whole disks (the
    /// other rules still apply). Discovery never offers a loop device, whatever this says.
    pub allow_loop_disks: bool,
    /// Passed to docker and the compose tool as DOCKER_HOST.
    pub docker_host: String,
    /// The systemd unit of the engine, started after the storage step when the engine does not
    /// answer: its data root is on /volatile, so it cannot run before volatile is mounted
    /// (e.g. on a first boot that had to create volatile). None: never start it.
    pub docker_unit: Option<String>,
    /// The compose command, e.g. `[docker, compose]` or `[docker-compose]`; default: whichever works.
    pub compose_command: Option<Vec<String>>,
    /// `docker save` archives baked into the image by ecs-build, loaded once each.
    pub images_dir: PathBuf,
    /// The compose project name.
    pub project: String,
    /// A compose template to use instead of the one shipped with the agent (env.yml may override both).
    pub compose_template: Option<PathBuf>,
    /// Address the frontend listens on.
    pub listen_address: String,
    /// IPv6 address the frontend listens on too, when the host has IPv6 (None: IPv4 only).
    pub listen_address_v6: Option<String>,
    /// The syslog socket the frontend sends its HTTPS access log to (the journal's /dev/log);
    /// None: no access log.
    pub access_log_socket: Option<PathBuf>,
    /// Apply the host firewall (`appliance.firewall.allow`) at every start. Host tests turn it
    /// off: the rules are the host's, not a temp tree's.
    pub firewall: bool,
    pub http_port: u16,
    pub https_port: u16,
    /// The host port the app's web service is published on (the frontend proxies to it).
    pub upstream_port: u16,
    /// The ACME directory URL (default: Let's Encrypt production).
    pub acme_directory: String,
    /// Extra CA certificate (PEM) for the ACME server, e.g. pebble's in tests.
    pub acme_ca_root: Option<PathBuf>,
    /// Seconds to wait for the database to accept connections. Generous: a first start runs
    /// initdb, which takes minutes on slow disks or emulated CPUs; a container that exits or
    /// turns unhealthy fails the step at once anyway.
    pub database_timeout_secs: u64,
    /// Seconds to wait for every service to be healthy.
    pub health_timeout_secs: u64,
    /// systemd's runtime unit directory, where `start` puts drop-ins (the backup timer's
    /// schedule) and reloads systemd; only when it exists (systemd runs). None: never.
    pub systemd_run_dir: Option<PathBuf>,
    /// Run the appliance's mail relay (step mail). Host tests that test no mail turn it off.
    pub mail: bool,
    /// Incoming mail (SMTP with STARTTLS), relayed to the app's smtpd.
    pub smtp_port: u16,
    /// Incoming mail over implicit TLS (submissions port), relayed to the app's smtpd.
    pub smtps_port: u16,
    /// The port the relay takes the app's outgoing mail on; the containers reach it as
    /// host.docker.internal (compose: AGENT_MAIL_HOST, AGENT_MAIL_PORT).
    pub mail_port: u16,
    /// The host loopback port the app's smtpd is published on (compose: AGENT_SMTPD_PORT).
    pub smtpd_port: u16,
    /// What host.docker.internal resolves to in the app's containers (compose:
    /// AGENT_MAIL_GATEWAY): docker's `host-gateway` (docker0's address), or an address of the
    /// host where the engine has no default bridge (the tests' private dockerd).
    pub mail_gateway: String,
    /// The relay's postfix queue. Default: the system's, /var/spool/postfix, because the
    /// system's sendmail (unattended-upgrades' mail to root) drops mail into the queue that
    /// /etc/postfix/main.cf names, where the relay's pickup takes it.
    pub mail_queue_dir: PathBuf,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            run_dir: "/run/ecs".into(),
            active_env: "/run/active-env.yml".into(),
            app_env: "/app/env.yml".into(),
            seed_labels: vec!["cidata".into(), "CIDATA".into()],
            seed_devices: None,
            data_dir: "/data".into(),
            volatile_dir: "/volatile".into(),
            storage: StorageMode::Devices,
            data_disks: None,
            allow_loop_disks: false,
            docker_host: "unix:///run/docker.sock".into(),
            docker_unit: Some("docker.service".into()),
            compose_command: None,
            images_dir: "/var/lib/ecs/images".into(),
            project: "ecs".into(),
            compose_template: None,
            listen_address: "0.0.0.0".into(),
            listen_address_v6: Some("::".into()),
            access_log_socket: Some("/dev/log".into()),
            firewall: true,
            http_port: 80,
            https_port: 443,
            upstream_port: 5000,
            acme_directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_ca_root: None,
            database_timeout_secs: 600,
            health_timeout_secs: 600,
            systemd_run_dir: Some("/run/systemd/system".into()),
            mail: true,
            smtp_port: 25,
            smtps_port: 465,
            mail_port: 10025,
            smtpd_port: 8025,
            mail_queue_dir: "/var/spool/postfix".into(),
            mail_gateway: "host-gateway".into(),
        }
    }
}

impl Context {
    /// Loads overrides from a YAML file; unknown keys are errors.
    pub fn load(path: &Path) -> anyhow::Result<Context> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn status_file(&self) -> PathBuf {
        self.run_dir.join("status.json")
    }
    pub fn compose_dir(&self) -> PathBuf {
        self.run_dir.join("compose")
    }
    pub fn frontend_dir(&self) -> PathBuf {
        self.run_dir.join("frontend")
    }
    /// TLS key, certificate and ACME account live on the data disk, so they survive reboots.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("etc/tls")
    }
    /// The http-01 challenge webroot the frontend serves under /.well-known/acme-challenge/.
    pub fn acme_webroot(&self) -> PathBuf {
        self.run_dir.join("acme-challenge")
    }
    /// The mail relay's runtime state (postfix instance, opendkim).
    pub fn mail_dir(&self) -> PathBuf {
        self.run_dir.join("mail")
    }
    /// Local mail (to root), Maildir per user: `<this>/root/new` holds what is not yet read;
    /// on the data disk's sibling /volatile, so it survives a reboot but not a new disk.
    pub fn mailbox_dir(&self) -> PathBuf {
        self.volatile_dir.join("mail")
    }
    pub fn dump_dir(&self) -> PathBuf {
        self.data_dir.join("dump/ecs-postgres")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_keep_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctx.yml");
        std::fs::write(&p, "data-dir: /srv/data\nhttps-port: 8443\n").unwrap();
        let c = Context::load(&p).unwrap();
        assert_eq!(c.data_dir, Path::new("/srv/data"));
        assert_eq!(c.https_port, 8443);
        assert_eq!(c.volatile_dir, Path::new("/volatile"));
        assert_eq!(c.storage, StorageMode::Devices);
        std::fs::write(&p, "data_dir: /srv\n").unwrap();
        let e = format!("{:#}", Context::load(&p).unwrap_err());
        assert!(e.contains("parsing") && e.contains("data_dir"), "{e}");
    }
}
