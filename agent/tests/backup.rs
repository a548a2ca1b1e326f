//! `ecs-agent backup` with the real tools: pg_dump in the fixture's PostgreSQL, duplicity and
//! GnuPG with the keys of a real `ecs-build config new`. A backup restores (wiped data, then
//! `start` with `from_backup`) to identical tables and vault files; a second one is
//! incremental; retention removes old chains; each refusal and fault says what failed, is
//! recorded (and reported), and loses nothing: the previous dump and the backup chain stay.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::{Appliance, DUPLICITY, GPG, checksums, env_text, free_port, indent, sentry_listener, stdout};
use host_util::CommandExt;
use serde_json::Value;

/// The password in backup URLs: in no output, record or report.
const SECRET: &str = "hunter2-backup-secret";

/// env.yml's appliance lines: no ACME, a backup section for `url` with `extra` lines in it.
fn appliance(url: &str, encrypt: &str, extra: &str) -> String {
    format!(
        "  ssl:\n    letsencrypt:\n      enabled: false\n  backup:\n    url: {url}\n{extra}    encrypt: |\n{}",
        indent(encrypt, 6)
    )
}

/// Replaces the active env.yml (what the last start accepted), as a changed config would.
fn set_active_env(a: &Appliance, appliance_lines: &str) {
    host_util::write_atomic(
        &a.path("run/active-env.yml"),
        env_text(appliance_lines, "").as_bytes(),
        0o600,
    )
    .unwrap();
}

fn backup(a: &Appliance) -> Output {
    a.agent(&["backup"])
}

fn record(a: &Appliance) -> Value {
    a.lifecycle()["last"]["backup"].clone()
}

/// A GnuPG home with the backup key of `common::config_new_backup_key()`.
fn gnupg_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("encrypt.asc");
    std::fs::write(&file, common::config_new_backup_key()).unwrap();
    Command::new(GPG.path().unwrap())
        .arg("--batch")
        .arg("--homedir")
        .arg(home.path())
        .arg("--import")
        .arg(&file)
        .run_checked()
        .unwrap();
    home
}

/// (full, incremental) backup sets at `url`, as `duplicity collection-status` lists them.
fn collection(url: &str) -> (usize, usize) {
    let home = gnupg_home();
    let out = Command::new(DUPLICITY.path().unwrap())
        .arg("collection-status")
        .arg("--archive-dir")
        .arg(home.path().join("archive"))
        .arg(url)
        .env("GNUPGHOME", home.path())
        .env("PASSPHRASE", "")
        .run_stdout()
        .unwrap();
    let count = |kind: &str| {
        out.lines()
            .filter(|l| l.trim_start().starts_with(&format!("{kind} ")))
            .count()
    };
    (count("Full"), count("Incremental"))
}

/// (rows, md5 of the rows in order) per table of the public schema; `limit` takes only the first
/// rows by id of a table (the hooks append to some after a restore).
fn tables(a: &Appliance, limit: &BTreeMap<String, u64>) -> BTreeMap<String, (String, String)> {
    let names = a.psql(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
    );
    names
        .lines()
        .map(|t| {
            let from = match limit.get(t) {
                Some(n) => format!("(SELECT * FROM {t} ORDER BY id LIMIT {n}) t"),
                None => format!("{t} t"),
            };
            let row = a.psql(&format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') FROM {from}"
            ));
            let (n, sum) = row.split_once(' ').unwrap();
            (t.to_string(), (n.to_string(), sum.to_string()))
        })
        .collect()
}

/// The agent's output holds no `SECRET`, nor do its records.
fn assert_no_secret(a: &Appliance, out: &Output) {
    let logs = format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr));
    let records = std::fs::read_to_string(a.path("data/etc/ecs-agent/lifecycle.json")).unwrap();
    for text in [&logs, &records] {
        assert!(!text.contains(SECRET), "the password leaked: {text}");
    }
}

/// The dump directory holds only `ecs.pgdump` (no temporary file) and no env.yml is left on /data.
fn assert_clean(a: &Appliance) {
    let names: Vec<String> = std::fs::read_dir(a.path("data/dump/ecs-postgres"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ecs.pgdump"]);
    assert!(!a.path("data/ecs-agent-backup").exists());
}

fn populate(a: &Appliance) {
    for u in ["a@example.org", "b@example.org", "c@example.org"] {
        a.app(&["create-user", u]);
    }
    std::fs::create_dir_all(a.path("data/ecs-storage-vault/2026/11")).unwrap();
    std::fs::write(
        a.path("data/ecs-storage-vault/2026/11/vote.pdf"),
        (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(a.path("data/ecs-storage-vault/index"), b"vault index").unwrap();
}

#[test]
fn backup_then_wiped_data_restores_identical() {
    let a = Appliance::new("bkround");
    let target = tempfile::tempdir().unwrap();
    let url = format!("file://{}", target.path().display());
    let key = common::config_new_backup_key();
    // The file backend ignores the query: a password there must still never show.
    let lines = appliance(&format!("{url}?password={SECRET}"), key, "");
    a.write_env(&lines, "");
    assert_eq!(a.start().status.code(), Some(0));
    populate(&a);

    let out = backup(&a);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("ecs-agent: backup ok: full backup to file://"));
    assert_no_secret(&a, &out);
    assert_clean(&a);
    let r = record(&a);
    assert_eq!(r["result"], "ok");
    assert!(r["finished"].as_f64().unwrap() >= r["started"].as_f64().unwrap());
    let d = &r["details"];
    assert_eq!(d["kind"], "full");
    assert_eq!(d["vault_files"], 2);
    assert!(d["tables"].as_u64().unwrap() >= 5, "{d}");
    assert_eq!(
        d["dump_bytes"].as_u64().unwrap(),
        std::fs::metadata(a.path("data/dump/ecs-postgres/ecs.pgdump"))
            .unwrap()
            .len()
    );
    assert_eq!(d["target"], format!("{url}?password=***"));
    let stats = &d["duplicity"];
    for key in [
        "ElapsedTime",
        "SourceFiles",
        "SourceFileSize",
        "NewFiles",
        "TotalDestinationSizeChange",
    ] {
        assert!(stats[key].is_number(), "{key}: {stats}");
    }
    assert_eq!(stats["Errors"], 0);
    assert_eq!(collection(&url), (1, 0));

    // The backup holds the active env.yml.
    let home = gnupg_home();
    let env_copy = home.path().join("env.yml");
    Command::new(DUPLICITY.path().unwrap())
        .args([
            "restore",
            "--file-to-restore",
            "ecs-agent-backup/env.yml",
            "--archive-dir",
        ])
        .arg(home.path().join("archive"))
        .arg(&url)
        .arg(&env_copy)
        .env("GNUPGHOME", home.path())
        .env("PASSPHRASE", "")
        .run_checked()
        .unwrap();
    assert_eq!(
        std::fs::read(&env_copy).unwrap(),
        std::fs::read(a.path("run/active-env.yml")).unwrap()
    );

    // A second backup after a change is incremental.
    a.app(&["create-user", "d@example.org"]);
    std::fs::write(a.path("data/ecs-storage-vault/2026/11/new.pdf"), b"new file").unwrap();
    let out = backup(&a);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let d = record(&a)["details"].clone();
    assert_eq!(d["kind"], "incremental", "{d}");
    assert_eq!(d["vault_files"], 3);
    let stats = &d["duplicity"];
    assert!(
        stats["NewFiles"].as_u64().unwrap() >= 1
            && stats["NewFiles"].as_u64().unwrap() < stats["SourceFiles"].as_u64().unwrap(),
        "{stats}"
    );
    assert_eq!(collection(&url), (1, 1));

    let want_tables = tables(&a, &BTreeMap::new());
    let want_files = checksums(&a.path("data/ecs-storage-vault"));

    // The data volume (and volatile, and /run: a new machine) wiped, then a start from the backup.
    a.stop();
    for d in ["data", "volatile", "run"] {
        std::fs::remove_dir_all(a.path(d)).unwrap();
        std::fs::create_dir_all(a.path(d)).unwrap();
    }
    a.write_env(&lines, "  recover:\n    from_backup: true\n");
    let out = a.start();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        a.step_state("database").1.starts_with("restored from backup "),
        "{:?}",
        a.step_state("database")
    );
    // migrate and bootstrap ran once more after the restore: they append to their tables.
    let appended: BTreeMap<String, u64> = ["migrations", "hook_runs"]
        .iter()
        .map(|t| (t.to_string(), want_tables[*t].0.parse().unwrap()))
        .collect();
    assert_eq!(tables(&a, &appended), want_tables);
    assert_eq!(checksums(&a.path("data/ecs-storage-vault")), want_files);
    assert!(!a.path("data/.restore").exists());
    assert!(!a.path("data/ecs-agent-backup").exists());
}

fn sha(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn wait_for_db(a: &Appliance) {
    for _ in 0..60 {
        let ok = a
            .compose()
            .args([
                "exec", "-T", "db", "psql", "-X", "-U", "postgres", "-d", "ecs", "-c", "SELECT 1",
            ])
            .run_checked()
            .is_ok();
        if ok {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("the database did not come back");
}

/// Asserts a failed or refused backup: exit 1, the record's result and message.
fn assert_not_done(a: &Appliance, out: &Output, result: &str, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stdout(out));
    let word = if result == "failed" { "failed" } else { "refused" };
    assert!(
        stdout(out).contains(&format!("ecs-agent: backup {word}: ")) && stdout(out).contains(says),
        "{}",
        stdout(out)
    );
    let r = record(a);
    assert_eq!(r["result"], result, "{r}");
    assert!(r["message"].as_str().unwrap().contains(says), "{r}");
}

#[test]
fn refusals_and_faults_keep_the_previous_dump_and_backup() {
    let a = Appliance::new("bkfault");
    let target = tempfile::tempdir().unwrap();
    let url = format!("file://{}", target.path().display());
    let key = common::config_new_backup_key();
    let lines = appliance(&url, key, "");
    a.write_env(&lines, "");
    assert_eq!(a.start().status.code(), Some(0));
    populate(&a);
    // Incompressible rows, so the dump is too big for a nearly full disk.
    a.psql(
        "CREATE TABLE padding AS SELECT md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 30000)",
    );
    let out = backup(&a);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let dump = a.path("data/dump/ecs-postgres/ecs.pgdump");
    let mut dump_sum = sha(&dump);
    let mut chain = checksums(target.path());
    let kept = |dump_sum: &str, chain: &BTreeMap<String, String>| {
        assert_eq!(sha(&dump), dump_sum, "the previous dump is intact");
        assert_eq!(&checksums(target.path()), chain, "the backup chain is unchanged");
        assert_clean(&a);
    };

    // An unusable key: nothing is dumped.
    let garbage =
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nZml4dHVyZQ==\n-----END PGP PRIVATE KEY BLOCK-----\n";
    set_active_env(&a, &appliance(&url, garbage, ""));
    let out = backup(&a);
    assert_not_done(&a, &out, "failed", "importing appliance.backup.encrypt");
    kept(&dump_sum, &chain);

    // An unreachable target, with a password in its URL, and Sentry told.
    let (port, sentry) = sentry_listener();
    let closed = free_port();
    let bad = format!("rsync://backup:{SECRET}@127.0.0.1:{closed}/ecs");
    set_active_env(
        &a,
        &format!(
            "  sentry:\n    dsn: http://publickey@127.0.0.1:{port}/7\n{}",
            appliance(&bad, key, "    options: --num-retries 1\n")
        ),
    );
    let out = backup(&a);
    assert_not_done(
        &a,
        &out,
        "failed",
        &format!("backing up to rsync://backup:***@127.0.0.1:{closed}/ecs with duplicity"),
    );
    assert_no_secret(&a, &out);
    let request = sentry.join().unwrap();
    assert!(request.starts_with("POST /api/7/store/ "), "{request}");
    assert!(request.contains("backup failed"), "{request}");
    assert!(!request.contains(SECRET), "{request}");
    assert_eq!(&checksums(target.path()), &chain);
    // The dump was renewed (a complete one, under its name): the new baseline.
    assert_clean(&a);
    dump_sum = sha(&dump);
    set_active_env(&a, &lines);

    // A full disk during the dump: a tmpfs over the dump directory with the previous dump and
    // little room beside it, seen by the database container once it restarts.
    let dir = a.path("data/dump/ecs-postgres");
    let size = std::fs::metadata(&dump).unwrap().len();
    assert!(size > 400_000, "the dump is big enough to fill the disk: {size}");
    let saved = std::fs::read(&dump).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={}", size + 64 * 1024))
        .arg("ecs-backup-test")
        .arg(&dir)
        .run_checked()
        .unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).run_checked();
        }
    }
    let unmount = Unmount(&dir);
    std::fs::write(&dump, &saved).unwrap();
    a.compose().args(["restart", "db"]).run_checked().unwrap();
    wait_for_db(&a);
    let out = backup(&a);
    assert_not_done(&a, &out, "failed", "dumping database ecs");
    assert!(
        stdout(&out).contains("No space left on device"),
        "{}",
        stdout(&out)
    );
    kept(&dump_sum, &chain);
    drop(unmount);
    a.compose().args(["restart", "db"]).run_checked().unwrap();
    wait_for_db(&a);
    kept(&dump_sum, &chain);

    // A second backup while the first runs: refused, naming the first, which then finishes.
    let mut first = Command::new(env!("CARGO_BIN_EXE_ecs-agent"))
        .arg("--context")
        .arg(a.context_file())
        .arg("backup")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id().to_string();
    while record(&a)["result"] != "running" {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first backup ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-STOP", &pid]).run_checked().unwrap();
    let second = backup(&a);
    Command::new("kill").args(["-CONT", &pid]).run_checked().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", stdout(&second));
    assert!(
        stdout(&second).starts_with(&format!(
            "ecs-agent: backup refused: `ecs-agent backup` (pid {pid}) has been running"
        )),
        "{}",
        stdout(&second)
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    assert_eq!(record(&a)["result"], "ok");
    assert_eq!(record(&a)["details"]["kind"], "incremental");
    assert_clean(&a);
    chain = checksums(target.path());

    // Retention: with full backups every second and two kept, a third full one removes the first.
    let target2 = tempfile::tempdir().unwrap();
    let url2 = format!("file://{}", target2.path().display());
    set_active_env(
        &a,
        &appliance(&url2, key, "    full_if_older_than: 1s\n    keep_full: 2\n"),
    );
    for n in 1..=3 {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let out = backup(&a);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert_eq!(record(&a)["details"]["kind"], "full");
        assert_eq!(collection(&url2), (n.min(2), 0), "after backup {n}");
    }
    set_active_env(&a, &lines);
    dump_sum = sha(&dump);

    // An emptied vault, then an emptied database, after good backups that saw content: refused.
    let vault = a.path("data/ecs-storage-vault");
    let aside = a.path("vault-aside");
    std::fs::rename(&vault, &aside).unwrap();
    std::fs::create_dir(&vault).unwrap();
    let out = backup(&a);
    assert_not_done(
        &a,
        &out,
        "refused",
        "the storage vault is empty, but the last good backup had 2 files",
    );
    kept(&dump_sum, &chain);
    std::fs::remove_dir(&vault).unwrap();
    std::fs::rename(&aside, &vault).unwrap();

    let had = a.lifecycle()["facts"]["backup-last-ok"]["tables"]
        .as_u64()
        .unwrap();
    a.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    let out = backup(&a);
    assert_not_done(
        &a,
        &out,
        "refused",
        &format!("the database ecs has no tables, but the last good backup had {had}"),
    );
    kept(&dump_sum, &chain);
}
