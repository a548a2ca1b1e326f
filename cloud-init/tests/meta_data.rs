//! meta-data as cloud-init reads it: through PyYAML (YAML 1.1).

mod common;

use cloud_init::meta_data;
use common::*;

/// PyYAML's view of `yaml`, as JSON.
fn pyyaml(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta-data");
    write(&path, yaml.as_bytes());
    let script = "import json, sys, yaml\n\
                  print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sort_keys=True))";
    stdout(cmd(PYTHON3).args(["-c", script]).arg(&path))
        .trim()
        .to_string()
}

/// JSON for {"instance-id": id, "local-hostname": host}, with the same escaping Python uses.
fn expected(id: &str, host: &str) -> String {
    let script = "import json, sys\n\
                  print(json.dumps({'instance-id': sys.argv[1], 'local-hostname': sys.argv[2]}, sort_keys=True))";
    stdout(cmd(PYTHON3).args(["-c", script, id, host]))
        .trim()
        .to_string()
}

#[test]
fn pyyaml_reads_back_the_same_strings() {
    let cases = [
        ("iid-on.example.org", "on.example.org"),
        ("on", "yes"),
        ("0644", "12:30"),
        ("~", "null"),
        ("1e3", "2024-01-01"),
        ("a: b # c", "- x"),
        ("'single' \"double\" \\back", "tab\there"),
        ("line\nbreak", "ümlaut €uro 😀"),
        ("", " leading and trailing "),
        ("\u{85}\u{2028}\u{feff}", "\u{1}\u{7f}"),
    ];
    for (id, host) in cases {
        let yaml = meta_data(id, host);
        assert_eq!(pyyaml(&yaml), expected(id, host), "meta-data was:\n{yaml}");
    }
}
