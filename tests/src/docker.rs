//! A private dockerd from Debian's docker.io on a socket under the target dir, and the fixture
//! images built locally (mmdebstrap tarball → `docker import` → `docker build`) from
//! agent/fixtures/images. Started once per test process; dockerd outlives the process on
//! purpose, so the next test binary reuses it and its image cache.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use host_util::{CommandExt, Tool};
use sha2::{Digest, Sha256};

pub const DOCKERD: Tool = Tool::new("dockerd", "docker.io");
pub const DOCKER: Tool = Tool::new("docker", "docker.io");
pub const MMDEBSTRAP: Tool = Tool::new("mmdebstrap", "mmdebstrap");

/// The database stand-in (PostgreSQL on the fixture base).
pub const POSTGRES_IMAGE: &str = "ecs-fixture-postgres:test";
/// The fixture app (agent/fixtures/app/fixture_app.py).
pub const APP_IMAGE: &str = "ecs-fixture-app:test";
/// The fixture app's versions (agent/fixtures/app/README.md), tagged `ecs-fixture-app:<version>`:
/// ENV-only layers over `APP_IMAGE`, which the fixture's compose file names by the version the
/// agent runs (`${AGENT_APP_TAG}`). v1 is the app as it is; v2..v4 are update targets.
pub const APP_VERSIONS: &[&str] = &["v1", "v2", "v3", "v4"];

/// `ecs-fixture-app:<version>`.
pub fn app_version_image(version: &str) -> String {
    format!("ecs-fixture-app:{version}")
}

/// v1 also as `ecs-fixture-app:master`: the version of an env.yml without `ecs.git` (its
/// default branch), such as one `ecs-build config new` writes.
pub const DEFAULT_VERSION_ALIAS: &str = "master";

/// Every fixture image tag: the database, the app, the app's versions and v1's alias.
pub fn fixture_images() -> Vec<String> {
    let mut tags = vec![POSTGRES_IMAGE.to_string(), APP_IMAGE.to_string()];
    tags.extend(APP_VERSIONS.iter().map(|v| app_version_image(v)));
    tags.push(app_version_image(DEFAULT_VERSION_ALIAS));
    tags
}

/// agent/fixtures: the compose file, the app and the image recipes.
pub fn fixtures() -> PathBuf {
    crate::workspace_root().join("agent/fixtures")
}

fn need(tool: Tool) -> PathBuf {
    tool.path().unwrap_or_else(|e| panic!("{e}"))
}

pub struct Harness {
    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub docker_host: String,
}

/// Where dockerd keeps its data, socket and log, and where the base tarball and the fixture
/// archive are cached: `<target>/tmp/ecs-agent-harness`.
fn harness_dir() -> PathBuf {
    crate::target_dir().join("tmp/ecs-agent-harness")
}

/// `docker` talking to the dockerd at `host`.
pub fn command(host: &str) -> Command {
    let mut c = Command::new(need(DOCKER));
    c.env("DOCKER_HOST", host);
    c
}

fn ping(host: &str) -> bool {
    command(host)
        .args(["version", "--format", "{{.Server.Version}}"])
        .run_checked()
        .is_ok()
}

/// The host's address on its default route. Without a default bridge, `host-gateway` (how
/// containers reach the host as host.docker.internal, e.g. the appliance's mail relay) has no
/// address unless dockerd is given one; a service the host runs on 0.0.0.0 answers there.
/// None without a route (no packet is sent: a UDP connect only picks the source address).
pub fn host_gateway_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("198.51.100.1:9").ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// dockerd outlives this test process on purpose: the next test binary reuses it (and its
/// image cache); it is never waited for.
#[allow(clippy::zombie_processes)]
fn start_dockerd(dir: &Path, host: &str) {
    let hash = hex::encode(&Sha256::digest(dir.display().to_string().as_bytes())[..4]);
    let exec_root = format!("/run/ecs-agent-test-{hash}");
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    Command::new(need(DOCKERD))
        .arg("--host")
        .arg(host)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(&exec_root)
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .args([
            "--bridge",
            "none",
            "--default-address-pool",
            "base=10.213.0.0/16,size=24",
        ])
        .args(host_gateway_ip().map(|ip| format!("--host-gateway-ip={ip}")))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("spawning dockerd");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ping(host) {
        assert!(
            Instant::now() < deadline,
            "dockerd did not answer within 60s; see {}/dockerd.log",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn image_exists(host: &str, tag: &str) -> bool {
    command(host)
        .args(["image", "inspect", tag])
        .run_checked()
        .is_ok()
}

fn build_images(dir: &Path, host: &str) {
    let images = fixtures().join("images");
    let recipe = std::fs::read(images.join("mkbase.sh")).unwrap();
    let key = hex::encode(&Sha256::digest(&recipe)[..8]);
    let base_tag = format!("ecs-fixture-base:{key}");
    if !image_exists(host, &base_tag) {
        let tar = dir.join(format!("base-{key}.tar"));
        if !tar.exists() {
            need(MMDEBSTRAP);
            Command::new("sh")
                .arg(images.join("mkbase.sh"))
                .arg(&tar)
                .run_checked()
                .expect("building the base tarball");
        }
        command(host)
            .arg("import")
            .arg(&tar)
            .arg(&base_tag)
            .run_checked()
            .expect("importing the base image");
    }
    let ctx = dir.join("build-context");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx).unwrap();
    for f in [
        "postgres.Dockerfile",
        "postgres-entrypoint.sh",
        "app.Dockerfile",
        "app-version.Dockerfile",
    ] {
        std::fs::copy(images.join(f), ctx.join(f)).unwrap();
    }
    std::fs::copy(fixtures().join("app/fixture_app.py"), ctx.join("fixture_app.py")).unwrap();
    for (file, tag) in [
        ("postgres.Dockerfile", POSTGRES_IMAGE),
        ("app.Dockerfile", APP_IMAGE),
    ] {
        command(host)
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-f", file, "--build-arg"])
            .arg(format!("BASE={base_tag}"))
            .args(["-t", tag, "."])
            .current_dir(&ctx)
            .run_checked()
            .unwrap_or_else(|e| panic!("building {tag}: {e}"));
    }
    for version in APP_VERSIONS {
        let tag = app_version_image(version);
        command(host)
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-f", "app-version.Dockerfile", "--build-arg"])
            .arg(format!("BASE={APP_IMAGE}"))
            .arg("--build-arg")
            .arg(format!("VERSION={version}"))
            .args(["-t", &tag, "."])
            .current_dir(&ctx)
            .run_checked()
            .unwrap_or_else(|e| panic!("building {tag}: {e}"));
    }
    let alias = app_version_image(DEFAULT_VERSION_ALIAS);
    command(host)
        .arg("tag")
        .arg(app_version_image("v1"))
        .arg(&alias)
        .run_checked()
        .unwrap_or_else(|e| panic!("tagging {alias}: {e}"));
}

/// The shared dockerd with the fixture images, started (or reused) once per test process.
/// Needs root (dockerd).
pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        assert!(
            crate::is_root(),
            "the docker harness starts a private dockerd: run the tests as root (CI does)"
        );
        let dir = harness_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let host = format!("unix://{}", dir.join("docker.sock").display());
        if !ping(&host) {
            start_dockerd(&dir, &host);
        }
        build_images(&dir, &host);
        Harness { docker_host: host }
    })
}

/// `tag id` lines of the fixture images, as recorded beside the archive.
fn image_ids(host: &str) -> String {
    fixture_images()
        .iter()
        .map(|tag| {
            let id = command(host)
                .args(["image", "inspect", "--format", "{{.Id}}", tag])
                .run_stdout()
                .unwrap_or_else(|e| panic!("{e}"));
            format!("{tag} {}\n", id.trim())
        })
        .collect()
}

/// One `docker save` archive (mode 0644) holding the fixture images under their tags
/// (`fixture_images()`: the database, the app and its versions, whose shared layers the archive
/// stores once): what machine.yml `images:` bakes into an appliance.
/// Cached beside the harness with the image ids it was saved from (`<archive>.ids`) and saved
/// again only when they changed; written under a temporary name, then renamed.
pub fn fixture_archive() -> PathBuf {
    static A: OnceLock<PathBuf> = OnceLock::new();
    A.get_or_init(|| {
        let host = &harness().docker_host;
        let archive = harness_dir().join("fixture-images.tar");
        let ids_file = harness_dir().join("fixture-images.tar.ids");
        let ids = image_ids(host);
        if archive.is_file() && std::fs::read_to_string(&ids_file).ok().as_deref() == Some(&ids) {
            return archive;
        }
        // The record goes first, so a crash below never leaves a stale archive looking current.
        let _ = std::fs::remove_file(&ids_file);
        let tmp = harness_dir().join(format!(".fixture-images.tar.tmp-{}", std::process::id()));
        command(host)
            .arg("save")
            .arg("-o")
            .arg(&tmp)
            .args(fixture_images())
            .run_checked()
            .unwrap_or_else(|e| panic!("saving the fixture images: {e}"));
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::rename(&tmp, &archive)
            .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", tmp.display(), archive.display()));
        host_util::write_atomic(&ids_file, ids.as_bytes(), 0o644)
            .unwrap_or_else(|e| panic!("writing {}: {e}", ids_file.display()));
        archive
    })
    .clone()
}
