//! Restore decisions on empty storage: ECS_RECOVER_FROM_BACKUP (duplicity, file:// target,
//! a real GnuPG key) and ECS_RECOVER_FROM_DUMP give the populated appliance's data back.
//! The fixture's definition has `extensions: [pg_stat_statements]`, so every dump carries the
//! extension, and `premigrate` with `if-table-missing: migrations`, so a dump without that table
//! is an old one.

mod common;

use common::{Appliance, BackupTarget, backup_key, checksums, indent, make_backup, stdout};
use host_util::CommandExt;

/// The password in the backup URL: it must appear in no output and no file the agent writes.
const SECRET: &str = "hunter2-backup-secret";

/// The journal's stand-in (the agent's stdout and stderr) and status.json hold no `SECRET`.
fn assert_no_secret(a: &Appliance, out: &std::process::Output) {
    let logs = format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr));
    assert!(
        logs.contains("password=***"),
        "the URL is named, redacted: {logs}"
    );
    let status = std::fs::read_to_string(a.path("run/ecs/status.json")).unwrap();
    for text in [&logs, &status] {
        assert!(!text.contains(SECRET), "the password leaked: {text}");
    }
}

/// A restore that fails on a URL with a password: the step fails (`database` on the page),
/// and the password is in no output, not in status.json, not on the page.
#[test]
fn failed_restore_hides_the_backup_password() {
    let a = Appliance::new("badbackup");
    let keys = tempfile::tempdir().unwrap();
    let (_, key) = backup_key(keys.path());
    let missing = a.path("no-backup-here");
    a.write_env(
        &format!(
            "  ssl:\n    letsencrypt:\n      enabled: false\n  backup:\n    url: file://{}?password={SECRET}\n    encrypt: |\n{}",
            missing.display(),
            indent(&key, 6)
        ),
        "  recover:\n    from_backup: true\n",
    );
    let out = a.start();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let (state, message) = a.step_state("database");
    assert_eq!(state, "failed");
    assert!(message.contains("restoring the backup from file://"), "{message}");
    assert_no_secret(&a, &out);
    a.assert_public_page(false, "database", &["restoring the backup"]);
    assert!(!a.get(false, "/").1.contains(SECRET));
}

/// How often the fixture recorded each hook: (premigrate, migrate, bootstrap).
fn hook_runs(x: &Appliance) -> [u32; 3] {
    ["premigrate", "migrate", "bootstrap"].map(|h| {
        x.psql(&format!("SELECT count(*) FROM hook_runs WHERE name = '{h}'"))
            .parse()
            .unwrap()
    })
}

/// SQL as the superuser in database `postgres`, retried until the server answers.
fn psql_when_ready(x: &Appliance, sql: &str) {
    for _ in 0..60 {
        let ok = x
            .compose()
            .args([
                "exec", "-T", "db", "psql", "-X", "-U", "postgres", "-d", "postgres", "-c", sql,
            ])
            .run_checked()
            .is_ok();
        if ok {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("the database service did not take {sql}");
}

#[test]
fn recover_from_backup_and_from_dump_give_identical_data() {
    // A populated appliance.
    let a = Appliance::new("source");
    let target = BackupTarget::new();
    a.write_env(
        &format!(
            "  ssl:\n    letsencrypt:\n      enabled: false\n{}",
            target.env_section()
        ),
        "",
    );
    assert_eq!(a.start().status.code(), Some(0));
    for u in ["a@example.org", "b@example.org", "c@example.org"] {
        a.app(&["create-user", u]);
    }
    std::fs::create_dir_all(a.path("data/ecs-storage-vault/2026/11")).unwrap();
    std::fs::write(
        a.path("data/ecs-storage-vault/2026/11/vote.pdf"),
        vec![7u8; 100_000],
    )
    .unwrap();
    std::fs::write(a.path("data/ecs-storage-vault/index"), b"vault index").unwrap();
    let counts = |x: &Appliance| {
        ["items", "users", "migrations"].map(|t| x.psql(&format!("SELECT count(*) FROM {t}")))
    };
    let want_counts = counts(&a);
    let want_files = checksums(&a.path("data/ecs-storage-vault"));
    // A new database: the extension made by the superuser, migrate then bootstrap once each.
    assert_eq!(
        a.psql("SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'"),
        "pg_stat_statements"
    );
    assert_eq!(hook_runs(&a), [0, 1, 1]);

    // `ecs-agent backup`: a custom-format dump, then duplicity of vault, dump and env.yml.
    make_backup(&a, &target);
    let (url, key) = (&target.url, &target.key);
    let dump = std::fs::read(a.path("data/dump/ecs-postgres/ecs.pgdump")).unwrap();
    // The dump has the extension's entries, which the owner could not restore.
    let toc = a
        .compose()
        .args(["exec", "-T", "db", "pg_restore", "-l", "/dump/ecs.pgdump"])
        .run_stdout()
        .unwrap();
    assert!(toc.contains("EXTENSION - pg_stat_statements"), "{toc}");
    // An old dump (gzipped, as the original wrote them): from before `migrations` existed.
    a.psql("DROP TABLE migrations");
    a.compose()
        .args([
            "exec",
            "-T",
            "db",
            "sh",
            "-c",
            "pg_dump -U postgres -Fc ecs | gzip > /dump/old.pgdump.gz",
        ])
        .run_checked()
        .unwrap();
    let old_dump = std::fs::read(a.path("data/dump/ecs-postgres/old.pgdump.gz")).unwrap();
    a.stop();

    // A new appliance on empty storage restores the backup, from a URL with a password in its
    // query (duplicity's file backend ignores the query).
    let b = Appliance::new("frombackup");
    let backup = format!(
        "  backup:\n    url: {url}?password={SECRET}\n    encrypt: |\n{}",
        indent(key, 6)
    );
    b.write_env(
        &format!("  ssl:\n    letsencrypt:\n      enabled: false\n{backup}"),
        "  recover:\n    from_backup: true\n",
    );
    let out = b.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let message = b.step_state("database").1;
    assert!(
        message.starts_with(&format!("restored from backup {url}?password=***,")),
        "{message}"
    );
    assert_no_secret(&b, &out);
    let restored = counts(&b);
    // migrate ran once more on the restored database, as it does after every restore.
    assert_eq!(restored[..2], want_counts[..2]);
    assert_eq!(
        restored[2].parse::<u32>().unwrap(),
        want_counts[2].parse::<u32>().unwrap() + 1
    );
    assert_eq!(checksums(&b.path("data/ecs-storage-vault")), want_files);
    assert_eq!(b.get(true, "/").1.trim(), "fixture app: 1 items, 3 users");
    // The dump has `migrations`: no premigrate; migrate and bootstrap ran once more.
    assert_eq!(hook_runs(&b), [0, 2, 2]);
    assert!(!b.step_state("database").1.contains("premigrate"));
    assert!(
        !b.path("run/ecs/gnupg-backup").exists(),
        "the private GnuPG home is removed"
    );
    b.stop();

    // And one that restores the dump the operator put into /data/dump/ecs-postgres.
    let c = Appliance::new("fromdump");
    std::fs::create_dir_all(c.path("data/dump/ecs-postgres")).unwrap();
    std::fs::write(c.path("data/dump/ecs-postgres/ecs.pgdump"), &dump).unwrap();
    c.write_env(
        "  ssl:\n    letsencrypt:\n      enabled: false\n",
        "  recover:\n    from_dump: true\n",
    );
    let out = c.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        c.step_state("database").1.starts_with("restored from dump "),
        "{:?}",
        c.step_state("database")
    );
    assert_eq!(counts(&c)[..2], want_counts[..2]);
    assert_eq!(hook_runs(&c), [0, 2, 2]);
    c.stop();

    // An old dump into a database that holds nothing but the extension (its views are not
    // application tables, so the database counts as empty): premigrate runs, then migrate.
    let d = Appliance::new("fromolddump");
    std::fs::create_dir_all(d.path("data/dump/ecs-postgres")).unwrap();
    std::fs::write(d.path("data/dump/ecs-postgres/old.pgdump.gz"), &old_dump).unwrap();
    d.write_env(
        "  ssl:\n    letsencrypt:\n      enabled: false\n",
        "  recover:\n    from_dump: true\n",
    );
    d.compose().args(["up", "-d", "db"]).run_checked().unwrap();
    psql_when_ready(&d, "CREATE DATABASE ecs");
    d.psql("CREATE EXTENSION pg_stat_statements");
    let out = d.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let message = d.step_state("database").1;
    assert!(
        message.starts_with("restored from dump ")
            && message.ends_with("premigrated (no table migrations), migrated"),
        "{message}"
    );
    assert_eq!(hook_runs(&d), [1, 2, 2]);
    assert_eq!(counts(&d)[..2], want_counts[..2]);
}
