//! Shared by the tests that run `ecs-build image` for real (image_build.rs, appliance_vm.rs):
//! the test directories, the unprivileged build user, keys, env folders and the build command.
//! CI runs the tests as root and builds as `ecsbuild`, which scripts/deps.sh creates with
//! subuid/subgid ranges; run unprivileged, everything runs as the current user.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::{as_build_user, is_root, user_ids};
use host_util::{CommandExt, Tool};

pub const BIN: &str = env!("CARGO_BIN_EXE_ecs-build");
/// The unprivileged user the builds run as when the tests run as root.
pub const USER: &str = "ecsbuild";
pub const EPOCH: &str = "1700000000";
/// `--image-version` of every build: artifacts are named `<name>-1.0-test.*`.
pub const IMAGE_VERSION: &str = "1.0-test";
pub const SSH_KEYGEN: Tool = Tool::new("ssh-keygen", "openssh-client");

/// The directories of one test process.
pub struct Workspace {
    /// `$TMPDIR/ecs-build-image-tests`, shared by all image test binaries.
    pub root: PathBuf,
    /// `root/cache`, the builds' XDG_CACHE_HOME: the rootfs cache is kept between runs
    /// (deleting it makes the next run cold).
    pub cache: PathBuf,
    /// `root/<name>-<pid>`: this process's inputs, images and VM disks. Removed when the
    /// process ends without a panic (disk space on CI is limited); a failed run keeps it.
    pub work: PathBuf,
}

impl Workspace {
    /// Creates the directories (a fresh `work` with `home/` for the build user) and hands
    /// `cache` and `work` to the build user.
    pub fn new(name: &str) -> Workspace {
        let root = std::env::temp_dir().join("ecs-build-image-tests");
        let cache = root.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let work = root.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("home")).unwrap();
        e2e_tests::remove_on_success(&work).unwrap_or_else(|e| panic!("{e:#}"));
        // Not all of `root`: other test processes may be writing beside `work`.
        chown_to_user(&cache);
        chown_to_user(&work);
        Workspace { root, cache, work }
    }

    /// A new directory `work/<name>` owned by the build user (an `--out` folder).
    pub fn out_dir(&self, name: &str) -> PathBuf {
        let out = self.work.join(name);
        std::fs::create_dir_all(&out).unwrap();
        chown_to_user(&out);
        out
    }
}

/// Hands `path` (recursively) to the build user when the tests run as root. Files that vanish
/// meanwhile are skipped.
pub fn chown_to_user(path: &Path) {
    if !is_root() {
        return;
    }
    let (uid, gid) = user_ids(USER).unwrap_or_else(|e| panic!("{e:#}"));
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        match std::os::unix::fs::lchown(&p, Some(uid), Some(gid)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("chown {}: {e}", p.display()),
        }
        if p.is_dir()
            && !p.is_symlink()
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
}

/// Makes an ed25519 key pair at `path` and `path.pub` (no passphrase). The private key stays
/// the test's own (root's under CI): ssh refuses a key its user does not own, so do not
/// `chown_to_user` over it.
pub fn ssh_key(path: &Path) -> PathBuf {
    SSH_KEYGEN
        .command()
        .unwrap_or_else(|e| panic!("{e}"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "image-test", "-f"])
        .arg(path)
        .run_checked()
        .unwrap_or_else(|e| panic!("{e}"));
    path.to_path_buf()
}

/// `ecs-build config new --domain <domain> --ssh-key <key_pub> [--extra <extra>] --out <out>`;
/// `out` is handed to the build user (who reads env.yml during the build). Returns
/// `out/env.yml`.
pub fn config_new(out: &Path, domain: &str, key_pub: &Path, extra: Option<&Path>) -> PathBuf {
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "new", "--domain", domain, "--ssh-key"])
        .arg(key_pub);
    if let Some(extra) = extra {
        cmd.arg("--extra").arg(extra);
    }
    let o = cmd.arg("--out").arg(out).output().unwrap();
    assert!(
        o.status.success(),
        "config new: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    chown_to_user(out);
    out.join("env.yml")
}

/// `ecs-build --json image --config <machine> --image-version 1.0-test --out <out>` as the
/// build user, with HOME in `work/home`, the shared cache and a fixed SOURCE_DATE_EPOCH.
pub fn build_command(ws: &Workspace, machine: &Path, out: &Path) -> Command {
    let env = [
        ("HOME", ws.work.join("home").display().to_string()),
        ("XDG_CACHE_HOME", ws.cache.display().to_string()),
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("SOURCE_DATE_EPOCH", EPOCH.to_string()),
    ];
    let mut cmd = as_build_user(Path::new(BIN), USER, &env).unwrap_or_else(|e| panic!("{e:#}"));
    cmd.args(["--json", "image", "--config"])
        .arg(machine)
        .args(["--image-version", IMAGE_VERSION, "--out"])
        .arg(out);
    cmd
}

/// (sha256 hex, size) of a file, read in 1 MiB blocks (images are gigabytes).
pub fn sha256_of(path: &Path) -> (String, u64) {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (hex::encode(h.finalize()), n)
}
