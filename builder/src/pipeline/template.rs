//! The packer template for an image ("create-build-config" of the original appliance): a qemu
//! builder that starts from our raw image with the env's seed ISO attached (volume `cidata`)
//! and provisions over SSH as root with the env's key, plus a googlecompute builder as the
//! original had. Written as `<base>.pkr.hcl` and, for older Packers, `<base>.json`.

use packer::{Provisioner, Source, Template, Value, Variable};

use crate::machine::Machine;

/// What the template refers to, by file name in the output directory (run packer there).
#[derive(Debug, Clone)]
pub struct TemplateInputs<'a> {
    pub machine: &'a Machine,
    pub base: &'a str,
    /// `sha256:<hex>` of the raw image, or None when it is not built yet.
    pub raw_sha256: Option<&'a str>,
    pub seed_iso: Option<&'a str>,
}

fn var(name: &str, default: &str, description: &str) -> Variable {
    Variable {
        name: name.into(),
        default: default.into(),
        description: description.into(),
    }
}

fn ssh_settings() -> Vec<(String, Value)> {
    vec![
        ("communicator".into(), "ssh".into()),
        ("ssh_username".into(), Value::Var("ssh_username".into())),
        (
            "ssh_private_key_file".into(),
            Value::Var("ssh_private_key_file".into()),
        ),
        ("ssh_timeout".into(), "30m".into()),
    ]
}

pub fn template(t: &TemplateInputs<'_>) -> Template {
    let m = t.machine;
    let variables = vec![
        var(
            "ssh_private_key_file",
            "~/.ssh/id_ed25519",
            "Private half of a key in the env's ssh_authorized_keys.",
        ),
        var(
            "ssh_username",
            "root",
            "cloud-init authorizes the env's keys for root.",
        ),
        var(
            "accelerator",
            "kvm",
            "qemu accelerator: kvm, or tcg where KVM is unusable.",
        ),
        var(
            "gcp_project_id",
            "ecs-appliance",
            "Google Cloud project to build in.",
        ),
        var("gcp_zone", "europe-west1-c", "Google Cloud zone."),
        var(
            "gcp_source_image",
            &format!("{}-{}", m.name, "latest"),
            "Google Cloud image uploaded from this build's raw image.",
        ),
    ];
    let data_mib = (m.disks.data_size.bytes() / (1024 * 1024)) as i64;
    let mut qemu = vec![
        ("disk_image".into(), true.into()),
        ("iso_url".into(), format!("{}.raw", t.base).into()),
        (
            "iso_checksum".into(),
            t.raw_sha256
                .map_or("none".to_string(), |s| format!("sha256:{s}"))
                .into(),
        ),
        ("format".into(), "qcow2".into()),
        ("accelerator".into(), Value::Var("accelerator".into())),
        ("headless".into(), true.into()),
        ("memory".into(), 2048.into()),
        ("cpus".into(), 2.into()),
        ("net_device".into(), "virtio-net".into()),
        ("disk_interface".into(), "virtio".into()),
        (
            "disk_additional_size".into(),
            Value::List(if m.disks.raid1 {
                vec![data_mib.into(), data_mib.into()]
            } else {
                vec![data_mib.into()]
            }),
        ),
        (
            "output_directory".into(),
            format!("packer-{}-qemu", t.base).into(),
        ),
        ("vm_name".into(), format!("{}.qcow2", t.base).into()),
        ("shutdown_command".into(), "shutdown -P now".into()),
    ];
    if let Some(seed) = t.seed_iso {
        qemu.push((
            "qemuargs".into(),
            Value::List(vec![Value::List(vec!["-cdrom".into(), seed.into()])]),
        ));
    }
    qemu.extend(ssh_settings());
    let mut gce = vec![
        ("project_id".into(), Value::Var("gcp_project_id".into())),
        ("source_image".into(), Value::Var("gcp_source_image".into())),
        ("zone".into(), Value::Var("gcp_zone".into())),
        ("machine_type".into(), "n1-standard-1".into()),
        (
            "image_name".into(),
            t.base.replace(['.', '+', '_'], "-").to_lowercase().into(),
        ),
    ];
    gce.extend(ssh_settings());
    Template {
        variables,
        sources: vec![
            Source {
                kind: "qemu".into(),
                name: "ecs".into(),
                settings: qemu,
            },
            Source {
                kind: "googlecompute".into(),
                name: "ecs-gce".into(),
                settings: gce,
            },
        ],
        provisioners: vec![Provisioner {
            kind: "shell".into(),
            settings: vec![(
                "inline".into(),
                Value::List(vec![
                    "cloud-init status --wait || true".into(),
                    "/usr/local/bin/ecs-agent --version".into(),
                ]),
            )],
        }],
    }
}
