//! Failure injection: each failure leaves the maintenance page (served by nginx) with the
//! state and reason class only, a non-zero exit, status.json (0600) with the detail, and the
//! data as it was.

mod common;

use common::{Appliance, checksums, sentry_listener, stdout};

fn seeded_vault(a: &Appliance) -> std::collections::BTreeMap<String, String> {
    std::fs::create_dir_all(a.path("data/ecs-storage-vault")).unwrap();
    std::fs::write(a.path("data/ecs-storage-vault/keep.pdf"), b"precious").unwrap();
    checksums(&a.path("data"))
}

#[test]
fn missing_seed_is_bad_config_and_shows_the_page() {
    let a = Appliance::new("noseed");
    let before = seeded_vault(&a);
    let out = a.start();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ecs-agent: step env failed: no user-data: no device labelled cidata/CIDATA"),
        "{text}"
    );
    assert!(!text.contains("ecs-agent: started"), "{text}");
    assert_eq!(a.step_state("env").0, "failed");
    assert_eq!(a.step_state("storage").0, "pending");
    a.assert_public_page(false, "configuration", &["no user-data", "cidata"]);
    // HTTPS answers too, with a throwaway certificate in /run: /data holds none yet.
    a.assert_public_page(true, "configuration", &["no user-data", "cidata"]);
    assert!(!a.path("data/etc/tls").exists(), "nothing written to /data");
    assert_eq!(checksums(&a.path("data")), before);

    // The unit's OnFailure runs after this exit: the recorded reason stays on the page.
    let out = a.agent(&["report-failure", "ecs-agent.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let (state, msg) = a.step_state("env");
    assert_eq!(state, "failed");
    assert!(msg.contains("no user-data"), "{msg}");
    a.assert_public_page(false, "configuration", &["no user-data"]);
}

#[test]
fn invalid_env_names_the_key() {
    let a = Appliance::new("badenv");
    let before = seeded_vault(&a);
    a.write_env("  standby: maybe\n", "");
    let out = a.start();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let (state, msg) = a.step_state("env");
    assert_eq!(state, "failed");
    assert!(
        msg.contains("app/env.yml:") && msg.contains("appliance.standby"),
        "{msg}"
    );
    a.assert_public_page(false, "configuration", &["appliance.standby", "env.yml"]);
    assert!(
        !a.path("run/active-env.yml").exists(),
        "an invalid env.yml is not activated"
    );
    assert_eq!(checksums(&a.path("data")), before);
}

#[test]
fn postgres_that_does_not_come_up_stops_before_the_database_and_reports() {
    let a = Appliance::new("nopg");
    let before = seeded_vault(&a);
    let compose = std::fs::read_to_string(a.path("compose.yml")).unwrap();
    let broken = compose.replace(
        "    image: ecs-fixture-postgres:test\n",
        "    image: ecs-fixture-postgres:test\n    entrypoint: [sh, -c, \"echo injected failure; exit 3\"]\n",
    );
    assert_ne!(broken, compose);
    std::fs::write(a.path("compose.yml"), broken).unwrap();
    let (port, sentry) = sentry_listener();
    a.write_env(
        &format!("  sentry:\n    dsn: http://publickey@127.0.0.1:{port}/7\n"),
        "",
    );
    let out = a.start();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let (state, msg) = a.step_state("postgres");
    assert_eq!(state, "failed");
    assert!(msg.contains("service db stopped"), "{msg}");
    assert_eq!(a.step_state("database").0, "pending");
    a.assert_public_page(false, "database", &["service db stopped", "exit code 3", &a.name]);
    let request = sentry.join().unwrap();
    assert!(request.starts_with("POST /api/7/store/ "), "{request}");
    assert!(request.contains("sentry_key=publickey"), "{request}");
    assert!(request.contains("step postgres failed"), "{request}");
    assert!(
        request.contains("service db stopped"),
        "Sentry gets the detail: {request}"
    );
    assert!(
        !request.contains("fixture"),
        "no env.yml values in the event: {request}"
    );
    assert_eq!(checksums(&a.path("data")), before);
}

#[test]
fn app_failing_its_health_check_leaves_the_page_and_the_data() {
    let a = Appliance::new("unhealthy");
    a.write_env("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    assert_eq!(a.start().status.code(), Some(0));
    a.app(&["create-user", "keep@example.org"]);
    std::fs::write(a.path("data/ecs-storage-vault/keep.pdf"), b"precious").unwrap();
    let vault = checksums(&a.path("data/ecs-storage-vault"));
    a.stop();
    let compose = std::fs::read_to_string(a.path("compose.yml")).unwrap();
    std::fs::write(
        a.path("compose.yml"),
        compose.replace("    FIXTURE_FAIL_HEALTH:\n", "    FIXTURE_FAIL_HEALTH: \"1\"\n"),
    )
    .unwrap();
    let out = a.start();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let (state, msg) = a.step_state("containers");
    assert_eq!(state, "failed");
    assert!(msg.contains("service web is unhealthy"), "{msg}");
    a.assert_public_page(true, "containers", &["service web is unhealthy"]);
    assert_eq!(a.psql("SELECT count(*) FROM users"), "1");
    assert_eq!(checksums(&a.path("data/ecs-storage-vault")), vault);
}

#[test]
fn report_failure_records_a_died_agent() {
    let a = Appliance::new("died");
    a.write_env("", "");
    // What a run killed during its database step leaves behind.
    std::fs::create_dir_all(a.path("run/ecs")).unwrap();
    let status = serde_json::json!({"phase": "starting", "started": 1.0, "steps": [
        {"name": "env", "state": "ok", "message": "", "started": 1.0, "finished": 2.0},
        {"name": "database", "state": "running", "message": "", "started": 2.0, "finished": null},
        {"name": "tls", "state": "pending", "message": "", "started": null, "finished": null}]});
    std::fs::write(a.path("run/ecs/status.json"), status.to_string()).unwrap();
    std::fs::copy(a.path("app/env.yml"), a.path("run/active-env.yml")).unwrap();
    let out = a.agent(&["report-failure", "ecs-agent.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(a.status()["phase"], "failed");
    let (state, msg) = a.step_state("database");
    assert_eq!(state, "failed");
    assert!(
        msg.contains("ecs-agent.service stopped before finishing"),
        "{msg}"
    );
    assert_eq!(a.step_state("tls").0, "pending");
    a.assert_public_page(false, "agent", &["stopped before finishing", "journalctl"]);
}
