//! Overlay files that close what Debian's and docker's defaults leave open on an
//! internet-facing host: sshd, systemd-resolved, apt's hook for updates to take effect.
//! Each is a drop-in of our own, so the packages' files stay untouched and upgradable.

use image_layout::{ExtraFile, ExtraKind};

/// sshd: keys only, root by key only, no forwarding; so none of it depends on cloud-init
/// having run (it sets only PasswordAuthentication from `ssh_pwauth`).
pub const SSHD_DROP_IN: &str = "# Written by ecs-build: keys only, nothing forwarded.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
";

/// Earlier than cloud-init's 50-cloud-init.conf: sshd takes the first value it reads.
pub const SSHD_DROP_IN_PATH: &str = "/etc/ssh/sshd_config.d/10-ecs.conf";

/// No name resolution protocols that answer anyone on the link.
pub const RESOLVED_DROP_IN: &str = "# Written by ecs-build: no link-local name protocols.
[Resolve]
LLMNR=no
MulticastDNS=no
";

/// After every dpkg run (unattended-upgrades included), services running replaced code are
/// restarted (`ecs-agent after-upgrade`); a failure there never fails the upgrade.
pub const APT_HOOK: &str = "// Written by ecs-build: updates of nginx, openssl, containerd and docker take effect.
DPkg::Post-Invoke { \"if [ -x /usr/local/bin/ecs-agent ]; then /usr/local/bin/ecs-agent after-upgrade || true; fi\"; };
";

fn file(path: &str, text: &str) -> ExtraFile {
    ExtraFile {
        path: path.to_string(),
        kind: ExtraKind::Bytes(text.as_bytes().to_vec()),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// The files, for the overlay stage.
pub fn files() -> Vec<ExtraFile> {
    vec![
        file(SSHD_DROP_IN_PATH, SSHD_DROP_IN),
        file("/etc/systemd/resolved.conf.d/ecs.conf", RESOLVED_DROP_IN),
        file("/etc/apt/apt.conf.d/90ecs-after-upgrade", APT_HOOK),
    ]
}
