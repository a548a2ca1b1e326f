//! The system disk boots: qemu (TCG, never `-kernel`) starts from the disk's own boot code
//! (boot.img -> core.img -> grub.cfg on the root filesystem, or BOOTX64.EFI on the ESP), the
//! kernel and initramfs come from the root filesystem, and the root's /sbin/init prints a
//! marker with the command line GRUB passed.

#[path = "fixtures/boot.rs"]
mod boot;
#[path = "fixtures/support.rs"]
mod support;

use std::time::Duration;

use image_layout::{TableKind, TreeSource, write_system_disk};

/// Generous: TCG on a busy two-core machine.
const DEADLINE: Duration = Duration::from_secs(480);

fn boots(table: TableKind, uefi: bool) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    boot::make_tree(&tree);
    let disk = dir.path().join("disk.raw");
    let plan = support::plan(table, "boot");
    write_system_disk(&plan, &TreeSource::Dir(tree), &[], &disk).unwrap();
    let log = boot::boot(&disk, uefi, DEADLINE);
    let marker = log.lines().find(|l| l.starts_with(boot::MARKER)).unwrap();
    // GRUB's grub.cfg made this command line: the kernel came through our boot loader.
    assert!(
        marker
            .contains("BOOT_IMAGE=/vmlinuz root=LABEL=cloudimg-rootfs ro console=ttyS0,115200 console=tty0"),
        "{marker}\n{log}"
    );
}

#[test]
fn mbr_disk_boots_through_embedded_grub() {
    boots(TableKind::Mbr, false);
}

#[test]
fn gpt_disk_boots_through_grub_in_the_bios_boot_partition() {
    boots(TableKind::Gpt, false);
}

#[test]
fn gpt_disk_boots_under_uefi_from_the_esp() {
    boots(TableKind::Gpt, true);
}
