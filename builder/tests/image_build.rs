//! `ecs-build image` for real, as the unprivileged build user (CI runs as root and drops to
//! `ecsbuild`, which scripts/deps.sh creates with subuid/subgid ranges): mmdebstrap, the cached
//! base, image-layout, qemu-img, the manifest, reproducibility, cache reuse, failures that leave
//! nothing behind, and a TCG boot of the image with its seed ISO and a blank data disk.
//!
//! One image is built per test binary (`shared()`) and reused by the tests that only read it.
//! The base cache is kept in `$TMPDIR/ecs-build-image-tests/cache` between runs; deleting it
//! makes the next run cold. This process's files (`run-<pid>`) go when it ends without a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{USER, Workspace, build_command, chown_to_user, config_new, sha256_of, ssh_key};
use e2e_tests::{Drive, Vm, VmConfig, is_root, user_ids};
use host_util::{CommandExt, Tool};
use serde_json::Value;

const QEMU_IMG: Tool = Tool::new("qemu-img", "qemu-utils");
const PACKER: Tool = Tool::new("packer", "packer");

struct Fixture {
    ws: Workspace,
    agent: PathBuf,
    key: PathBuf,
    env: PathBuf,
    units: PathBuf,
}

struct Built {
    out: PathBuf,
    manifest: Value,
    events: Vec<Value>,
}

/// Serializes the tests that run mmdebstrap into the shared cache, so each can check that
/// the cache directory holds no temporary files after it failed.
static CACHE_WRITERS: Mutex<()> = Mutex::new(());

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ws = Workspace::new("run");
        // The agent is copied so a test can change it without touching target/.
        let agent = ws.work.join("ecs-agent");
        std::fs::copy(e2e_tests::workspace_binary("ecs-agent"), &agent).unwrap();
        chown_to_user(&agent);
        let key = ssh_key(&ws.work.join("id_ed25519"));
        let env = config_new(
            &ws.work.join("env"),
            "appliance.test",
            &key.with_extension("pub"),
            None,
        );
        let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/systemd");
        Fixture {
            ws,
            agent,
            key,
            env,
            units,
        }
    })
}

/// A machine.yml for the tests: the default package set, small disks.
fn machine_yml(f: &Fixture, name: &str, extra: &str, agent: &Path, env: &Path) -> PathBuf {
    let path = f.ws.work.join(format!("{name}.yml"));
    let text = format!(
        "name: ecs-test\nseed: image-tests\nbase:\n  suite: trixie\n{extra}\
         disks:\n  root_size: 3G\n  volatile_size: 512M\n  data_size: 2G\n\
         outputs:\n  raw: true\n  qcow2: true\n  packer: true\n\
         env: {}\nagent:\n  binary: {}\n  units: {}\n",
        env.display(),
        agent.display(),
        f.units.display()
    );
    std::fs::write(&path, text).unwrap();
    chown_to_user(&path);
    path
}

fn out_dir(f: &Fixture, name: &str) -> PathBuf {
    f.ws.out_dir(name)
}

fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn rootfs_cache(events: &[Value]) -> Option<String> {
    events
        .iter()
        .find(|e| e["event"] == "stage" && e["stage"] == "rootfs" && e["status"] == "done")
        .map(|e| e["cache"].as_str().unwrap_or_default().to_string())
}

fn run_build(f: &Fixture, machine: &Path, out: &Path) -> (Output, Vec<Value>) {
    let o = build_command(&f.ws, machine, out)
        .output()
        .expect("running ecs-build image");
    let ev = events(&o);
    (o, ev)
}

fn read_manifest(out: &Path) -> Value {
    let path = out.join("ecs-test-1.0-test.manifest.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

fn raw_sha(manifest: &Value) -> String {
    manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["file"] == "ecs-test-1.0-test.raw")
        .map(|a| a["sha256"].as_str().unwrap().to_string())
        .expect("raw artifact in manifest")
}

fn shared() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let f = fixture();
        let _guard = CACHE_WRITERS.lock().unwrap_or_else(|e| e.into_inner());
        let machine = machine_yml(f, "shared", "", &f.agent, &f.env);
        let out = out_dir(f, "out-shared");
        let (o, events) = run_build(f, &machine, &out);
        assert!(
            o.status.success(),
            "ecs-build image failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Built {
            manifest: read_manifest(&out),
            out,
            events,
        }
    })
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// This process's umask, which the build user's ecs-build inherits.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let value = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
    u32::from_str_radix(value.trim(), 8).unwrap()
}

fn visible_and_hidden(dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().partition(|n| !n.starts_with('.'))
}

#[test]
fn unprivileged_build_gives_raw_qcow2_and_a_manifest_that_matches() {
    let b = shared();
    let f = fixture();
    assert!(
        rootfs_cache(&b.events).is_some(),
        "no rootfs stage event: {:?}",
        b.events
    );
    for stage in ["rootfs", "overlay", "layout", "convert", "manifest"] {
        assert!(
            b.events
                .iter()
                .any(|e| e["event"] == "stage" && e["stage"] == stage && e["status"] == "done"),
            "no done event for {stage}"
        );
    }
    let qcow2 = b.out.join("ecs-test-1.0-test.qcow2");
    let check = QEMU_IMG
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .args(["check", "-f", "qcow2"])
        .arg(&qcow2)
        .run_stdout()
        .unwrap_or_else(|e| panic!("qemu-img check: {e}"));
    assert!(check.contains("No errors were found"), "{check}");
    let artifacts = b.manifest["artifacts"].as_array().unwrap();
    let files: Vec<&str> = artifacts.iter().map(|a| a["file"].as_str().unwrap()).collect();
    for want in [
        "ecs-test-1.0-test.raw",
        "ecs-test-1.0-test.qcow2",
        "ecs-test-1.0-test.seed.iso",
        "ecs-test-1.0-test.pkr.hcl",
        "ecs-test-1.0-test.json",
    ] {
        assert!(files.contains(&want), "{want} missing from manifest: {files:?}");
    }
    for a in artifacts {
        let path = b.out.join(a["file"].as_str().unwrap());
        let (sha, size) = sha256_of(&path);
        assert_eq!(a["sha256"].as_str().unwrap(), sha, "{}", path.display());
        assert_eq!(a["size"].as_u64().unwrap(), size, "{}", path.display());
        if is_root() {
            use std::os::unix::fs::MetadataExt;
            let (uid, _) = user_ids(USER).unwrap();
            assert_eq!(
                std::fs::metadata(&path).unwrap().uid(),
                uid,
                "{} not made by {USER}",
                path.display()
            );
        }
    }
    // The seed ISO holds key material; the rest follows the umask (the image holds no env).
    assert_eq!(mode_of(&b.out.join("ecs-test-1.0-test.seed.iso")), 0o600);
    for name in ["raw", "qcow2", "manifest.json", "pkr.hcl"] {
        let path = b.out.join(format!("ecs-test-1.0-test.{name}"));
        assert_eq!(mode_of(&path), 0o666 & !umask(), "{}", path.display());
    }
    let packages = b.manifest["packages"].as_array().unwrap();
    for p in [
        "linux-image-amd64",
        "cloud-init",
        "docker.io",
        "openssh-server",
        "lvm2",
    ] {
        assert!(
            packages
                .iter()
                .any(|x| x["name"] == p && !x["version"].as_str().unwrap().is_empty()),
            "{p} missing from the manifest's package list"
        );
    }
    let (agent_sha, _) = sha256_of(&f.agent);
    assert_eq!(b.manifest["agent"]["sha256"], agent_sha.as_str());
    assert!(
        b.manifest["agent"]["enabled"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "multi-user.target.wants/ecs-agent.service")
    );
    let (hidden_visible, hidden) = visible_and_hidden(&b.out);
    assert!(
        hidden.is_empty(),
        "temporary files left: {hidden:?} beside {hidden_visible:?}"
    );
}

#[test]
fn emitted_templates_pass_packer_validate() {
    let b = shared();
    let f = fixture();
    let packer = PACKER.path().unwrap_or_else(|e| panic!("{e}"));
    for file in ["ecs-test-1.0-test.pkr.hcl", "ecs-test-1.0-test.json"] {
        let o = Command::new(&packer)
            .current_dir(&b.out)
            .args(["validate", "-var"])
            .arg(format!("ssh_private_key_file={}", f.key.display()))
            .arg(file)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "packer validate {file}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn same_inputs_and_epoch_give_the_same_raw_image() {
    let b = shared();
    let f = fixture();
    let machine = machine_yml(f, "again", "", &f.agent, &f.env);
    let out = out_dir(f, "out-again");
    let (o, events) = run_build(f, &machine, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rootfs_cache(&events).as_deref(), Some("hit"));
    assert_eq!(raw_sha(&read_manifest(&out)), raw_sha(&b.manifest));
}

#[test]
fn changing_only_the_agent_and_env_reuses_the_cached_base() {
    let b = shared();
    let f = fixture();
    let agent2 = f.ws.work.join("ecs-agent-changed");
    let mut bytes = std::fs::read(&f.agent).unwrap();
    bytes.extend_from_slice(b"\0changed agent build\0");
    std::fs::write(&agent2, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&agent2, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env2 = config_new(
        &f.ws.work.join("env2"),
        "other.test",
        &f.key.with_extension("pub"),
        None,
    );
    chown_to_user(&f.ws.work.join("env2"));
    chown_to_user(&agent2);
    // With the env inside, the images hold its keys: 0600 whatever the umask.
    let machine = machine_yml(f, "changed", "embed_env: true\n", &agent2, &env2);
    let out = out_dir(f, "out-changed");
    let (o, events) = run_build(f, &machine, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["raw", "qcow2", "seed.iso"] {
        assert_eq!(
            mode_of(&out.join(format!("ecs-test-1.0-test.{name}"))),
            0o600,
            "{name}"
        );
    }
    assert_eq!(
        mode_of(&out.join("ecs-test-1.0-test.manifest.json")),
        0o666 & !umask()
    );
    assert_eq!(rootfs_cache(&events).as_deref(), Some("hit"), "{events:?}");
    let m = read_manifest(&out);
    assert_eq!(m["rootfs"]["cache_key"], b.manifest["rootfs"]["cache_key"]);
    assert_ne!(m["agent"]["sha256"], b.manifest["agent"]["sha256"]);
    assert_ne!(raw_sha(&m), raw_sha(&b.manifest));
}

/// The cache holds only complete entries: no temporary files, each tarball with its record.
fn assert_cache_clean(f: &Fixture, before: &[String]) {
    let (visible, hidden) = visible_and_hidden(&f.ws.cache.join("ecs-build/rootfs"));
    assert!(hidden.is_empty(), "temporary files in the cache: {hidden:?}");
    assert_eq!(visible, before, "the cache changed");
}

#[test]
fn unreachable_mirror_fails_clearly_and_leaves_nothing() {
    shared();
    let f = fixture();
    let _guard = CACHE_WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    let (before, _) = visible_and_hidden(&f.ws.cache.join("ecs-build/rootfs"));
    let machine = machine_yml(
        f,
        "mirror",
        "  mirror: http://127.0.0.1:9/debian\n",
        &f.agent,
        &f.env,
    );
    let out = out_dir(f, "out-mirror");
    let (o, _) = run_build(f, &machine, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("mirror") && err.contains("mmdebstrap"), "{err}");
    assert_eq!(visible_and_hidden(&out), (vec![], vec![]));
    assert_cache_clean(f, &before);
}

#[test]
fn root_too_small_for_the_tree_is_bad_input_and_leaves_nothing() {
    shared();
    let f = fixture();
    let machine = f.ws.work.join("small.yml");
    let text = std::fs::read_to_string(machine_yml(f, "small-src", "", &f.agent, &f.env))
        .unwrap()
        .replace("root_size: 3G", "root_size: 400M");
    std::fs::write(&machine, text).unwrap();
    chown_to_user(&machine);
    let out = out_dir(f, "out-small");
    let (o, events) = run_build(f, &machine, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(rootfs_cache(&events).as_deref(), Some("hit"));
    assert!(err.contains("root_size"), "{err}");
    assert_eq!(visible_and_hidden(&out), (vec![], vec![]));
}

#[test]
fn sigint_during_the_base_build_leaves_no_artifact_and_no_cache_entry() {
    shared();
    let f = fixture();
    let _guard = CACHE_WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    let rootfs = f.ws.cache.join("ecs-build/rootfs");
    let (before, _) = visible_and_hidden(&rootfs);
    // An extra package makes a new cache key, so mmdebstrap really runs.
    let machine = machine_yml(f, "sigint", "  extra_packages: [hello]\n", &f.agent, &f.env);
    let out = out_dir(f, "out-sigint");
    let mut child = build_command(&f.ws, &machine, &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // mmdebstrap is running once its temporary tarball exists in the cache; then a little more.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut started = false;
    while !started && std::time::Instant::now() < deadline {
        started = visible_and_hidden(&rootfs)
            .1
            .iter()
            .any(|n| n.contains(".tar.tmp-"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(started, "mmdebstrap did not start within 2 minutes");
    std::thread::sleep(Duration::from_secs(3));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .run_checked()
        .unwrap();
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    let err = lines.join("\n");
    assert!(!status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(visible_and_hidden(&out), (vec![], vec![]));
    assert_cache_clean(f, &before);
}

#[test]
fn image_boots_from_its_own_grub_with_seed_and_blank_data_disk() {
    let b = shared();
    let f = fixture();
    let data = f.ws.work.join("data-disk.raw");
    std::fs::File::create(&data).unwrap().set_len(2 << 30).unwrap();
    let mut vm = Vm::boot(&VmConfig {
        drives: vec![
            Drive {
                path: b.out.join("ecs-test-1.0-test.raw"),
                format: "raw",
                snapshot: true,
            },
            Drive {
                path: data,
                format: "raw",
                snapshot: false,
            },
        ],
        cdrom: Some(b.out.join("ecs-test-1.0-test.seed.iso")),
        memory_mib: 2048,
        cpus: 2,
        forward: vec![22],
        guest_forward: vec![],
        serial_log: f.ws.work.join("boot-console.log"),
        default_devices: false,
        incoming: None,
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let minutes = |m: u64| Duration::from_secs(60 * m);
    vm.wait_for("Linux version", minutes(10))
        .unwrap_or_else(|e| panic!("{e:#}"));
    vm.wait_for("Cloud-init v.", minutes(20))
        .unwrap_or_else(|e| panic!("{e:#}"));
    vm.wait_for("ecs-agent: started", minutes(20))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let out = vm
        .ssh_retry(
            &f.key,
            "root",
            "findmnt -n -o TARGET,LABEL /; findmnt -n -o TARGET,LABEL /volatile",
            minutes(10),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        vec![vec!["/", "cloudimg-rootfs"], vec!["/volatile", "ecs-volatile"]],
        "{out}"
    );
    vm.wait_for("finished at", minutes(10))
        .unwrap_or_else(|e| panic!("{e:#}"));
}
