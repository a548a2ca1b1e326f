//! Shared harness for end-to-end tests: boot a disk image under qemu (TCG: /dev/kvm on the
//! build machines does not run guests), capture the serial console to a file, wait for markers
//! on it with a timeout, forward guest ports to 127.0.0.1, run commands over ssh, and always
//! kill qemu when the `Vm` is dropped (also when a test panics) or the test process dies.
//!
//! It knows nothing of how images are built; tests hand it files. `docker` is the private
//! dockerd with the fixture container images, shared by the agent tests and the VM tests.

pub mod docker;
pub mod mail;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use host_util::{CommandExt, Tool};

pub const QEMU: Tool = Tool::new("qemu-system-x86_64", "qemu-system-x86");
pub const SSH: Tool = Tool::new("ssh", "openssh-client");
pub const SETPRIV: Tool = Tool::new("setpriv", "util-linux");

/// A disk attached to the guest.
#[derive(Debug, Clone)]
pub struct Drive {
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: &'static str,
    /// Writes go to a temporary overlay; the file is left untouched (shared images).
    pub snapshot: bool,
}

#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Boot disk first, then data disks; all virtio.
    pub drives: Vec<Drive>,
    /// An ISO attached as a CD-ROM (e.g. a NoCloud seed, volume `cidata`).
    pub cdrom: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Guest TCP ports to forward from 127.0.0.1 (host ports are picked free).
    pub forward: Vec<u16>,
    /// The other way: connections the guest makes to `address:port` (on qemu's user network,
    /// e.g. `10.0.2.100:25`) reach 127.0.0.1:`host port` on the host. The guest's
    /// configuration can name a fixed address while the host side takes a free port.
    pub guest_forward: Vec<(String, u16)>,
    /// Where the serial console is written.
    pub serial_log: PathBuf,
    /// Boot with qemu's default devices, as README's boot command does (no `-nodefaults`):
    /// the `pc` machine's floppy controller with `fd0`, and the seed as `-cdrom`. The tests of
    /// the agent's disk choice need them; the rest run without.
    pub default_devices: bool,
    /// Start from a saved state (`Vm::save`) instead of booting: qemu's `-incoming file:`.
    pub incoming: Option<PathBuf>,
}

/// A running guest. Dropping it kills qemu. qemu also gets SIGKILL when the thread that
/// booted it exits (`setpriv --pdeathsig KILL`: the kernel's parent-death signal follows the
/// spawning *thread*, not the process), so a test process killed by a timeout or a signal
/// never leaves a guest running. Boot a `Vm` on the thread that uses it: one booted in a
/// helper thread dies when that thread returns.
pub struct Vm {
    child: Child,
    serial_log: PathBuf,
    ports: Vec<(u16, u16)>,
    /// qemu's QMP socket, for saving and restoring the guest.
    qmp: PathBuf,
    /// The configuration it was started with (drives as given).
    config: VmConfig,
}

/// A guest frozen to files by `Vm::save`: its memory and device state, and its disks as they
/// were at that instant. Restoring it (`Saved::restore`) gives a running guest in seconds where
/// a boot takes minutes under TCG; every restore writes to its own overlays, so any number of
/// scenarios start from one saved appliance, side by side.
#[derive(Debug, Clone)]
pub struct Saved {
    pub state: PathBuf,
    /// The configuration to restore with: the frozen disks, the same devices.
    pub config: VmConfig,
}

pub const QEMU_IMG: Tool = Tool::new("qemu-img", "qemu-utils");

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

impl Vm {
    pub fn boot(config: &VmConfig) -> anyhow::Result<Vm> {
        let mut ports = Vec::new();
        let mut netdev = String::from("user,id=n0");
        for guest in &config.forward {
            let host = free_port()?;
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            ports.push((*guest, host));
        }
        for (guest, host) in &config.guest_forward {
            netdev.push_str(&format!(",guestfwd=tcp:{guest}-tcp:127.0.0.1:{host}"));
        }
        // A unix socket path has at most 107 bytes: keep it short, in /tmp.
        static QMP_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let qmp = std::env::temp_dir().join(format!(
            "ecs-qmp-{}-{}.sock",
            std::process::id(),
            QMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&qmp);
        let mut cmd = SETPRIV.command()?;
        // setpriv execs qemu, so the child's pid is qemu's.
        cmd.args(["--pdeathsig", "KILL", "--"]).arg(QEMU.path()?);
        cmd.args(["-accel", "tcg", "-machine", "pc", "-cpu", "max", "-no-reboot"]);
        if !config.default_devices {
            cmd.arg("-nodefaults");
        }
        cmd.args([
            "-m",
            &config.memory_mib.to_string(),
            "-smp",
            &config.cpus.to_string(),
        ])
        .args(["-display", "none", "-vga", "none", "-monitor", "none"])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .arg("-serial")
        .arg(format!("file:{}", config.serial_log.display()))
        .args(["-netdev", &netdev, "-device", "virtio-net-pci,netdev=n0"]);
        for (i, d) in config.drives.iter().enumerate() {
            let mut spec = format!("file={},if=virtio,format={},id=d{i}", d.path.display(), d.format);
            if d.snapshot {
                spec.push_str(",snapshot=on");
            }
            if i == 0 {
                cmd.args(["-boot", "c"]);
            }
            cmd.arg("-drive").arg(spec);
        }
        match &config.cdrom {
            Some(iso) if config.default_devices => {
                cmd.arg("-cdrom").arg(iso);
            }
            Some(iso) => {
                cmd.arg("-drive")
                    .arg(format!("file={},media=cdrom,readonly=on,if=ide", iso.display()));
            }
            None => {}
        }
        if let Some(state) = &config.incoming {
            cmd.arg("-incoming").arg(format!("file:{}", state.display()));
        }
        let argv = cmd.argv_string();
        let stderr_log = config.serial_log.with_extension("qemu-stderr");
        let stderr = std::fs::File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {argv}"))?;
        let mut vm = Vm {
            child,
            serial_log: config.serial_log.clone(),
            ports,
            qmp,
            config: config.clone(),
        };
        vm.wait_for_qemu_exec(&stderr_log)?;
        if config.incoming.is_some() {
            vm.resume_incoming()?;
        }
        Ok(vm)
    }

    /// One QMP command and its `return` value (a fresh connection each time: QMP needs its
    /// capabilities negotiated per connection, and commands here are few).
    pub fn qmp(&self, execute: &str, arguments: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        use std::io::{BufRead, BufReader};
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match std::os::unix::net::UnixStream::connect(&self.qmp) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(e)
                        .with_context(|| format!("connecting to qemu's QMP socket {}", self.qmp.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        let mut reply = |command: serde_json::Value| -> anyhow::Result<serde_json::Value> {
            writeln!(writer, "{command}")?;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    bail!("qemu closed its QMP socket");
                }
                let v: serde_json::Value =
                    serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))?;
                if let Some(r) = v.get("return") {
                    return Ok(r.clone());
                }
                if let Some(e) = v.get("error") {
                    bail!("QMP {}: {}", command["execute"], e);
                }
                // Events and the greeting: read on.
            }
        };
        reply(serde_json::json!({"execute": "qmp_capabilities"}))?;
        reply(serde_json::json!({"execute": execute, "arguments": arguments}))
    }

    fn run_state(&self) -> anyhow::Result<String> {
        Ok(self.qmp("query-status", serde_json::json!({}))?["status"]
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// After `-incoming`: waits until the state is loaded, then lets the guest run.
    fn resume_incoming(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("qemu exited ({status}) while loading its saved state");
            }
            let state = self.run_state()?;
            match state.as_str() {
                "inmigrate" | "prelaunch" if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                "running" => return Ok(()),
                "paused" | "postmigrate" | "finish-migrate" | "restore-vm" => {
                    self.qmp("cont", serde_json::json!({}))?;
                    return Ok(());
                }
                other => bail!("qemu's state after loading the saved guest is {other:?}"),
            }
        }
    }

    /// Freezes the guest to files in `dir` and lets it run on: the memory and device state to
    /// `dir/state`, and each disk as it is now (qemu goes on writing to a new overlay beside
    /// it, `<disk>.after-save.qcow2`). Disks attached with `snapshot: true` cannot be saved.
    pub fn save(&mut self, dir: &Path) -> anyhow::Result<Saved> {
        if let Some(d) = self.config.drives.iter().find(|d| d.snapshot) {
            bail!(
                "{} is attached with snapshot=on: its writes cannot be saved",
                d.path.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let state = dir.join("state");
        self.qmp("stop", serde_json::json!({}))?;
        self.qmp(
            "migrate",
            serde_json::json!({"uri": format!("file:{}", state.display())}),
        )?;
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let m = self.qmp("query-migrate", serde_json::json!({}))?;
            match m["status"].as_str().unwrap_or("") {
                "completed" => break,
                "failed" | "cancelled" => bail!("saving the guest failed: {m}"),
                _ if Instant::now() > deadline => bail!("saving the guest took over 15 minutes: {m}"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        // The files as they are now are the saved disks; the guest goes on in overlays.
        let mut drives = Vec::new();
        for (i, d) in self.config.drives.iter().enumerate() {
            let mut after = d.path.clone().into_os_string();
            after.push(".after-save.qcow2");
            self.qmp(
                "blockdev-snapshot-sync",
                serde_json::json!({
                    "device": format!("d{i}"),
                    "snapshot-file": after.to_string_lossy(),
                    "format": "qcow2",
                }),
            )?;
            drives.push(d.clone());
        }
        self.qmp("cont", serde_json::json!({}))?;
        let mut config = self.config.clone();
        config.drives = drives;
        config.incoming = Some(state.clone());
        Ok(Saved { state, config })
    }

    /// Waits until setpriv has exec'd qemu: only then is the parent-death signal set, so only
    /// then may the booting thread exit.
    fn wait_for_qemu_exec(&mut self, stderr_log: &Path) -> anyhow::Result<()> {
        let comm = format!("/proc/{}/comm", self.pid());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let stderr = std::fs::read_to_string(stderr_log).unwrap_or_default();
                bail!("qemu exited at once ({status}): {}", stderr.trim());
            }
            let name = std::fs::read_to_string(&comm).unwrap_or_default();
            if name.trim() != "setpriv" {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("setpriv did not exec qemu within 30s ({comm} still says setpriv)");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it was started with (its drives, ports asked for, console file).
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// qemu's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file the serial console is written to.
    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// Waits for qemu to exit, as it does when the guest powers off or reboots (`-no-reboot`).
    /// Fails on timeout with the console's last lines in the message.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                bail!(
                    "qemu did not exit within {timeout:?}; console tail:\n{}",
                    self.tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The host port forwarded to `guest` on 127.0.0.1.
    pub fn port(&self, guest: u16) -> u16 {
        self.ports
            .iter()
            .find(|(g, _)| *g == guest)
            .map(|(_, h)| *h)
            .unwrap_or_else(|| panic!("guest port {guest} was not forwarded"))
    }

    /// The serial console so far (lossy UTF-8).
    pub fn console(&self) -> String {
        std::fs::read(&self.serial_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn tail(&self, lines: usize) -> String {
        let text = self.console();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `marker` appears on the console. Fails early if qemu exits, and on timeout,
    /// with the console's last lines in the message.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if self.console().contains(marker) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "qemu exited ({status}) before {marker:?} appeared; console tail:\n{}",
                    self.tail(40)
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "{marker:?} did not appear on the console within {timeout:?}; console tail:\n{}",
                    self.tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `ssh -p <port> user@127.0.0.1 command` with `key`; host keys are not checked (the guest
    /// makes fresh ones at first boot).
    pub fn ssh(&self, key: &Path, user: &str, command: &str) -> anyhow::Result<String> {
        let mut cmd = SSH.command()?;
        cmd.arg("-i")
            .arg(key)
            .args(["-p", &self.port(22).to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .arg(command);
        Ok(cmd.run_stdout()?)
    }

    /// Retries `ssh` until it succeeds or `timeout` passes (sshd starts after cloud-init made
    /// the host keys).
    pub fn ssh_retry(
        &mut self,
        key: &Path,
        user: &str,
        command: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            match self.ssh(key, user, command) {
                Ok(out) => return Ok(out),
                Err(e) if start.elapsed() > timeout => {
                    return Err(e.context(format!(
                        "ssh did not succeed within {timeout:?}; console tail:\n{}",
                        self.tail(30)
                    )));
                }
                Err(_) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!(
                            "qemu exited ({status}) while waiting for ssh; console tail:\n{}",
                            self.tail(40)
                        );
                    }
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.qmp);
    }
}

impl Saved {
    /// A running guest from the saved state: its own qcow2 overlay of each saved disk in
    /// `dir` (named after `name`), the console to `serial_log`, new host ports.
    pub fn restore(&self, name: &str, dir: &Path, serial_log: PathBuf) -> anyhow::Result<Vm> {
        let mut config = self.config.clone();
        for (i, d) in config.drives.iter_mut().enumerate() {
            let overlay = dir.join(format!("{name}-d{i}.qcow2"));
            let _ = std::fs::remove_file(&overlay);
            QEMU_IMG
                .command()?
                .args(["create", "-q", "-f", "qcow2", "-F", d.format, "-b"])
                .arg(&d.path)
                .arg(&overlay)
                .run_checked()?;
            *d = Drive {
                path: overlay,
                format: "qcow2",
                snapshot: false,
            };
        }
        config.serial_log = serial_log;
        Vm::boot(&config)
    }
}

/// Runs `cmd` as the unprivileged build user when the tests run as root (CI), else as is.
/// `setpriv` execs (no fork), so the child's pid is the program's: signals reach it directly.
pub fn as_build_user(program: &Path, user: &str, env: &[(&str, String)]) -> anyhow::Result<Command> {
    let mut cmd = if is_root() {
        let setpriv = SETPRIV.path()?;
        let mut c = Command::new(setpriv);
        c.args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--init-groups",
            "--",
        ]);
        c.arg(Tool::new("env", "coreutils").path()?);
        c.arg("-i");
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program);
        c
    } else {
        let mut c = Command::new(program);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

pub use host_util::is_root;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e-tests crate sits in the workspace root")
}

/// The running test's profile directory (`<target>/debug`): test executables live in its
/// `deps/` (integration tests and lib tests alike).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("locating the running test executable");
    let dir = exe.parent().expect("the test executable has a directory");
    let dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps/ has a parent")
    } else {
        dir
    };
    dir.to_path_buf()
}

/// The cargo target directory the running test was built in (also under `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory has a parent")
        .to_path_buf()
}

/// The binary of workspace package `package` (its binary has the package's name), freshly
/// built: `cargo build -p <package>` into the running test's target dir and profile, once per
/// process. Always built, never taken as found: a stale binary in target/ once passed for
/// the current code.
pub fn workspace_binary(package: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, &'static OnceLock<PathBuf>>> = Mutex::new(BTreeMap::new());
    let once = *BUILT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(package.to_string())
        .or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    once.get_or_init(|| {
        let profile = profile_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "-p", package, "--target-dir"])
            .arg(target_dir());
        if profile.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        cmd.run_checked().unwrap_or_else(|e| panic!("{e}"));
        let exe = profile.join(package);
        assert!(
            exe.is_file(),
            "cargo build -p {package} made no {}: is the binary not named after the package?",
            exe.display()
        );
        exe
    })
    .clone()
}

/// Pipes to the watchers of `remove_on_success`; a panic writes to them.
static WATCHERS: Mutex<Vec<ChildStdin>> = Mutex::new(Vec::new());

/// Removes `dir` when this test process ends, unless a panic happened in it: a failed test
/// keeps its files for inspection, a passing run leaves no images or VM disks behind (disk
/// space on CI is limited). A test process has no exit hook, so a watcher (`sh`) reads a pipe
/// whose other end only this process holds: end of file means we exited. A panic hook writes
/// to the pipe first, which tells the watcher to keep the directory. A process killed by a
/// signal looks like a clean exit and loses `dir` too.
pub fn remove_on_success(dir: &Path) -> anyhow::Result<()> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            for w in WATCHERS.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
                let _ = w.write_all(b"keep\n");
            }
            previous(info);
        }));
    });
    let mut child = Command::new(Tool::new("sh", "dash").path()?)
        .args([
            "-c",
            r#"if [ -z "$(cat)" ]; then rm -rf -- "$1"; fi"#,
            "remove-on-success",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the watcher that removes {}", dir.display()))?;
    let pipe = child.stdin.take().context("the watcher's stdin")?;
    WATCHERS.lock().unwrap_or_else(|e| e.into_inner()).push(pipe);
    Ok(())
}

/// uid and gid of a user from /etc/passwd.
pub fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user) && f.len() > 3).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .with_context(|| format!("user {user} not found: run `make deps` (scripts/deps.sh creates it)"))
}
