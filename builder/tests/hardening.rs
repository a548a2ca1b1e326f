//! The image's hardening files, checked by their consumers: sshd reads our drop-in through the
//! Include of Debian's sshd_config (`sshd -T`), dockerd's daemon.json is JSON with the limits.

use std::process::Command;

use ecs_build::pipeline::{hardening, overlay};
use host_util::{CommandExt, Tool};

const SSHD: Tool = Tool::new("sshd", "openssh-server");
const SSH_KEYGEN: Tool = Tool::new("ssh-keygen", "openssh-client");

#[test]
fn sshd_takes_the_drop_in_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sshd_config.d")).unwrap();
    std::fs::write(d.join("sshd_config.d/10-ecs.conf"), hardening::SSHD_DROP_IN).unwrap();
    // What cloud-init writes when a seed asks for passwords: ours comes first and wins.
    std::fs::write(
        d.join("sshd_config.d/50-cloud-init.conf"),
        "PasswordAuthentication yes\n",
    )
    .unwrap();
    SSH_KEYGEN
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.join("host_key"))
        .run_checked()
        .unwrap();
    // Debian's sshd_config opens with this Include; the rest is defaults.
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Include {dir}/sshd_config.d/*.conf\nHostKey {dir}/host_key\nPermitRootLogin yes\n",
            dir = d.display()
        ),
    )
    .unwrap();
    let sshd = SSHD.path().unwrap_or_else(|e| panic!("{e}"));
    // sshd checks its privilege separation directory even in test mode (the package's
    // tmpfiles.d makes it at boot); tests run as root.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let out = Command::new(sshd)
        .arg("-T")
        .arg("-f")
        .arg(d.join("sshd_config"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        // sshd prints prohibit-password by its older name.
        "permitrootlogin without-password",
        "x11forwarding no",
        "allowagentforwarding no",
        "allowtcpforwarding no",
    ] {
        assert!(text.lines().any(|l| l == want), "sshd -T lacks {want:?}:\n{text}");
    }
}

#[test]
fn docker_daemon_json_limits_logs_and_privileges() {
    let v: serde_json::Value = serde_json::from_str(overlay::DOCKER_DAEMON_JSON).unwrap();
    assert_eq!(v["data-root"], "/volatile/docker");
    assert_eq!(v["log-driver"], "json-file");
    assert_eq!(v["log-opts"]["max-size"], "10m");
    assert_eq!(v["log-opts"]["max-file"], "3");
    assert_eq!(v["live-restore"], true);
    assert_eq!(v["no-new-privileges"], true);
    let fstab = overlay::FSTAB.lines().find(|l| l.contains("/volatile")).unwrap();
    assert!(fstab.contains("nodev,nosuid"), "{fstab}");
    let paths: Vec<String> = hardening::files().into_iter().map(|f| f.path).collect();
    assert!(paths.contains(&"/etc/apt/apt.conf.d/90ecs-after-upgrade".to_string()));
    assert!(hardening::APT_HOOK.contains("ecs-agent after-upgrade"));
}
