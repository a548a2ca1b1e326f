//! The seed `ecs-build config new|seed` writes: user-data holds only cloud-init's keys (each a
//! property of the schema of the host's cloud-init, and `cloud-init schema` passes it without
//! a warning), and env.yml rides beside it byte for byte, on the ISO and on the FAT seed.

mod config_common;

use std::collections::BTreeSet;
use std::path::Path;

use config_common::*;
use host_util::CommandExt;

/// The schema shipped with the host's cloud-init package.
const SCHEMA: &str = "/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json";

/// Every top-level key the cloud-config schema defines: the properties of each `$defs` entry
/// that its `allOf` refers to.
fn schema_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(SCHEMA)
        .unwrap_or_else(|e| panic!("{SCHEMA}: {e} (install cloud-init: apt-get install cloud-init)"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut keys = BTreeSet::new();
    for part in schema["allOf"].as_array().unwrap() {
        let name = part["$ref"].as_str().unwrap().trim_start_matches("#/$defs/");
        if let Some(props) = schema["$defs"][name]["properties"].as_object() {
            keys.extend(props.keys().cloned());
        }
    }
    assert!(
        keys.contains("ssh_keys") && keys.contains("disable_root"),
        "{keys:?}"
    );
    keys
}

/// The YAML file as PyYAML (cloud-init's parser) reads it, as JSON.
fn pyyaml(path: &Path) -> serde_json::Value {
    let json = tool("/usr/bin/python3", "python3-yaml")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(path)
        .run_stdout()
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

fn isoinfo_extract(iso: &Path, name: &str) -> Vec<u8> {
    tool("isoinfo", "genisoimage")
        .args(["-R", "-x", &format!("/{name}"), "-i"])
        .arg(iso)
        .run_checked()
        .unwrap()
        .stdout
}

fn mcopy_extract(img: &Path, name: &str, out: &Path) -> Vec<u8> {
    tool("mcopy", "mtools")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(img)
        .arg(format!("::{name}"))
        .arg(out)
        .run_checked()
        .unwrap();
    std::fs::read(out).unwrap()
}

/// user-data is a `#cloud-config` of cloud-init's keys only, the cloud-init part of `env`,
/// and `cloud-init schema` finds nothing to say about it but that it is valid.
fn assert_clean_user_data(user_data: &[u8], env: &Path, dir: &Path) {
    let path = dir.join("user-data");
    std::fs::write(&path, user_data).unwrap();
    assert!(user_data.starts_with(b"#cloud-config\n"));
    let got = pyyaml(&path);
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    let known = schema_keys();
    for key in &keys {
        assert!(known.contains(*key), "user-data key `{key}` is not in {SCHEMA}");
    }
    // Exactly env.yml's cloud-init keys, with the values PyYAML reads there.
    let full = pyyaml(env);
    for (key, value) in full.as_object().unwrap() {
        if known.contains(key) {
            assert_eq!(got.get(key), Some(value), "{key}");
        } else {
            assert!(got.get(key).is_none(), "{key} in user-data");
        }
    }
    let out = tool("cloud-init", "cloud-init")
        .args(["schema", "--config-file"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.trim(),
        format!("Valid cloud-config: {}", path.display()),
        "{text}"
    );
}

#[test]
fn config_new_seed_has_clean_user_data_and_env_yml_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("appliance");
    let r = run(ecs_build()
        .args(["config", "new", "--domain", "ecs.example.org", "--ssh-key"])
        .arg(operator_key(dir.path()))
        .arg("--out")
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let env = out.join("env.yml");
    let iso = out.join("seed.iso");
    assert_eq!(isoinfo_extract(&iso, "env.yml"), std::fs::read(&env).unwrap());
    let user_data = isoinfo_extract(&iso, "user-data");
    assert_clean_user_data(&user_data, &env, dir.path());
    let text = String::from_utf8(user_data).unwrap();
    for key in ["ssh_authorized_keys:", "ssh_keys:", "disable_root:"] {
        assert!(text.contains(key), "{key} missing from user-data:\n{text}");
    }
}

#[test]
fn config_seed_of_an_original_env_yml_iso_and_vfat() {
    let dir = tempfile::tempdir().unwrap();
    let env = original_fixture();
    let original = std::fs::read(&env).unwrap();

    let iso = dir.path().join("seed.iso");
    let r = run(ecs_build().args(["config", "seed"]).arg(&env).arg("-o").arg(&iso));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(isoinfo_extract(&iso, "env.yml"), original);
    let user_data = isoinfo_extract(&iso, "user-data");
    assert_clean_user_data(&user_data, &env, dir.path());
    // The original's own top-level extra is not cloud-init's, and is left out.
    assert!(!String::from_utf8_lossy(&user_data).contains("ssh_deprecated_keys"));

    let img = dir.path().join("seed.img");
    let r = run(ecs_build()
        .args(["config", "seed", "--vfat"])
        .arg(&env)
        .arg("-o")
        .arg(&img));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        mcopy_extract(&img, "env.yml", &dir.path().join("fat-env.yml")),
        original
    );
    assert_eq!(
        mcopy_extract(&img, "user-data", &dir.path().join("fat-user-data")),
        user_data
    );
}
