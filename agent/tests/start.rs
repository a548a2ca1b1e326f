//! `ecs-agent start` end to end on the build host: a private dockerd, the fixture images,
//! nginx as the frontend, temp directories standing in for /data and /volatile.

mod common;

use common::{Appliance, DB_PASSWORD, checksums, docker, stdout};
use host_util::CommandExt;

/// `SELECT 1` from a fresh container on the project's network, as `user` with `password`
/// (None: no password), over TCP to the database service.
fn connect_from_the_network(a: &Appliance, user: &str, password: Option<&str>) -> Result<String, String> {
    let mut c = docker(&a.docker_host);
    c.args(["run", "--rm", "--network"])
        .arg(format!("{}_default", a.name))
        .args(["--entrypoint", "psql"]);
    if let Some(p) = password {
        c.arg("-e").arg(format!("PGPASSWORD={p}"));
    }
    c.args([
        "ecs-fixture-postgres:test",
        "-X",
        "-w",
        "-h",
        "db",
        "-U",
        user,
        "-d",
        "ecs",
        "-tAc",
        "SELECT 1",
    ]);
    c.run_stdout()
        .map(|s| s.trim().to_string())
        .map_err(|e| e.to_string())
}

/// Any container on the project's network can reach PostgreSQL; none logs in without the
/// password, the superuser not even with it; the app's role with it.
fn assert_database_needs_the_password(a: &Appliance) {
    let e = connect_from_the_network(a, "postgres", None).unwrap_err();
    assert!(e.contains("no password supplied"), "{e}");
    let e = connect_from_the_network(a, "app", Some("wrong-password")).unwrap_err();
    assert!(
        e.contains("password authentication failed for user \"app\""),
        "{e}"
    );
    let e = connect_from_the_network(a, "postgres", Some(DB_PASSWORD)).unwrap_err();
    assert!(
        e.contains("password authentication failed for user \"postgres\""),
        "{e}"
    );
    assert_eq!(
        connect_from_the_network(a, "app", Some(DB_PASSWORD)).unwrap(),
        "1"
    );
    assert_eq!(
        a.psql("SELECT count(*) FROM pg_hba_file_rules WHERE type <> 'local' AND auth_method = 'trust'"),
        "0"
    );
}

/// A one-file image saved with `docker save` into the appliance's images dir, as ecs-build
/// bakes images, and removed from the engine: the start must load it.
fn bake_tiny_image(a: &Appliance) -> String {
    let tag = format!("ecs-fixture-tiny:{}", a.name);
    std::fs::write(a.path("tiny-file"), b"baked").unwrap();
    std::process::Command::new("tar")
        .arg("-cf")
        .arg(a.path("tiny-rootfs.tar"))
        .arg("-C")
        .arg(a.path(""))
        .arg("tiny-file")
        .run_checked()
        .unwrap();
    let d = || docker(&a.docker_host);
    d().arg("import")
        .arg(a.path("tiny-rootfs.tar"))
        .arg(&tag)
        .run_checked()
        .unwrap();
    d().args(["save", "-o"])
        .arg(a.path("images/tiny.tar"))
        .arg(&tag)
        .run_checked()
        .unwrap();
    d().args(["rmi", &tag]).run_checked().unwrap();
    tag
}

#[test]
fn fresh_start_creates_the_database_and_a_restart_keeps_it() {
    let a = Appliance::new("fresh");
    a.write_env("  ssl:\n    letsencrypt:\n      enabled: false\n", "");
    let tiny = bake_tiny_image(&a);
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ecs-agent: started\n"), "{text}");
    for step in [
        "env",
        "storage",
        "postgres",
        "database",
        "app-dirs",
        "client-ca",
        "tls",
        "containers",
    ] {
        assert!(
            text.contains(&format!("ecs-agent: step {step} ok: ")),
            "{step}: {text}"
        );
    }
    assert_eq!(a.status()["phase"], "running");
    docker(&a.docker_host)
        .args(["image", "inspect", &tiny])
        .run_checked()
        .unwrap();
    let record = a.path("volatile/docker/ecs-loaded-images");
    let loaded = std::fs::read_to_string(&record).unwrap();
    assert!(loaded.contains("images/tiny.tar"), "{loaded}");
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
    assert_database_needs_the_password(&a);
    // The password went to compose in its environment only: no output or status names it.
    let status = std::fs::read_to_string(a.path("run/ecs/status.json")).unwrap();
    for text in [&text, &String::from_utf8_lossy(&out.stderr).into_owned(), &status] {
        assert!(!text.contains(DB_PASSWORD), "{text}");
    }
    let env_mode = std::fs::metadata(a.path("run/active-env.yml")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&env_mode.permissions()) & 0o777,
        0o600
    );

    a.app(&["create-user", "office@example.org"]);
    std::fs::write(a.path("data/ecs-storage-vault/doc.pdf"), b"vault file").unwrap();
    let vault = checksums(&a.path("data/ecs-storage-vault"));
    let migrations = a.psql("SELECT count(*) FROM migrations");

    // A cluster from before passwords: a `trust` rule for the network, first in pg_hba.conf.
    a.compose()
        .args([
            "exec",
            "-T",
            "db",
            "sh",
            "-c",
            "sed -i '1i host all all 0.0.0.0/0 trust' /var/lib/postgresql/data/pg_hba.conf && \
             psql -X -q -U postgres -d postgres -c 'SELECT pg_reload_conf()'",
        ])
        .run_checked()
        .unwrap();
    assert_eq!(connect_from_the_network(&a, "postgres", None).unwrap(), "1");

    // Reboot: the same data, nothing created or migrated again; the trust rule is gone.
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        a.step_state("database").1.contains("present (5 tables), kept"),
        "{:?}",
        a.step_state("database")
    );
    assert_eq!(a.psql("SELECT count(*) FROM users"), "1");
    assert_eq!(a.psql("SELECT count(*) FROM items"), "1");
    assert_eq!(a.psql("SELECT count(*) FROM migrations"), migrations);
    assert_eq!(checksums(&a.path("data/ecs-storage-vault")), vault);
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        loaded,
        "baked images are loaded once"
    );
    assert_eq!(a.get(true, "/").1.trim(), "fixture app: 1 items, 1 users");
    assert_database_needs_the_password(&a);

    let status = a.agent(&["status"]);
    assert_eq!(status.status.code(), Some(0));
    assert!(stdout(&status).contains("phase: running"), "{}", stdout(&status));
    let _ = docker(&a.docker_host).args(["rmi", &tiny]).run_checked();
}
