//! `ecs-agent after-upgrade`: makes security updates take effect. apt runs it after every dpkg
//! run (the image's `DPkg::Post-Invoke` hook); it restarts the frontend, containerd and docker
//! when the running process still uses a replaced file.
//!
//! The test is the one needrestart uses, without its package-name heuristics: a running
//! program whose executable or a mapped library is "(deleted)" in /proc/PID runs the old code.
//! It needs no record of versions from before the upgrade, catches libraries of any package
//! (openssl's libssl, pcre, zlib) and restarts nothing after an upgrade that did not touch
//! them. dockerd restarts with `live-restore`, so the containers keep running.

use std::collections::BTreeSet;
use std::path::Path;

use host_util::CommandExt;

use crate::tools::SYSTEMCTL;

/// Programs whose unit is restarted when they run stale code, in restart order (containerd
/// before the docker engine that talks to it).
pub const WATCHED: &[(&str, &str)] = &[
    ("/usr/sbin/nginx", "ecs-frontend.service"),
    ("/usr/bin/containerd", "containerd.service"),
    ("/usr/sbin/dockerd", "docker.service"),
];

/// True when a process with this executable link and maps text runs replaced code: its program
/// or a library mapped from the system's directories was deleted (replaced by dpkg).
pub fn stale(exe: &str, maps: &str) -> bool {
    if exe.ends_with(" (deleted)") {
        return true;
    }
    maps.lines().any(|l| {
        let Some(path) = l.split_whitespace().nth(5) else {
            return false;
        };
        l.ends_with(" (deleted)")
            && ["/usr/", "/lib/", "/lib64/", "/bin/", "/sbin/"]
                .iter()
                .any(|d| path.starts_with(d))
    })
}

/// The units to restart, in `WATCHED` order, for processes given as (exe link, maps text).
pub fn units_to_restart<'a>(procs: impl IntoIterator<Item = (String, String)>) -> Vec<&'a str> {
    let mut hit = BTreeSet::new();
    for (exe, maps) in procs {
        let program = exe.trim_end_matches(" (deleted)");
        if let Some(i) = WATCHED.iter().position(|(p, _)| *p == program)
            && stale(&exe, &maps)
        {
            hit.insert(i);
        }
    }
    hit.into_iter().map(|i| WATCHED[i].1).collect()
}

/// (exe link, maps) of every process running a watched program.
fn watched_processes() -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(exe) = std::fs::read_link(dir.join("exe")) else {
            continue;
        };
        let exe = exe.to_string_lossy().into_owned();
        let program = exe.trim_end_matches(" (deleted)");
        if WATCHED.iter().any(|(p, _)| *p == program) {
            let maps = std::fs::read_to_string(Path::new(&dir).join("maps")).unwrap_or_default();
            out.push((exe, maps));
        }
    }
    out
}

/// Restarts what runs stale code; a unit that fails to restart is reported, the rest still run.
pub fn command() -> anyhow::Result<()> {
    let units = units_to_restart(watched_processes());
    if units.is_empty() {
        println!("ecs-agent: after-upgrade: nothing runs replaced code");
        return Ok(());
    }
    let mut failed = Vec::new();
    for unit in &units {
        tracing::info!("after-upgrade: restarting {unit}: it runs replaced code");
        if let Err(e) = SYSTEMCTL.command()?.args(["try-restart", unit]).run_checked() {
            tracing::error!("after-upgrade: restarting {unit}: {e:#}");
            failed.push(*unit);
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("after-upgrade: could not restart {}", failed.join(", "));
    }
    println!("ecs-agent: after-upgrade: restarted {}", units.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "55d0c0a00000-55d0c0a2e000 r--p 00000000 fe:01 1311 /usr/sbin/nginx\n\
7f1c2a000000-7f1c2a0a0000 r-xp 00000000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libssl.so.3\n\
7f1c2b000000-7f1c2b001000 rw-s 00000000 00:01 33 /dev/zero (deleted)\n";

    #[test]
    fn stale_means_a_replaced_program_or_system_library() {
        assert!(!stale("/usr/sbin/nginx", MAPS), "shared memory is not code");
        let upgraded = MAPS.replace("libssl.so.3\n", "libssl.so.3 (deleted)\n");
        assert!(stale("/usr/sbin/nginx", &upgraded));
        assert!(stale("/usr/sbin/nginx (deleted)", MAPS));
        let memfd = "7f00-7f01 r-xp 00000000 00:01 9 /memfd:x (deleted)\n";
        assert!(!stale("/usr/sbin/dockerd", memfd));
    }

    #[test]
    fn units_restart_in_order_and_only_when_stale() {
        let upgraded = MAPS.replace("libssl.so.3\n", "libssl.so.3 (deleted)\n");
        let procs = vec![
            ("/usr/sbin/dockerd (deleted)".to_string(), String::new()),
            ("/usr/sbin/nginx".to_string(), upgraded.clone()),
            ("/usr/sbin/nginx".to_string(), upgraded),
            ("/usr/bin/containerd".to_string(), String::new()),
            ("/usr/sbin/sshd (deleted)".to_string(), String::new()),
        ];
        assert_eq!(
            units_to_restart(procs),
            ["ecs-frontend.service", "docker.service"]
        );
        let fresh = vec![("/usr/sbin/nginx".to_string(), MAPS.to_string())];
        assert!(units_to_restart(fresh).is_empty());
    }
}
