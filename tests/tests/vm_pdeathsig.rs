//! qemu dies with the thread that booted it (`setpriv --pdeathsig KILL`), so a test process
//! that is killed leaves no guest running.

use std::time::{Duration, Instant};

use e2e_tests::{Vm, VmConfig};
use host_util::CommandExt;

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_default();
    !matches!(state, "Z" | "X" | "")
}

#[test]
fn qemu_dies_when_the_thread_that_booted_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    // No drives, no kernel: the firmware finds nothing to boot and qemu just sits there.
    let config = VmConfig {
        drives: vec![],
        cdrom: None,
        memory_mib: 64,
        cpus: 1,
        forward: vec![],
        guest_forward: vec![],
        serial_log: dir.path().join("console.log"),
        default_devices: false,
        incoming: None,
    };
    let pid = std::thread::spawn(move || {
        let mut vm = Vm::boot(&config).unwrap_or_else(|e| panic!("{e:#}"));
        let pid = vm.pid();
        // qemu really runs (a qemu that failed to start would pass the check below).
        if let Ok(status) = vm.wait_exit(Duration::from_secs(2)) {
            panic!("qemu exited ({status}); see {}", vm.serial_log().display());
        }
        // Only the parent-death signal may end qemu here, not the Vm's Drop.
        std::mem::forget(vm);
        pid
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let survived = alive(pid);
    if survived {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .run_checked();
    }
    assert!(
        !survived,
        "qemu (pid {pid}) still ran 30s after the thread that booted it exited"
    );
}
