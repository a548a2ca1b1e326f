//! The appliance judged by booting it: one image, built for real by `ecs-build image` with the
//! fixture app's images baked in (`images:`) and its appliance definition in env.yml
//! (`appliance.compose`), booted under qemu (TCG) with its seed ISO and blank or foreign data
//! disks. The tests check what `ecs-agent` did inside the guest: storage, docker, the database,
//! HTTPS on a forwarded port, and that a reboot keeps the data.
//!
//! Each guest writes to its own qcow2 overlay of the shared image; the data disks are sparse
//! raw files. A guest's first boot takes minutes under TCG (most of it loading the baked images
//! and initdb), so the image is built once per test binary and the scenarios share it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{IMAGE_VERSION, Workspace, build_command, config_new, sha256_of, ssh_key};
use e2e_tests::mail::{self, MailSink};
use e2e_tests::{Drive, Saved, Vm, VmConfig, docker, workspace_binary};
use host_util::{CommandExt, Tool};
use serde_json::Value;

const DOMAIN: &str = "appliance.test";
const NAME: &str = "ecs-vm";
const QEMU_IMG: Tool = Tool::new("qemu-img", "qemu-utils");
const CURL: Tool = Tool::new("curl", "curl");
const SFDISK: Tool = Tool::new("sfdisk", "fdisk");
const MKFS_EXT4: Tool = Tool::new("mkfs.ext4", "e2fsprogs");
const OPENSSL: Tool = Tool::new("openssl", "openssl");
/// Where the guest's relay sends all mail (env.yml relay_host): qemu's user network passes
/// connections to this address to the host's `mail_sink()` (`VmConfig::guest_forward`).
const RELAY: &str = "10.0.2.100:25";
/// The office's first user (env.yml ecs.first_user).
const FIRST_USER: &str = "office@committee.example";

/// The SMTP server standing in for the internet's mail (relay_host), for the whole binary.
fn mail_sink() -> &'static MailSink {
    static S: OnceLock<MailSink> = OnceLock::new();
    S.get_or_init(MailSink::start)
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

fn tool(t: Tool) -> Command {
    t.command().unwrap_or_else(|e| panic!("{e}"))
}

struct Image {
    ws: Workspace,
    env: PathBuf,
    qcow2: PathBuf,
    seed: PathBuf,
    key: PathBuf,
}

/// env.yml for the fixture appliance: the fixture's compose file as `appliance.compose`, and
/// no ACME (there is no CA to reach; the agent's self-signed certificate serves).
///
/// The health checks get TCG's pace: under emulation even starting a check's process can take
/// longer than docker's 30 s default, and the fixture's 1 s interval keeps the guest busy. A
/// start period lets a slow first check count as "starting", not "unhealthy".
fn extra_yml(ws: &Workspace) -> PathBuf {
    let compose = std::fs::read_to_string(docker::fixtures().join("app/compose.yml")).unwrap();
    let checks = compose.matches("    healthcheck:\n").count();
    assert!(
        checks >= 2,
        "the fixture's compose file has no health checks to relax"
    );
    let compose = compose
        .replace(
            "    healthcheck:\n",
            "    healthcheck:\n      start_period: 600s\n      timeout: 300s\n",
        )
        .replace("      interval: 1s\n", "      interval: 10s\n")
        .replace("      interval: 2s\n", "      interval: 10s\n");
    let indented: String = compose.lines().map(|l| format!("    {l}\n")).collect();
    let path = ws.work.join("extra.yml");
    std::fs::write(
        &path,
        // ecs.git.branch names the fixture app's version (its image tag): v1, updated to v2..v4.
        format!(
            "appliance:\n  ssl:\n    letsencrypt:\n      enabled: false\n  mail:\n    relay_host: \"[{relay_ip}]:{relay_port}\"\n  \
             compose: |\n{indented}ecs:\n  git:\n    branch: v1\n  first_user:\n    email: {FIRST_USER}\n    \
             first_name: Erika\n    last_name: Office\n    gender: f\n",
            relay_ip = RELAY.split(':').next().unwrap(),
            relay_port = RELAY.split(':').nth(1).unwrap(),
        ),
    )
    .unwrap();
    path
}

fn image() -> &'static Image {
    static I: OnceLock<Image> = OnceLock::new();
    I.get_or_init(|| {
        let ws = Workspace::new("appliance-vm");
        let key = ssh_key(&ws.work.join("id_ed25519"));
        let env = config_new(
            &ws.work.join("env"),
            DOMAIN,
            &key.with_extension("pub"),
            Some(&extra_yml(&ws)),
        );
        let archive = docker::fixture_archive();
        let agent = workspace_binary("ecs-agent");
        let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/systemd");
        let machine = ws.work.join("machine.yml");
        // Volatile holds docker's store: the two fixture images, loaded.
        std::fs::write(
            &machine,
            format!(
                "name: {NAME}\nseed: appliance-vm\nbase:\n  suite: trixie\n\
                 disks:\n  root_size: 3G\n  volatile_size: 6G\n  data_size: 4G\n\
                 outputs:\n  raw: false\n  qcow2: true\n  packer: false\n\
                 env: {}\nimages:\n  - {}\nagent:\n  binary: {}\n  units: {}\n",
                env.display(),
                archive.display(),
                agent.display(),
                units.display()
            ),
        )
        .unwrap();
        common::chown_to_user(&machine);
        let out = ws.out_dir("out");
        let o = build_command(&ws, &machine, &out).output().unwrap();
        assert!(
            o.status.success(),
            "ecs-build image failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Image {
            env,
            qcow2: out.join(format!("{NAME}-{IMAGE_VERSION}.qcow2")),
            seed: out.join(format!("{NAME}-{IMAGE_VERSION}.seed.iso")),
            key,
            ws,
        }
    })
}

/// One guest's disks: its own overlay of the image (or another system disk), and data disks.
struct Guest {
    name: String,
    system: Drive,
    data: Vec<PathBuf>,
    /// qemu's default devices (floppy fd0, `-cdrom`), as README's boot command has them.
    default_devices: bool,
}

impl Guest {
    /// A guest on its own qcow2 overlay of the image.
    fn new(name: &str, data_disks: usize) -> Guest {
        let overlay = image().ws.work.join(format!("{name}-system.qcow2"));
        tool(QEMU_IMG)
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&image().qcow2)
            .arg(&overlay)
            .run_checked()
            .unwrap();
        let system = Drive {
            path: overlay,
            format: "qcow2",
            snapshot: false,
        };
        Guest::with_system(name, system, data_disks)
    }

    /// A guest on `system`, with `data_disks` blank sparse 4 GiB disks.
    fn with_system(name: &str, system: Drive, data_disks: usize) -> Guest {
        let data = (0..data_disks)
            .map(|i| {
                let p = image().ws.work.join(format!("{name}-data{i}.raw"));
                std::fs::File::create(&p).unwrap().set_len(4 << 30).unwrap();
                p
            })
            .collect();
        Guest {
            name: name.into(),
            system,
            data,
            default_devices: false,
        }
    }

    fn boot(&self, n: usize) -> Vm {
        let img = image();
        let mut drives = vec![self.system.clone()];
        drives.extend(self.data.iter().map(|p| Drive {
            path: p.clone(),
            format: "raw",
            snapshot: false,
        }));
        Vm::boot(&VmConfig {
            drives,
            cdrom: Some(img.seed.clone()),
            memory_mib: 3072,
            cpus: 2,
            forward: vec![22, 25, 80, 443, 465],
            guest_forward: vec![(RELAY.to_string(), mail_sink().port)],
            serial_log: img.ws.work.join(format!("{}-boot{n}.log", self.name)),
            default_devices: self.default_devices,
            incoming: None,
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

fn ssh(vm: &mut Vm, command: &str) -> String {
    vm.ssh_retry(&image().key, "root", command, minutes(5))
        .unwrap_or_else(|e| panic!("{command}: {e:#}"))
}

fn wait(vm: &mut Vm, marker: &str, timeout: Duration) {
    vm.wait_for(marker, timeout).unwrap_or_else(|e| panic!("{e:#}"));
}

/// `ecs-agent start` reached the end, at its first try: a step that failed and passed when
/// the unit restarted would still be a broken first boot.
fn wait_running(vm: &mut Vm) {
    wait(vm, "ecs-agent: running", minutes(30));
    let console = vm.console();
    let failed: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("ecs-agent: step ") && l.contains(" failed: "))
        .collect();
    assert!(failed.is_empty(), "a step failed on the way: {failed:#?}");
}

fn status(vm: &mut Vm) -> Value {
    serde_json::from_str(&ssh(vm, "cat /run/ecs/status.json")).unwrap()
}

fn step_message(status: &Value, name: &str) -> String {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .map(|s| {
            format!(
                "{}: {}",
                s["state"].as_str().unwrap(),
                s["message"].as_str().unwrap()
            )
        })
        .unwrap_or_else(|| panic!("no step {name} in {status}"))
}

/// (status code, body) of a GET through the forwarded port; retried while the frontend
/// reloads (a connection reset then is not an answer).
fn get(vm: &Vm, https: bool, path: &str) -> (u16, String) {
    let (scheme, guest) = if https { ("https", 443) } else { ("http", 80) };
    let port = vm.port(guest);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = tool(CURL)
            .args([
                "-sS",
                "-k",
                "--max-time",
                "20",
                "-w",
                "\n%{http_code}",
                "--resolve",
            ])
            .arg(format!("{DOMAIN}:{port}:127.0.0.1"))
            .arg(format!("{scheme}://{DOMAIN}:{port}{path}"))
            .run_stdout();
        match out {
            Ok(out) => {
                let (body, code) = out.rsplit_once('\n').unwrap();
                return (code.trim().parse().unwrap(), body.to_string());
            }
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

/// What every started appliance shows: docker on /volatile, data mounted, the app over HTTPS.
fn assert_serving(vm: &mut Vm) {
    assert_eq!(
        ssh(vm, "docker info -f '{{.DockerRootDir}}'").trim(),
        "/volatile/docker"
    );
    assert_eq!(
        ssh(vm, "findmnt -n -o SOURCE,LABEL /data")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/dev/mapper/permanent-data", "ecs-data"]
    );
    assert_eq!(status(vm)["phase"], "running");
    let (code, body) = get(vm, true, "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("fixture app:"), "{body}");
    assert_cloud_init_clean(vm);
}

/// The image's own cloud-init (25.1) took the seed without a complaint: `status --long` says
/// `done` with no errors and no recoverable errors (a schema warning would make it `degraded
/// done`, exit 2), and `schema --system` validates the user-data it stored. Both print their
/// exit status last, so a failure shows the whole output instead of an ssh retry.
fn assert_cloud_init_clean(vm: &mut Vm) {
    let status = ssh(vm, "cloud-init status --wait --long; echo \"exit=$?\"");
    // --wait prints a dot per poll before the report.
    let status = status.trim_start_matches('.');
    let lines: Vec<&str> = status.lines().map(str::trim_end).collect();
    for want in [
        "status: done",
        "extended_status: done",
        "errors: []",
        "recoverable_errors: {}",
        "exit=0",
    ] {
        assert!(
            lines.contains(&want),
            "`{want}` not in cloud-init status:\n{status}"
        );
    }
    assert!(!status.contains("degraded"), "{status}");

    let schema = ssh(vm, "cloud-init schema --system 2>&1; echo \"exit=$?\"");
    let lines: Vec<&str> = schema.lines().map(str::trim).collect();
    assert!(lines.contains(&"Valid schema user-data"), "{schema}");
    assert_eq!(lines.last(), Some(&"exit=0"), "{schema}");
    for bad in ["Invalid", "Error", "deprecat", "WARNING"] {
        assert!(
            !schema.contains(bad),
            "`{bad}` in cloud-init schema --system:\n{schema}"
        );
    }
}

/// The rows `sql` returns, one per line (`-q`: no command tag such as `INSERT 0 1`).
fn psql(vm: &mut Vm, sql: &str) -> String {
    let cmd = format!(
        "docker exec $(docker ps -q --filter label=com.docker.compose.service=db) \
         psql -X -q -U postgres -d ecs -tAc \"{sql}\""
    );
    ssh(vm, &cmd).trim().to_string()
}

/// Powers the guest off from inside (qemu runs with -no-reboot and exits).
fn power_off(vm: &mut Vm) {
    // The connection drops as the guest goes down: the command's own result says nothing.
    let _ = vm.ssh(&image().key, "root", "systemctl poweroff");
    vm.wait_exit(minutes(10)).unwrap_or_else(|e| panic!("{e:#}"));
}

/// A cloud image's shape: root alone, free space after it. Made from the image by dropping
/// p2 and wiping what it held, so nothing of the old volatile can be found again. Named for
/// `guest`, like the overlays of `Guest::new`.
fn system_disk_without_volatile(guest: &str) -> Drive {
    let img = image();
    let raw = img.ws.work.join(format!("{guest}-system.raw"));
    tool(QEMU_IMG)
        .args(["convert", "-q", "-f", "qcow2", "-O", "raw"])
        .arg(&img.qcow2)
        .arg(&raw)
        .run_checked()
        .unwrap();
    let table: Value =
        serde_json::from_str(&tool(SFDISK).arg("--json").arg(&raw).run_stdout().unwrap()).unwrap();
    let p2_start = table["partitiontable"]["partitions"][1]["start"]
        .as_u64()
        .unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
        f.seek(SeekFrom::Start(p2_start * 512)).unwrap();
        f.write_all(&vec![0u8; 8 << 20]).unwrap();
    }
    tool(SFDISK)
        .args(["-q", "--delete"])
        .arg(&raw)
        .arg("2")
        .run_checked()
        .unwrap();
    Drive {
        path: raw,
        format: "raw",
        snapshot: false,
    }
}

/// The guest has qemu's floppy drive, so a test that boots with default devices cannot pass
/// without it being there to refuse.
fn assert_has_floppy(vm: &mut Vm) {
    assert_eq!(
        ssh(vm, "test -b /dev/fd0 && echo fd0 || echo none").trim(),
        "fd0",
        "the guest has no floppy drive: the disk choice was not tested against one"
    );
}

/// A booted, serving appliance saved once (`Vm::save`) for every scenario that starts from
/// one: a first boot costs minutes under TCG (loading the baked images, initdb, the app's
/// hooks), a restore seconds.
struct SavedAppliance {
    saved: Saved,
    /// The first boot's console (the restored guests' consoles start at the restore).
    first_boot_log: PathBuf,
}

/// The commonest first boot, made once: a cloud VM with a plain root and one blank disk
/// attached, booted as README says (qemu's default machine: a floppy drive fd0 and an IDE
/// CD-ROM beside the virtio disks). Saved when the agent says `running` at its first try.
fn saved_appliance() -> &'static SavedAppliance {
    static S: OnceLock<SavedAppliance> = OnceLock::new();
    S.get_or_init(|| {
        let started = Instant::now();
        let mut guest = Guest::with_system("one", system_disk_without_volatile("one"), 1);
        guest.default_devices = true;
        let mut vm = guest.boot(1);
        wait_running(&mut vm);
        let booted = started.elapsed();
        let saved = vm
            .save(&image().ws.work.join("saved-one"))
            .unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "timeline: first boot to `ecs-agent: running` {:.0}s, saved in {:.0}s",
            booted.as_secs_f64(),
            (started.elapsed() - booted).as_secs_f64()
        );
        SavedAppliance {
            saved,
            first_boot_log: vm.serial_log().to_path_buf(),
        }
    })
}

/// A running appliance restored from the saved one, for scenario `name`; its clock is set to
/// the host's (it stood still while the appliance was saved).
fn restored(name: &str) -> Vm {
    let s = saved_appliance();
    let started = Instant::now();
    let work = &image().ws.work;
    let mut vm = s
        .saved
        .restore(name, work, work.join(format!("{name}-restored.log")))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ssh(&mut vm, &format!("date -u -s @{now} >/dev/null"));
    eprintln!(
        "timeline: {name}: restored the saved appliance in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    vm
}

/// Boots again from the disks `vm` ran on (after `power_off`), as a reboot does.
fn boot_again(vm: &Vm, name: &str) -> Vm {
    let mut config = vm.config().clone();
    config.incoming = None;
    config.serial_log = image().ws.work.join(format!("{name}-reboot.log"));
    Vm::boot(&config).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The saved appliance's first boot: volatile created after a plain root, LVM data on the one
/// blank disk (not on the floppy). Its reboot is the update scenario's last act.
#[test]
fn a_plain_root_and_one_blank_disk_get_volatile_and_lvm_data() {
    let mut vm = restored("one");
    assert_serving(&mut vm);
    assert_has_floppy(&mut vm);
    let first_boot = std::fs::read_to_string(&saved_appliance().first_boot_log).unwrap();
    assert!(first_boot.contains("ecs-agent: running"), "{first_boot}");
    let s = status(&mut vm);
    let storage = step_message(&s, "storage");
    // Data on vdb alone: not a RAID1 with the floppy, not the floppy.
    assert!(
        storage.contains("ok: created volatile;") && storage.contains("created data on /dev/vdb;"),
        "{storage}"
    );
    assert_eq!(
        ssh(&mut vm, "vgs --noheadings -o vg_tags permanent").trim(),
        format!("ecs-appliance:{DOMAIN}")
    );
    // Docker's store is on the new volatile (assert_serving): it started after storage.
    assert_eq!(
        ssh(&mut vm, "findmnt -n -o SOURCE,LABEL /volatile")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/dev/vda2", "ecs-volatile"]
    );
    // Root kept its size: cloud-init's growpart did not take the space.
    let root_size: u64 = ssh(&mut vm, "lsblk -b -n -o SIZE /dev/vda1")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(root_size, 3 << 30);
    assert!(step_message(&s, "database").starts_with("ok: "), "{s}");
    // LV data takes 85% of the VG; the rest is left for snapshots.
    let sizes = ssh(
        &mut vm,
        "lvs --noheadings --units b --nosuffix -o lv_size,vg_size permanent/data",
    );
    let sizes: Vec<f64> = sizes.split_whitespace().map(|s| s.parse().unwrap()).collect();
    let share = sizes[0] / sizes[1];
    assert!((0.84..=0.86).contains(&share), "lv/vg = {share}");
}

#[test]
fn two_blank_disks_get_a_raid1_mirror_that_assembles_after_a_reboot() {
    let guest = Guest::new("raid", 2);
    let mut vm = guest.boot(1);
    wait_running(&mut vm);
    assert_serving(&mut vm);
    let s = status(&mut vm);
    assert!(
        step_message(&s, "storage").contains("created data on /dev/vdb + /dev/vdc"),
        "{s}"
    );
    let detail = ssh(&mut vm, "mdadm --detail /dev/md/permanent");
    for want in [
        "Raid Level : raid1",
        "Name : any:permanent",
        "Intent Bitmap : Internal",
    ] {
        assert!(detail.contains(want), "{want}: {detail}");
    }
    // -d: the PV's own type, not its children's (the LV on it is "lvm").
    let pv = ssh(
        &mut vm,
        "lsblk -d -n -o TYPE $(pvs --noheadings -o pv_name | tr -d ' ')",
    );
    assert_eq!(pv.trim(), "raid1");
    psql(&mut vm, "INSERT INTO users (email) VALUES ('mirror@example.org')");
    power_off(&mut vm);

    let mut vm = guest.boot(2);
    wait_running(&mut vm);
    assert_serving(&mut vm);
    let mdstat = ssh(&mut vm, "cat /proc/mdstat");
    assert!(
        mdstat.contains("raid1") && mdstat.contains("vdb") && mdstat.contains("vdc"),
        "{mdstat}"
    );
    let db = step_message(&status(&mut vm), "database");
    assert!(db.contains("kept"), "{db}");
    assert_eq!(
        psql(
            &mut vm,
            "SELECT count(*) FROM users WHERE email = 'mirror@example.org'"
        ),
        "1"
    );
}

/// Another appliance's data disk, as `ecs-build disk data --owner` makes it.
fn foreign_data_disk(path: &Path, owner: &str) {
    std::fs::remove_file(path).unwrap();
    let out = Command::new(workspace_binary("ecs-build"))
        .args([
            "disk", "data", "--size", "4G", "--seed", "foreign", "--owner", owner, "-o",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ecs-build disk data: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A disk with a filesystem of its own and another appliance's data disk (VG `permanent`
/// tagged `ecs-appliance:another.test`), booted with qemu's default devices: both are refused
/// in one message, neither is written to, and the foreign VG is never activated.
#[test]
fn a_disk_with_a_foreign_filesystem_and_another_appliances_data_disk_are_refused_and_left_untouched() {
    let mut guest = Guest::new("foreign", 2);
    guest.default_devices = true;
    tool(MKFS_EXT4)
        .args(["-q", "-F", "-L", "photos"])
        .arg(&guest.data[0])
        .run_checked()
        .unwrap();
    foreign_data_disk(&guest.data[1], "another.test");
    let before: Vec<(String, u64)> = guest.data.iter().map(|d| sha256_of(d)).collect();
    let mut vm = guest.boot(1);
    wait(&mut vm, "ecs-agent: step storage failed", minutes(20));
    assert_has_floppy(&mut vm);
    let s = status(&mut vm);
    assert_eq!(s["phase"], "failed");
    let msg = step_message(&s, "storage");
    assert!(msg.contains("/dev/vdb carries ext4 (LABEL=photos)"), "{msg}");
    assert!(
        msg.contains("/dev/vdc carries volume group `permanent` of another appliance (owner another.test; this is appliance.test)")
            && msg.contains("appliance.storage.adopt: true"),
        "{msg}"
    );
    assert!(!msg.contains("fd0"), "{msg}");
    for https in [true, false] {
        let (code, body) = get(&vm, https, "/");
        assert_eq!(code, 503, "{body}");
        // The public page names the state and the reason class, never the device or the detail.
        assert!(body.contains("(reason: storage)"), "{body}");
        assert!(
            !body.contains("vdb") && !body.contains("photos") && !body.contains("another.test"),
            "{body}"
        );
    }
    assert_eq!(ssh(&mut vm, "findmnt -n /data || echo none").trim(), "none");
    // Never activated: not at boot (the image autoactivates nothing), not by the agent.
    assert_eq!(
        ssh(&mut vm, "test -e /dev/permanent && echo active || echo none").trim(),
        "none"
    );
    assert!(
        !ssh(&mut vm, "ls /dev/mapper").contains("permanent"),
        "a device-mapper node of VG permanent exists"
    );
    assert_eq!(
        ssh(&mut vm, "vgs --noheadings -o vg_tags permanent").trim(),
        "ecs-appliance:another.test"
    );
    power_off(&mut vm);
    let after: Vec<(String, u64)> = guest.data.iter().map(|d| sha256_of(d)).collect();
    assert_eq!(after, before, "a refused disk was written to");
}

/// Each table of the app database with its row count and a checksum of its rows, and the
/// sha256 of every vault file: what a rollback must give back unchanged.
fn data_fingerprint(vm: &mut Vm) -> (String, String) {
    let tables = psql(
        vm,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    );
    let mut db = String::new();
    for t in tables.lines() {
        let sum = psql(
            vm,
            &format!(
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM {t} x"
            ),
        );
        db.push_str(&format!("{t} {sum}\n"));
    }
    let vault = ssh(
        vm,
        "cd /data/ecs-storage-vault && find . -type f -print0 | sort -z | xargs -0 -r sha256sum",
    );
    (db, vault)
}

/// Runs `command` once over ssh (never retried: it changes the appliance); its output and exit code.
fn run_once(vm: &mut Vm, command: &str) -> (String, i32) {
    let out = vm
        .ssh(&image().key, "root", &format!("{command} 2>&1; echo \"exit=$?\""))
        .unwrap_or_else(|e| panic!("{command}: {e:#}"));
    let (text, code) = out.trim_end().rsplit_once("exit=").unwrap();
    (text.to_string(), code.trim().parse().unwrap())
}

fn update_record(vm: &mut Vm) -> Value {
    let l: Value = serde_json::from_str(&ssh(vm, "cat /data/etc/ecs-agent/lifecycle.json")).unwrap();
    l["last"]["update-ecs"].clone()
}

/// `ecs-agent update-ecs` with LVM: v2 (its migration fails after changing the database) and
/// v3 (never healthy) each merge the PRE_MIGRATE snapshot back and serve v1 with the same data
/// over HTTPS; v4 migrates and serves, keeps its snapshot and schedules its removal in 7 days.
/// Then `database-migrate` with no room left in the VG refuses and the app keeps serving. One
/// first boot for all of it (minutes under TCG); each phase's seconds are printed.
#[test]
fn update_ecs_rolls_back_failed_versions_with_the_snapshot_and_migrates_a_good_one_that_a_reboot_keeps() {
    let phase = |name: &str, since: Instant| eprintln!("phase {name}: {:.0}s", since.elapsed().as_secs_f64());
    // The saved appliance (plain root, one disk, LVM data), restored: no first boot of its own.
    let t = Instant::now();
    let mut vm = restored("update");
    phase("restore", t);
    let v1_page = "fixture app: 1 items, 1 users\n";
    psql(&mut vm, "INSERT INTO users (email) VALUES ('vm@example.org')");
    ssh(
        &mut vm,
        "mkdir -p /data/ecs-storage-vault/ab && head -c 200000 /dev/urandom > /data/ecs-storage-vault/ab/doc.pdf.gpg \
         && echo top > /data/ecs-storage-vault/top.gpg",
    );
    assert_eq!(get(&vm, true, "/"), (200, v1_page.to_string()));
    let before = data_fingerprint(&mut vm);
    assert!(
        before.0.contains("users 1 ") && before.1.lines().count() == 2,
        "{before:?}"
    );

    for (to, why) in [
        ("v2", "v2: migration 0002_broken failed"),
        ("v3", "service web stopped"),
    ] {
        let t = Instant::now();
        let (text, code) = run_once(&mut vm, &format!("ecs-agent update-ecs --to {to}"));
        phase(&format!("update-ecs --to {to} (rolled back)"), t);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("rolled back: version v1 serves again; the data is back as it was before (snapshot PRE_MIGRATE merged)")
                && text.contains(why),
            "{text}"
        );
        let r = update_record(&mut vm);
        assert_eq!(
            (r["result"].as_str(), r["details"]["rolled_back"].as_bool()),
            (Some("failed"), Some(true)),
            "{r}"
        );
        assert_eq!(get(&vm, true, "/"), (200, v1_page.to_string()));
        assert_eq!(
            data_fingerprint(&mut vm),
            before,
            "the data differ after {to}'s rollback"
        );
        // The merge consumed the snapshot; /data is back on the LV.
        let lvs = ssh(&mut vm, "lvs --noheadings -o lv_name permanent");
        assert!(!lvs.contains("PRE_MIGRATE"), "{lvs}");
        assert_eq!(
            ssh(&mut vm, "findmnt -n -o SOURCE /data").trim(),
            "/dev/mapper/permanent-data"
        );
    }

    let t = Instant::now();
    let (text, code) = run_once(&mut vm, "ecs-agent update-ecs --to v4");
    phase("update-ecs --to v4 (migrated)", t);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ecs-agent: update-ecs downtime "), "{text}");
    let r = update_record(&mut vm);
    assert_eq!(
        (r["result"].as_str(), r["details"]["snapshot"].as_str()),
        (Some("ok"), Some("PRE_MIGRATE")),
        "{r}"
    );
    assert_eq!(
        get(&vm, true, "/"),
        (200, "fixture app: 1 items, 1 users, 0 notes (v4)\n".to_string())
    );
    let lvs = ssh(&mut vm, "lvs --noheadings -o lv_name,origin permanent");
    assert!(
        lvs.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["PRE_MIGRATE", "data"]),
        "{lvs}"
    );
    assert_removal_timer_in_7_days(&mut vm);

    // A reboot: the appliance comes back by itself on the version it was updated to, with the
    // data and the volatile partition it made found again, and the snapshot's removal (a
    // transient timer, gone with the reboot) set again.
    let t = Instant::now();
    let after_v4 = data_fingerprint(&mut vm);
    power_off(&mut vm);
    let mut vm = boot_again(&vm, "update");
    wait_running(&mut vm);
    phase("reboot to `ecs-agent: running`", t);
    assert_serving(&mut vm);
    let s = status(&mut vm);
    let db = step_message(&s, "database");
    assert!(db.contains("present") && db.contains("kept"), "{db}");
    assert_eq!(
        ssh(&mut vm, "findmnt -n -o SOURCE,LABEL /volatile")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["/dev/vda2", "ecs-volatile"]
    );
    assert_eq!(
        get(&vm, true, "/"),
        (200, "fixture app: 1 items, 1 users, 0 notes (v4)\n".to_string())
    );
    assert_eq!(data_fingerprint(&mut vm), after_v4);
    assert_removal_timer_in_7_days(&mut vm);

    // No room for a snapshot: database-migrate refuses, the app keeps serving. PRE_MIGRATE holds
    // all the free room (database-migrate would replace it): removed first, as its timer would.
    let t = Instant::now();
    ssh(
        &mut vm,
        "lvremove -q -y permanent/PRE_MIGRATE && lvcreate -q -y -l 100%FREE -n filler permanent",
    );
    let (text, code) = run_once(&mut vm, "ecs-agent database-migrate");
    phase("database-migrate without room (refused)", t);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("database-migrate refused:"), "{text}");
    assert!(text.contains("room") || text.contains("free"), "{text}");
    assert_eq!(get(&vm, true, "/").0, 200);
    ssh(&mut vm, "lvremove -q -y permanent/filler");
}

/// A timer that removes the PRE_MIGRATE snapshot is set for 7 days from now (± an hour).
fn assert_removal_timer_in_7_days(vm: &mut Vm) {
    let timers: Value = serde_json::from_str(&ssh(vm, "systemctl list-timers --all --output=json")).unwrap();
    let now: f64 = ssh(vm, "date +%s").trim().parse().unwrap();
    let timer = timers
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            let names = format!("{} {}", t["unit"], t["activates"]).to_lowercase();
            names.contains("pre_migrate") || names.contains("pre-migrate") || names.contains("snapshot")
        })
        .unwrap_or_else(|| panic!("no timer for the PRE_MIGRATE snapshot in {timers}"));
    let next = timer["next"].as_f64().unwrap() / 1e6;
    let days = (next - now) / 86400.0;
    assert!((days - 7.0).abs() < 1.0 / 24.0, "{timer}: due in {days} days");
    let unit = timer["activates"].as_str().unwrap();
    let exec = ssh(vm, &format!("systemctl show -p ExecStart {unit}"));
    assert!(
        exec.contains("PRE_MIGRATE") || exec.contains("snapshot"),
        "{exec}"
    );
}

/// (status code, body) of GET `path` over HTTPS with curl's `extra` arguments (a client
/// certificate, a forged header).
fn get_with(vm: &Vm, path: &str, extra: &[&str]) -> (u16, String) {
    let port = vm.port(443);
    let out = tool(CURL)
        .args([
            "-sS",
            "-k",
            "--max-time",
            "60",
            "-w",
            "\n%{http_code}",
            "--resolve",
        ])
        .arg(format!("{DOMAIN}:{port}:127.0.0.1"))
        .args(extra)
        .arg(format!("https://{DOMAIN}:{port}{path}"))
        .run_stdout()
        .unwrap_or_else(|e| panic!("{e}"));
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// The `.p12` attachment of `message`, decoded (python's email parser).
fn p12_attachment(message: &[u8], to: &Path) {
    let msg = to.with_extension("eml");
    std::fs::write(&msg, message).unwrap();
    let script = "import email, sys
m = email.message_from_bytes(open(sys.argv[1], 'rb').read())
parts = [p for p in m.walk() if (p.get_filename() or '').endswith('.p12')]
if len(parts) != 1: sys.exit(f'{len(parts)} .p12 attachments')
open(sys.argv[2], 'wb').write(parts[0].get_payload(decode=True))";
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&msg)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Issue 12 in the booted image. `ecs-agent create-first-user` (env.yml's ecs.first_user)
/// mails a PKCS#12 through the appliance's relay, DKIM-signed so that the record `config dns`
/// prints verifies it; its transport password, shown once on the console, opens it and is in
/// no journal, status or record. The certificate gets the internal page that nothing else
/// (no certificate, a forged header) gets; revoking it in the app rewrites the CRL, and the
/// path unit reloads the frontend, which then refuses it. Mail to ports 25 (STARTTLS) and 465
/// reaches the app.
#[test]
fn the_first_user_gets_a_signed_mail_with_a_client_certificate_that_a_revocation_locks_out() {
    let phase = |name: &str, since: Instant| eprintln!("phase {name}: {:.0}s", since.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut vm = restored("user");
    phase("restore", t);
    let work = image().ws.work.join("user");
    std::fs::create_dir_all(&work).unwrap();

    let t = Instant::now();
    let (out, code) = run_once(&mut vm, "ecs-agent create-first-user");
    assert_eq!(code, 0, "{out}");
    let prefix = format!("ecs-agent: transport password for {FIRST_USER}: ");
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no transport password shown: {out}"))
        .trim()
        .to_string();
    assert!(password.len() >= 15, "{password:?}");
    phase("create-first-user", t);

    // The mail, as the internet's next hop got it from the relay.
    let t = Instant::now();
    let message = mail_sink().wait_for(".p12", minutes(5)).unwrap_or_else(|| {
        panic!(
            "no mail with a .p12 reached the sink: {:?}",
            mail_sink().messages().len()
        )
    });
    let text = String::from_utf8_lossy(&message).to_string();
    assert!(text.contains(FIRST_USER), "{text}");
    assert!(!text.contains(&password), "the transport password is in the mail");
    let zone = Command::new(common::BIN)
        .args(["config", "dns"])
        .arg(&image().env)
        .run_stdout()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        mail::dkim_verifies(&message, DOMAIN, &mail::dkim_record(&zone)),
        "the DKIM signature does not verify against `config dns`'s record"
    );
    phase("mail", t);

    // The PKCS#12 opens with the password; the certificate is good for a day.
    let p12 = work.join("user.p12");
    p12_attachment(&message, &p12);
    let pem = work.join("user.pem");
    let mut open = tool(OPENSSL);
    open.args(["pkcs12", "-nodes", "-passin", "stdin", "-in"])
        .arg(&p12)
        .arg("-out")
        .arg(&pem)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = open.spawn().unwrap();
    {
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "openssl pkcs12: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let end = tool(OPENSSL)
        .args(["x509", "-noout", "-checkend", "90000", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        !end.status.success(),
        "the certificate is valid for more than 25 hours"
    );

    // The internal page: only with the certificate.
    let pem_arg = pem.display().to_string();
    let (code, body) = get_with(&vm, "/internal", &[]);
    assert_eq!(code, 403, "{body}");
    let (code, body) = get_with(
        &vm,
        "/internal",
        &[
            "-H",
            "X-SSL-Client-Verify: SUCCESS",
            "-H",
            "X-SSL-Client-Serial: 01",
        ],
    );
    assert_eq!(code, 403, "a forged header got in: {body}");
    let (code, body) = get_with(&vm, "/internal", &["--cert", &pem_arg]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(FIRST_USER), "{body}");

    // The password was shown once, on the console only.
    let leaks = ssh(
        &mut vm,
        &format!(
            "(journalctl -o cat; cat /run/ecs/status.json /data/etc/ecs-agent/lifecycle.json) | grep -cF '{password}' || true"
        ),
    );
    assert_eq!(
        leaks.trim(),
        "0",
        "the transport password is in the journal, status or record"
    );

    // Incoming mail reaches the app, over STARTTLS and over TLS.
    let t = Instant::now();
    for (port, tls) in [(25, "starttls"), (465, "implicit")] {
        mail::send(
            "127.0.0.1",
            vm.port(port),
            tls,
            "applicant@outside.example",
            &format!("ethics@{DOMAIN}"),
            &format!("submission over {tls}"),
            "a study",
        )
        .unwrap_or_else(|e| panic!("port {port}: {e}"));
    }
    let deadline = Instant::now() + minutes(5);
    loop {
        let (_, page) = get(&vm, true, "/mail");
        if page.contains("submission over starttls") && page.contains("submission over implicit") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "incoming mail did not reach the app: {page}"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    phase("incoming mail", t);

    // Revoked in the app: the CRL changes, ecs-agent-crl.path reloads the frontend.
    let t = Instant::now();
    let (out, code) = run_once(
        &mut vm,
        &format!(
            "docker exec $(docker ps -q --filter label=com.docker.compose.service=web) \
             python3 /app/fixture_app.py revoke-client-certificate {FIRST_USER}"
        ),
    );
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + minutes(3);
    loop {
        let (code, body) = get_with(&vm, "/internal", &["--cert", &pem_arg]);
        if code != 200 {
            assert_eq!(code, 400, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked certificate still gets in: {}",
            ssh(
                &mut vm,
                "systemctl status ecs-agent-crl.path ecs-agent-crl.service --no-pager; true"
            )
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let reloads = ssh(
        &mut vm,
        "journalctl -u ecs-agent-crl.service -o cat | grep -c 'reload-frontend ok' || true",
    );
    assert_ne!(reloads.trim(), "0", "ecs-agent-crl.service did not run");
    phase("revocation", t);
}
