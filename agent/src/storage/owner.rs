//! Which appliance a data disk belongs to: an LVM tag `ecs-appliance:<domain>` on VG
//! `permanent`, written by the agent's `vgcreate --addtag` and by `ecs-build disk data
//! --owner`. Tags are VG metadata: `pvs -o vg_tags` reads them without activating anything, so
//! the decision is made before `vgchange -ay` or a mount can touch a disk.

use std::path::PathBuf;

use anyhow::Context as _;
use host_util::CommandExt;
use serde::Deserialize;

use crate::tools::{PVS, VGCHANGE};

/// The prefix of the owner tag; the rest is the appliance's domain, lowercased.
pub const TAG_PREFIX: &str = "ecs-appliance:";

/// The tag naming `domain` as the owner. Domain names use only characters LVM allows in tags
/// (`[A-Za-z0-9_+.-]`, and `/=!:#&`).
pub fn tag(domain: &str) -> String {
    format!("{TAG_PREFIX}{}", domain.to_ascii_lowercase())
}

/// One PV of `pvs --reportformat json -o pv_name,vg_name,vg_tags`.
#[derive(Debug, Clone, Deserialize)]
pub struct PvRow {
    pub pv_name: String,
    #[serde(default)]
    pub vg_name: String,
    #[serde(default)]
    pub vg_tags: String,
}

#[derive(Debug, Deserialize)]
struct Report {
    report: Vec<ReportPart>,
}

#[derive(Debug, Deserialize)]
struct ReportPart {
    #[serde(default)]
    pv: Vec<PvRow>,
}

/// lvm2's options for a command restricted to `devices` (the context's data disks), so a test
/// host's other PVs are neither seen nor touched, and no metadata backup is written to its /etc.
pub fn restrict(devices: Option<&[PathBuf]>) -> Vec<String> {
    match devices {
        Some(list) if !list.is_empty() => {
            let names: Vec<String> = list.iter().map(|p| p.display().to_string()).collect();
            vec![
                "--config".into(),
                "devices{use_devicesfile=0} backup{backup=0 archive=0}".into(),
                "--devices".into(),
                names.join(","),
            ]
        }
        _ => Vec::new(),
    }
}

/// The PVs lvm2 sees, read from metadata only.
pub fn physical_volumes(devices: Option<&[PathBuf]>) -> anyhow::Result<Vec<PvRow>> {
    let json = PVS
        .command()?
        .args(restrict(devices))
        .args(["--reportformat", "json", "-o", "pv_name,vg_name,vg_tags"])
        .run_stdout()
        .context("listing LVM physical volumes (pvs)")?;
    let report: Report = serde_json::from_str(&json).context("parsing pvs --reportformat json output")?;
    Ok(report.report.into_iter().flat_map(|r| r.pv).collect())
}

/// What VG `vg` says about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No such VG.
    Absent,
    /// Tagged for this appliance.
    Ours,
    /// Tagged for other appliances (their domains), or untagged (empty).
    Foreign(Vec<String>),
}

/// The PVs of `vg` and its owner as seen from `domain`.
pub fn owner(rows: &[PvRow], vg: &str, domain: &str) -> (Vec<String>, Owner) {
    let pvs: Vec<&PvRow> = rows.iter().filter(|r| r.vg_name == vg).collect();
    let names = pvs.iter().map(|r| r.pv_name.clone()).collect();
    let Some(first) = pvs.first() else {
        return (names, Owner::Absent);
    };
    let ours = tag(domain);
    let tags: Vec<&str> = first
        .vg_tags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tags.contains(&ours.as_str()) {
        return (names, Owner::Ours);
    }
    let owners = tags
        .iter()
        .filter_map(|t| t.strip_prefix(TAG_PREFIX))
        .map(String::from)
        .collect();
    (names, Owner::Foreign(owners))
}

/// The refusal for a foreign or untagged VG: the devices, the owner found, the key to adopt.
pub fn refusal(pvs: &[String], vg: &str, owners: &[String], domain: &str) -> String {
    let found = if owners.is_empty() {
        "no owner tag (made by an older agent or another tool)".to_string()
    } else {
        format!("owner {}", owners.join(", "))
    };
    format!(
        "{} {} volume group `{vg}` of another appliance ({found}; this is {domain}); it was left \
         untouched, not activated. If it is this appliance's data (a disk moved here), set \
         appliance.storage.adopt: true in env.yml and restart; otherwise detach it",
        pvs.join(" + "),
        if pvs.len() == 1 { "carries" } else { "carry" },
    )
}

/// Re-tags `vg` for `domain`: removes every other owner tag. A metadata write; nothing is
/// activated.
pub fn adopt(vg: &str, domain: &str, owners: &[String], devices: Option<&[PathBuf]>) -> anyhow::Result<()> {
    let mut cmd = VGCHANGE.command()?;
    cmd.args(restrict(devices));
    for o in owners {
        cmd.arg("--deltag").arg(tag(o));
    }
    cmd.arg("--addtag").arg(tag(domain)).arg(vg);
    cmd.run_checked()
        .with_context(|| format!("re-tagging volume group {vg} for {domain}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &str) -> Vec<PvRow> {
        let r: Report = serde_json::from_str(json).unwrap();
        r.report.into_iter().flat_map(|r| r.pv).collect()
    }

    /// `pvs --reportformat json -o pv_name,vg_name,vg_tags` as lvm2 2.03 prints it.
    const PVS: &str = r#"{
      "report": [
          {
              "pv": [
                  {"pv_name":"/dev/md127", "vg_name":"permanent", "vg_tags":"ecs-appliance:another.test"},
                  {"pv_name":"/dev/vdd", "vg_name":"", "vg_tags":""},
                  {"pv_name":"/dev/vde", "vg_name":"other", "vg_tags":"x,ecs-appliance:appliance.test"}
              ]
          }
      ]
    }"#;

    #[test]
    fn owner_is_read_from_the_tag() {
        let r = rows(PVS);
        assert_eq!(
            owner(&r, "permanent", "appliance.test"),
            (
                vec!["/dev/md127".into()],
                Owner::Foreign(vec!["another.test".into()])
            )
        );
        assert_eq!(owner(&r, "permanent", "Another.Test").1, Owner::Ours);
        assert_eq!(owner(&r, "other", "appliance.test").1, Owner::Ours);
        assert_eq!(owner(&r, "missing", "appliance.test").1, Owner::Absent);
        let untagged =
            rows(r#"{"report":[{"pv":[{"pv_name":"/dev/vdb","vg_name":"permanent","vg_tags":""}]}]}"#);
        assert_eq!(owner(&untagged, "permanent", "a.test").1, Owner::Foreign(vec![]));
    }

    #[test]
    fn refusal_names_devices_owner_and_key() {
        let m = refusal(
            &["/dev/vdc".into()],
            "permanent",
            &["another.test".into()],
            "appliance.test",
        );
        assert!(m.starts_with("/dev/vdc carries volume group `permanent` of another appliance (owner another.test; this is appliance.test)"), "{m}");
        assert!(m.contains("appliance.storage.adopt: true"), "{m}");
        let m = refusal(&["/dev/vdc".into()], "permanent", &[], "appliance.test");
        assert!(m.contains("no owner tag"), "{m}");
    }
}
