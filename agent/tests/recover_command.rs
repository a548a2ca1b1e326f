//! `ecs-agent recover` on a running fixture appliance: the data comes back exactly as the backup
//! (or dump) has it, the replaced data is kept aside, a failure after the stop puts the old data
//! back and serves it again, a refusal changes nothing. Backups are made by `common::make_backup`.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Appliance, BackupTarget, app_data, checksums, make_backup, stdout};
use host_util::CommandExt;
use sha2::Digest;

type Digests = std::collections::BTreeMap<String, (u64, String)>;

/// Everything a restore must give back: the app's tables and every vault file.
#[derive(Debug, PartialEq)]
struct State {
    tables: Digests,
    vault: std::collections::BTreeMap<String, String>,
}

fn state(a: &Appliance) -> State {
    State {
        tables: app_data(a),
        vault: checksums(&a.path("data/ecs-storage-vault")),
    }
}

fn started(name: &str, target: &BackupTarget) -> Appliance {
    let a = Appliance::new(name);
    a.write_env(
        &format!(
            "  ssl:\n    letsencrypt:\n      enabled: false\n{}",
            target.env_section()
        ),
        "",
    );
    assert_eq!(a.start().status.code(), Some(0));
    a
}

/// Adds `n` users and an item named `tag`, and writes vault file `tag`.
fn add_data(a: &Appliance, tag: &str, n: u32) {
    a.psql(&format!(
        "INSERT INTO users (email) SELECT '{tag}-' || g || '@example.org' FROM generate_series(1, {n}) g"
    ));
    a.psql(&format!("INSERT INTO items (name) VALUES ('{tag}')"));
    let dir = a.path(&format!("data/ecs-storage-vault/{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("doc.pdf"), tag.repeat(5000)).unwrap();
}

/// What the app serves through the frontend (https).
fn served(a: &Appliance) -> String {
    let (code, body) = a.get(true, "/");
    assert_eq!(code, 200, "{body}");
    body.trim().to_string()
}

/// What the app should serve for `s`.
fn page_for(s: &State) -> String {
    format!(
        "fixture app: {} items, {} users",
        s.tables["items"].0, s.tables["users"].0
    )
}

/// The last recover's record.
fn record(a: &Appliance) -> serde_json::Value {
    let l: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path("data/etc/ecs-agent/lifecycle.json")).unwrap()).unwrap();
    l["last"]["recover"].clone()
}

fn migrate_runs(a: &Appliance) -> u64 {
    a.psql("SELECT count(*) FROM hook_runs WHERE name = 'migrate'")
        .parse()
        .unwrap()
}

#[test]
fn recover_gives_back_the_backup_the_earlier_backup_and_the_dump() {
    let target = BackupTarget::new();
    let a = started("rcmd", &target);
    add_data(&a, "first", 20);
    let first = state(&a);
    make_backup(&a, &target);
    // duplicity's times have a resolution of one second: `between` picks the first backup.
    std::thread::sleep(Duration::from_secs(2));
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::thread::sleep(Duration::from_secs(2));
    add_data(&a, "second", 30);
    let second = state(&a);
    make_backup(&a, &target);

    // Changed since: rows added, a vault file deleted.
    add_data(&a, "third", 5);
    std::fs::remove_file(a.path("data/ecs-storage-vault/first/doc.pdf")).unwrap();
    let changed = state(&a);
    assert_ne!(changed, second);
    let migrated = migrate_runs(&a);

    let out = a.agent(&["recover", "--from", "backup"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("ecs-agent: recover ok: restored from backup"));
    assert_eq!(state(&a), second, "the newest backup's data, exactly");
    assert_eq!(migrate_runs(&a), migrated + 1, "migrate ran once on the restore");
    assert_eq!(served(&a), page_for(&second));
    let r = record(&a);
    assert_eq!(r["result"], "ok");
    assert_eq!(r["details"]["source"], "backup");
    for phase in [
        "fetch",
        "stop",
        "move-aside",
        "database-start",
        "restore-migrate",
        "app-start",
    ] {
        assert!(r["details"]["phases"][phase].is_number(), "{phase}: {r}");
    }
    // The replaced data is aside: the changed vault and the old database's directory.
    let aside = PathBuf::from(r["details"]["aside"].as_str().unwrap());
    assert!(
        aside.starts_with(a.path("data/.recover-aside")),
        "{}",
        aside.display()
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains(&format!("rm -rf {}", aside.display()))
    );
    assert_eq!(checksums(&aside.join("ecs-storage-vault")), changed.vault);
    assert!(aside.join("container/ecs-postgres/PG_VERSION").is_file());
    assert!(aside.join("dump/ecs-postgres/ecs.pgdump").is_file());
    assert!(!a.path("data/.restore").exists(), "the scratch restore is gone");

    // The earlier backup, by time; the message counts the older aside copy.
    let out = a.agent(&["recover", "--time", &between.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(state(&a), first, "the first backup's data, exactly");
    assert_eq!(served(&a), page_for(&first));
    assert_eq!(record(&a)["details"]["time"], between.to_string());
    assert!(stdout(&out).contains("1 older copy in"), "{}", stdout(&out));

    // From the dump that restore left in the dump directory (the first backup's): the
    // database only; the vault's files stay as they are.
    add_data(&a, "fourth", 3);
    let vault_now = checksums(&a.path("data/ecs-storage-vault"));
    let out = a.agent(&["recover", "--from", "dump"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(app_data(&a), first.tables);
    assert_eq!(checksums(&a.path("data/ecs-storage-vault")), vault_now);
    assert_eq!(served(&a), page_for(&first));
    let r = record(&a);
    assert_eq!(r["details"]["source"], "dump");
    assert_eq!(
        r["details"]["replaced"],
        serde_json::json!([a
            .path("data/container/ecs-postgres")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()])
    );
}

/// An appliance never started has no active env.yml: nothing to recover into.
#[test]
fn recover_before_any_start_is_refused() {
    let a = Appliance::new("rnever");
    let out = a.agent(&["recover", "--from", "dump"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("recover failed:") && stdout(&out).contains("is the appliance started?"),
        "{}",
        stdout(&out)
    );
    assert!(!a.path("data/.recover-aside").exists());
    assert!(!a.path("data/etc/ecs-agent/lifecycle.json").exists());
}

/// Holds the lifecycle lock with flock(1), as another lifecycle command would; released on drop.
struct HeldLock(Child);

impl HeldLock {
    fn take(file: &Path) -> HeldLock {
        let child = Command::new("flock")
            .arg(file)
            .args(["sleep", "120"])
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        // Held once a non-blocking flock fails.
        while Command::new("flock")
            .arg("-n")
            .arg(file)
            .arg("true")
            .status()
            .unwrap()
            .success()
        {
            assert!(Instant::now() < deadline, "flock did not take {}", file.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        HeldLock(child)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn refused_and_failed_recovers_keep_the_data() {
    let target = BackupTarget::new();
    let a = started("rfail", &target);
    add_data(&a, "kept", 10);
    let before = state(&a);
    let page = page_for(&before);
    let dumps = a.path("data/dump/ecs-postgres");

    // No dump to restore: refused before anything stops.
    let out = a.agent(&["recover", "--from", "dump"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("recover refused: no dump (*.pgdump, *.pgdump.gz) in"),
        "{}",
        stdout(&out)
    );
    assert_eq!(record(&a)["result"], "refused");
    let out = a.agent(&["recover", "--from", "dump", "--dump", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("recover refused: dump /etc/passwd: dumps are read from"),
        "{}",
        stdout(&out)
    );
    let out = a.agent(&["recover", "--from", "dump", "--time", "3D"]);
    assert!(stdout(&out).contains("recover refused: --time picks a backup"));
    assert_eq!(state(&a), before);
    assert_eq!(served(&a), page);
    assert!(!a.path("data/.recover-aside").exists());

    // A backup that is not there: fails while fetching, before anything stops.
    let empty = tempfile::tempdir().unwrap();
    a.write_env(
        &format!(
            "  ssl:\n    letsencrypt:\n      enabled: false\n{}",
            target
                .env_section()
                .replace(&target.url, &format!("file://{}", empty.path().display()))
        ),
        "",
    );
    // The active env.yml is what the last start accepted: swap it in as a start would.
    std::fs::copy(a.path("app/env.yml"), a.path("run/active-env.yml")).unwrap();
    let out = a.agent(&["recover"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("recover failed: fetching the backup (nothing was stopped or moved)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(state(&a), before);
    assert_eq!(served(&a), page);

    // Another lifecycle command holds the lock: refused, naming the lock. (The backup target
    // back in the active env.yml first: the dump comes from a real backup.)
    a.write_env(
        &format!(
            "  ssl:\n    letsencrypt:\n      enabled: false\n{}",
            target.env_section()
        ),
        "",
    );
    std::fs::copy(a.path("app/env.yml"), a.path("run/active-env.yml")).unwrap();
    make_backup(&a, &target);
    {
        let _held = HeldLock::take(&a.path("run/ecs/lifecycle.lock"));
        let out = a.agent(&["recover", "--from", "dump"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stdout(&out).contains("recover refused") && stdout(&out).contains("lifecycle lock"),
            "{}",
            stdout(&out)
        );
    }
    assert_eq!(state(&a), before);
    assert_eq!(served(&a), page);

    // A corrupt dump fails after the stop and the move: the old data goes back and serves.
    std::fs::write(dumps.join("corrupt.pgdump"), vec![0x5a; 4096]).unwrap();
    let out = a.agent(&["recover", "--from", "dump", "--dump", "corrupt.pgdump"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("recover failed: the previous data is back in place and the appliance runs it again")
            && text.contains("corrupt.pgdump"),
        "{text}"
    );
    let r = record(&a);
    assert_eq!(r["result"], "failed");
    assert_eq!(r["details"]["rolled-back"], true);
    assert_eq!(state(&a), before);
    assert_eq!(served(&a), page);
    let aside = a.path("data/.recover-aside");
    assert!(
        !aside.exists() || std::fs::read_dir(&aside).unwrap().count() == 0,
        "nothing left aside"
    );
}

/// Benchmark (scripts/bench/recover.sh): `ecs-agent recover --from backup` of a few MB of rows
/// and vault files, against what it cannot do without: duplicity's restore of the same backup
/// and pg_restore of its dump into a new database, run by hand in the same run. Prints a
/// `bench:` line; asserts only that both worked.
#[test]
#[ignore = "benchmark: scripts/bench/recover.sh"]
fn bench_recover() {
    let target = BackupTarget::new();
    let a = started("rbench", &target);
    a.psql("INSERT INTO items (name) SELECT repeat(md5(g::text), 6) FROM generate_series(1, 20000) g");
    let vault = a.path("data/ecs-storage-vault/bench");
    std::fs::create_dir_all(&vault).unwrap();
    let mut block = [0u8; 32];
    for i in 0..8 {
        // Incompressible content, as documents are.
        let mut bytes = Vec::with_capacity(512 * 1024);
        while bytes.len() < 512 * 1024 {
            block = sha2::Sha256::digest([&block[..], &[i]].concat()).into();
            bytes.extend_from_slice(&block);
        }
        std::fs::write(vault.join(format!("doc{i}.pdf")), bytes).unwrap();
    }
    let want = state(&a);
    make_backup(&a, &target);
    let size: u64 = std::fs::read_dir(target.dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    // The baseline: duplicity restore, then pg_restore of its dump into a new database.
    let db = a
        .compose()
        .args(["ps", "-q", "db"])
        .run_stdout()
        .unwrap()
        .trim()
        .to_string();
    let t = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    Command::new(common::DUPLICITY.path().unwrap())
        .arg("restore")
        .arg("--archive-dir")
        .arg(scratch.path().join("archive"))
        .arg(&target.url)
        .arg(scratch.path().join("data"))
        .env("GNUPGHOME", target.keys.path())
        .env("PASSPHRASE", "")
        .run_checked()
        .unwrap();
    a.psql("CREATE DATABASE baseline");
    let dump = std::fs::read(scratch.path().join("data/dump/ecs-postgres/ecs.pgdump")).unwrap();
    // docker exec: docker-compose v1's `exec -T` does not pass stdin on.
    common::docker(&a.docker_host)
        .args([
            "exec",
            "-i",
            &db,
            "pg_restore",
            "-U",
            "postgres",
            "-d",
            "baseline",
            "--no-owner",
        ])
        .run_with_input(&dump)
        .unwrap();
    let baseline = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let out = a.agent(&["recover", "--from", "backup"]);
    let recover = t.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(state(&a), want);
    let r = record(&a);
    let phases: Vec<String> = r["details"]["phases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "bench: recover={recover:.1} baseline={baseline:.1} downtime={} backup-bytes={size} {}",
        r["details"]["downtime"],
        phases.join(" ")
    );
}
