//! `ecs-agent start` end to end on the build host: a private dockerd, the fixture images,
//! nginx as the frontend, temp directories standing in for /data and /volatile.

mod common;

use common::{Appliance, checksums, stdout};

#[test]
fn fresh_start_creates_the_database_and_a_restart_keeps_it() {
    let a = Appliance::new("fresh");
    a.write_env("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ecs-agent: started\n"), "{text}");
    for step in ["env", "storage", "postgres", "database", "tls", "containers"] {
        assert!(
            text.contains(&format!("ecs-agent: step {step} ok: ")),
            "{step}: {text}"
        );
    }
    assert_eq!(a.status()["phase"], "running");
    assert!(
        a.step_state("database").1.contains("was missing, created new"),
        "{:?}",
        a.step_state("database")
    );
    // The seed's tree exists on the stand-ins for /data and /volatile.
    for d in [
        "data/ecs-storage-vault",
        "data/container/ecs-postgres/PG_VERSION",
        "data/dump/ecs-postgres",
        "volatile/ecs-cache",
    ] {
        assert!(a.path(d).exists(), "{d}");
    }
    // The app answers over HTTPS through the frontend; plain HTTP redirects.
    let (code, body) = a.get(true, "/");
    assert_eq!((code, body.trim()), (200, "fixture app: 1 items, 0 users"));
    assert_eq!(a.get(false, "/").0, 301);
    let env_mode = std::fs::metadata(a.path("run/active-env.yml")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&env_mode.permissions()) & 0o777,
        0o600
    );

    a.app(&["create-user", "office@example.org"]);
    std::fs::write(a.path("data/ecs-storage-vault/doc.pdf"), b"vault file").unwrap();
    let vault = checksums(&a.path("data/ecs-storage-vault"));
    let migrations = a.psql("SELECT count(*) FROM migrations");

    // Reboot: the same data, nothing created or migrated again.
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        a.step_state("database").1.contains("present (4 tables), kept"),
        "{:?}",
        a.step_state("database")
    );
    assert_eq!(a.psql("SELECT count(*) FROM users"), "1");
    assert_eq!(a.psql("SELECT count(*) FROM items"), "1");
    assert_eq!(a.psql("SELECT count(*) FROM migrations"), migrations);
    assert_eq!(checksums(&a.path("data/ecs-storage-vault")), vault);
    assert_eq!(a.get(true, "/").1.trim(), "fixture app: 1 items, 1 users");

    let status = a.agent(&["status"]);
    assert_eq!(status.status.code(), Some(0));
    assert!(stdout(&status).contains("phase: running"), "{}", stdout(&status));
}
