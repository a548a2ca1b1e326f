//! `ecs-agent update-ecs` on the build host (storage: directories, where a snapshot is a copy of
//! the data directory): the fixture app's versions (agent/fixtures/app/README.md) as targets. v2's
//! migration changes the database and fails, v3 never gets healthy: each rolls back to v1 with the
//! database and the vault as they were. v4 migrates and serves, and a restart keeps it.

mod common;

use common::{Appliance, checksums, stdout};
use host_util::CommandExt;

/// The database's tables with their content, and the vault's files: what a rollback must keep.
fn data(
    a: &Appliance,
) -> (
    std::collections::BTreeMap<String, (u64, String)>,
    std::collections::BTreeMap<String, String>,
) {
    (a.db_fingerprint(), checksums(&a.path("data/ecs-storage-vault")))
}

fn update(a: &Appliance, to: &str) -> (Option<i32>, String, serde_json::Value) {
    let out = a.agent(&["update-ecs", "--to", to]);
    let record = a.lifecycle()["last"]["update-ecs"].clone();
    (out.status.code(), stdout(&out), record)
}

#[test]
fn failed_updates_roll_back_and_a_good_one_migrates_and_stays() {
    let a = Appliance::new("update");
    a.write_env("", "");
    let out = a.start();
    assert!(stdout(&out).contains("ecs-agent: running"), "{}", stdout(&out));
    a.app(&["create-user", "someone@example.org"]);
    let vault = a.path("data/ecs-storage-vault");
    std::fs::create_dir_all(vault.join("ab")).unwrap();
    std::fs::write(vault.join("ab/document.pdf.gpg"), b"encrypted document").unwrap();
    std::fs::write(vault.join("top.gpg"), b"another one").unwrap();
    let v1_page = "fixture app: 1 items, 1 users";
    assert_eq!(a.get(true, "/").1.trim(), v1_page);
    let before = data(&a);
    assert!(
        before.0.contains_key("users") && before.1.len() == 2,
        "{before:?}"
    );

    // v2: the migration changed the database before it failed; the snapshot undoes that.
    let (code, text, record) = update(&a, "v2");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("update-ecs failed: rolled back: version v1 serves again")
            && text.contains("v2: migration 0002_broken failed"),
        "{text}"
    );
    assert_eq!(record["result"], "failed", "{record}");
    assert_eq!(record["details"]["rolled_back"], true, "{record}");
    assert_eq!(record["details"]["snapshot"], "PRE_MIGRATE", "{record}");
    assert_eq!(
        (
            record["details"]["from"].as_str(),
            record["details"]["to"].as_str()
        ),
        (Some("v1"), Some("v2"))
    );
    assert_eq!(a.get(true, "/"), (200, format!("{v1_page}\n")));
    assert_eq!(
        data(&a),
        before,
        "the database or the vault differ after v2's rollback"
    );
    assert_eq!(a.app_version(), "v1");

    // v3: migrated (a new column), then its web server never comes up.
    let (code, text, record) = update(&a, "v3");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("rolled back: version v1 serves again") && text.contains("service web stopped"),
        "{text}"
    );
    assert_eq!(record["details"]["rolled_back"], true, "{record}");
    assert_eq!(record["details"]["migrate"], true, "{record}");
    assert_eq!(a.get(true, "/"), (200, format!("{v1_page}\n")));
    assert_eq!(
        data(&a),
        before,
        "the database or the vault differ after v3's rollback"
    );

    // v4: migrated (table notes, which its page counts), serving, recorded.
    let (code, text, record) = update(&a, "v4");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ecs-agent: update-ecs downtime "), "{text}");
    assert_eq!(record["result"], "ok", "{record}");
    assert_eq!(record["details"]["migrated"], true, "{record}");
    assert_eq!(record["details"]["snapshot"], "PRE_MIGRATE", "{record}");
    assert!(
        record["details"]["downtime_seconds"].as_f64().unwrap() > 0.0,
        "{record}"
    );
    let v4_page = "fixture app: 1 items, 1 users, 0 notes (v4)\n";
    assert_eq!(a.get(true, "/"), (200, v4_page.to_string()));
    assert_eq!(a.app_version(), "v4");
    assert_eq!(checksums(&vault), before.1);
    let after = a.db_fingerprint();
    assert!(after.contains_key("notes"), "{after:?}");
    assert_eq!(after["users"], before.0["users"]);
    // For scripts/bench/update.sh: the downtime against v4's migrate hook run by itself (again:
    // it is idempotent, and costs what it cost in the update: a container, a connection, the SQL).
    let t = std::time::Instant::now();
    a.app_command()
        .env("AGENT_APP_TAG", "v4")
        .arg("migrate")
        .run_checked()
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "bench: update downtime={} migration={:.1}",
        record["details"]["downtime_seconds"],
        t.elapsed().as_secs_f64()
    );
    // The old version's image is baked (loaded, not built): it stays for a later rollback.
    assert!(
        common::docker(&a.docker_host)
            .args(["image", "inspect", "ecs-fixture-app:v1"])
            .output()
            .unwrap()
            .status
            .success()
    );

    // The same version again changes nothing.
    let (code, text, record) = update(&a, "v4");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("update-ecs refused: the app already runs version v4"),
        "{text}"
    );
    assert_eq!(record["result"], "refused");

    // A start (a reboot) runs the recorded version, not env.yml's v1.
    let out = a.start();
    assert!(stdout(&out).contains("ecs-agent: running"), "{}", stdout(&out));
    assert_eq!(a.get(true, "/"), (200, v4_page.to_string()));
}

/// A target whose image is nowhere (not baked, not buildable) is refused before the app stops.
#[test]
fn a_version_without_images_is_refused_and_the_app_keeps_serving() {
    let a = Appliance::new("update-missing");
    a.write_env("", "");
    assert!(stdout(&a.start()).contains("ecs-agent: running"));
    let (code, text, record) = update(&a, "v9");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("update-ecs refused: image ecs-fixture-app:v9 (service")
            && text.contains("is not in the engine"),
        "{text}"
    );
    assert_eq!(record["result"], "refused");
    assert_eq!(a.get(true, "/").0, 200);
    assert_eq!(a.app_version(), "v1");
}
