//! `ecs-agent database-migrate` on the build host (`storage: directories`: the snapshot is a
//! copy of the data directory; the LVM snapshot is proven in the booted image, appliance_vm).

mod common;

use common::{Appliance, checksums, stdout};
use host_util::CommandExt;

#[test]
fn migrate_takes_a_snapshot_runs_the_hooks_and_the_app_serves_again() {
    let a = Appliance::new("migrate");
    a.write_env("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    assert_eq!(a.start().status.code(), Some(0));
    a.psql("INSERT INTO items (name) VALUES ('before-migrate')");
    let hooks_before: u64 = a
        .psql("SELECT count(*) FROM hook_runs WHERE name = 'migrate'")
        .parse()
        .unwrap();
    let vault_file = a.path("data/ecs-storage-vault/doc.pdf");
    std::fs::write(&vault_file, b"vault content").unwrap();
    let before = a.psql("SELECT string_agg(name, ',' ORDER BY id) FROM items");

    let out = a.agent(&["database-migrate"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ecs-agent: database-migrate ok: snapshot "),
        "{text}"
    );
    assert!(text.contains("migrated;") && text.contains("app down "), "{text}");
    let hooks_after: u64 = a
        .psql("SELECT count(*) FROM hook_runs WHERE name = 'migrate'")
        .parse()
        .unwrap();
    assert_eq!(hooks_after, hooks_before + 1, "the migrate hook ran once more");
    // The snapshot is a whole copy of the data as it was before the hooks ran.
    let snap = a.path("data.snapshots/PRE_MIGRATE");
    assert_eq!(
        std::fs::read(snap.join("ecs-storage-vault/doc.pdf")).unwrap(),
        b"vault content"
    );
    assert!(snap.join("container/ecs-postgres/PG_VERSION").is_file());
    assert_eq!(
        checksums(&a.path("data/ecs-storage-vault")),
        checksums(&snap.join("ecs-storage-vault"))
    );
    let (code, body) = a.get(true, "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        a.psql("SELECT string_agg(name, ',' ORDER BY id) FROM items"),
        before
    );
    let record = &a.lifecycle()["last"]["database-migrate"];
    assert_eq!(record["result"], "ok", "{record}");
    assert!(
        record["details"]["downtime_seconds"].as_f64().unwrap() > 0.0,
        "{record}"
    );

    // A second migration replaces the snapshot; status shows the record.
    let out = a.agent(&["database-migrate"]);
    assert!(
        stdout(&out).contains("replacing the older PRE_MIGRATE"),
        "{}",
        stdout(&out)
    );
    let status = stdout(&a.agent(&["status"]));
    assert!(status.contains("database-migrate ok"), "{status}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&a.agent(&["status", "--json"]))).unwrap();
    assert_eq!(json["lifecycle"]["last"]["database-migrate"]["result"], "ok");

    // remove-snapshot removes it, and says so when it is already gone.
    let out = a.agent(&["remove-snapshot"]);
    assert!(
        stdout(&out).contains("snapshot PRE_MIGRATE removed"),
        "{}",
        stdout(&out)
    );
    assert!(!snap.exists());
    let out = a.agent(&["remove-snapshot", "PRE_MIGRATE"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("was already gone"), "{}", stdout(&out));
    let out = a.agent(&["remove-snapshot", "../data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("is not a snapshot name"),
        "{}",
        stdout(&out)
    );
    assert!(a.path("data/ecs-storage-vault/doc.pdf").is_file());
    a.stop();
}

/// No room for the snapshot: refused before any hook runs, the app serves as before, and the
/// record says why.
#[test]
fn migrate_without_room_for_the_snapshot_is_refused_and_changes_nothing() {
    let a = Appliance::new("migratefull");
    a.write_env("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    assert_eq!(a.start().status.code(), Some(0));
    let snaps = a.path("data.snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&snaps)
        .run_checked()
        .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(snaps.clone());
    let hooks_before = a.psql("SELECT count(*) FROM hook_runs");
    let out = a.agent(&["database-migrate"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ecs-agent: database-migrate refused: "), "{text}");
    assert!(
        text.contains("MiB free, and a copy of") && text.contains("free some room"),
        "{text}"
    );
    assert_eq!(
        a.psql("SELECT count(*) FROM hook_runs"),
        hooks_before,
        "no hook ran"
    );
    assert_eq!(
        std::fs::read_dir(&snaps).unwrap().count(),
        0,
        "no partial snapshot"
    );
    let (code, body) = a.get(true, "/");
    assert_eq!(code, 200, "{body}");
    assert_eq!(a.lifecycle()["last"]["database-migrate"]["result"], "refused");
    drop(_guard);
    a.stop();
}
