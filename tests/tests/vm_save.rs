//! `Vm::save` and `Saved::restore` on a guest that runs no OS (the firmware idles): the saved
//! disk is frozen at the save while the saved guest writes on into an overlay, and a restored
//! guest runs from the saved state with the disk as it was saved. The booted appliance is
//! saved and restored the same way in builder/tests/appliance_vm.rs.

use std::path::Path;
use std::process::Command;

use e2e_tests::{Drive, Vm, VmConfig};

/// A `qemu-io` command on the guest's disk `d0` through qemu's own block layer, as the guest's
/// writes go (HMP; its output goes to qemu's stdout, so results are read from the files).
fn qemu_io(vm: &Vm, command: &str) {
    vm.qmp(
        "human-monitor-command",
        serde_json::json!({"command-line": format!("qemu-io d0 \"{command}\"")}),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Whether the first 4 KiB of the disk image `file` (with its backing chain) hold `byte`,
/// read by the qemu-io tool.
fn holds(file: &Path, format: &str, byte: u8) -> bool {
    let out = Command::new("qemu-io")
        .args(["-f", format, "-r", "-c"])
        .arg(format!("read -P {byte:#04x} 0 4k"))
        .arg(file)
        .output()
        .expect("qemu-io (qemu-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("read 4096/4096"), "qemu-io: {text}");
    !text.contains("Pattern verification failed")
}

fn status(vm: &Vm) -> String {
    vm.qmp("query-status", serde_json::json!({})).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_saved_guest_restores_with_its_disk_as_saved_while_the_original_writes_on() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("data.raw");
    std::fs::File::create(&disk).unwrap().set_len(1 << 20).unwrap();
    let config = VmConfig {
        drives: vec![Drive {
            path: disk.clone(),
            format: "raw",
            snapshot: false,
        }],
        cdrom: None,
        memory_mib: 64,
        cpus: 1,
        forward: vec![],
        guest_forward: vec![],
        serial_log: dir.path().join("console.log"),
        default_devices: false,
        incoming: None,
    };
    let mut vm = Vm::boot(&config).unwrap_or_else(|e| panic!("{e:#}"));
    qemu_io(&vm, "write -P 0x11 0 4k");
    let saved = vm
        .save(&dir.path().join("saved"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(status(&vm), "running", "the saved guest runs on");
    assert!(saved.state.is_file());
    // The original writes on: into its overlay, not into the saved disk.
    qemu_io(&vm, "write -P 0x22 0 4k");
    qemu_io(&vm, "flush");
    drop(vm);
    let mut after = disk.clone().into_os_string();
    after.push(".after-save.qcow2");
    assert!(holds(Path::new(&after), "qcow2", 0x22));
    assert!(
        holds(&disk, "raw", 0x11),
        "the saved disk holds what was written before the save"
    );

    let restored = saved
        .restore("again", dir.path(), dir.path().join("again.log"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(status(&restored), "running");
    qemu_io(&restored, "write -P 0x33 0 4k");
    qemu_io(&restored, "flush");
    // Two restores at once from one saved state: each has its own overlay.
    let second = saved
        .restore("second", dir.path(), dir.path().join("second.log"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(status(&second), "running");
    drop((restored, second));
    assert!(holds(&dir.path().join("again-d0.qcow2"), "qcow2", 0x33));
    assert!(holds(&dir.path().join("second-d0.qcow2"), "qcow2", 0x11));
    assert!(
        holds(&disk, "raw", 0x11),
        "restores never write to the saved disk"
    );
}
