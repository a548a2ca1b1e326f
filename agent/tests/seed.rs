//! Where the agent takes env.yml from a seed device (a loop device, as root): the file
//! `env.yml` of a seed made by `ecs-build config seed` (ISO 9660 and FAT), whose user-data
//! holds only cloud-init's keys; else the user-data of an original single-file seed. The log
//! line of step `env` says which.

mod common;

use std::path::Path;

use common::{Appliance, Loop, stdout};
use host_util::{CommandExt, Tool};

const XORRISO: Tool = Tool::new("xorriso", "xorriso");

fn standby_env() -> String {
    common::env_text("  standby: true\n", "")
}

/// `ecs-build config seed` (the real builder, freshly built) of `env` into `out`.
fn config_seed(env: &Path, out: &Path, vfat: bool) {
    let mut cmd = std::process::Command::new(e2e_tests::workspace_binary("ecs-build"));
    cmd.args(["config", "seed"]).arg(env).arg("-o").arg(out);
    if vfat {
        cmd.arg("--vfat");
    }
    cmd.run_checked().unwrap_or_else(|e| panic!("{e}"));
}

/// Starts the agent with `image` as its only seed device; returns its log.
fn start_with_seed(a: &mut Appliance, image: &Path, expect: &str) {
    let dev = Loop::attach_read_only(image);
    a.extra_context
        .push(format!("seed-devices: [{}]", dev.0.display()));
    let out = a.start();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = format!(
        "ecs-agent: step env ok: from seed {} ({expect})\n",
        dev.0.display()
    );
    assert!(text.contains(&line), "`{line}` not in:\n{text}");
    assert_eq!(
        std::fs::read_to_string(a.path("run/active-env.yml")).unwrap(),
        standby_env()
    );
    // Nothing of the seed is left behind in the agent's run directory.
    assert!(!a.path("run/seed/files").exists());
}

#[test]
fn env_yml_is_read_from_the_iso_seed_ecs_build_makes() {
    let mut a = Appliance::new("seedenviso");
    std::fs::write(a.path("env.yml"), standby_env()).unwrap();
    let iso = a.path("seed.iso");
    config_seed(&a.path("env.yml"), &iso, false);
    start_with_seed(&mut a, &iso, "env.yml");
}

#[test]
fn env_yml_is_read_from_the_vfat_seed_ecs_build_makes() {
    let mut a = Appliance::new("seedenvfat");
    std::fs::write(a.path("env.yml"), standby_env()).unwrap();
    let img = a.path("seed.img");
    config_seed(&a.path("env.yml"), &img, true);
    start_with_seed(&mut a, &img, "env.yml");
}

#[test]
fn original_single_file_user_data_is_still_read() {
    let mut a = Appliance::new("seedorig");
    std::fs::write(a.path("user-data"), standby_env()).unwrap();
    std::fs::write(a.path("meta-data"), "instance-id: iid-test\n").unwrap();
    XORRISO
        .command()
        .unwrap()
        .args(["-as", "mkisofs", "-V", "cidata", "-J", "-R", "-o"])
        .arg(a.path("seed.iso"))
        .arg(a.path("user-data"))
        .arg(a.path("meta-data"))
        .run_checked()
        .unwrap();
    let iso = a.path("seed.iso");
    start_with_seed(&mut a, &iso, "user-data: an original single-file env.yml");
}
