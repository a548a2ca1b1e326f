use super::*;

use host_util::{CommandExt, Tool};

/// Incompressible bytes, so that the gzip stream spans several chunks.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn found(payloads: &[String], scan: &str) -> Vec<Found> {
    payloads
        .iter()
        .map(|p| Found {
            chunk: parse(p).unwrap(),
            scan: scan.to_string(),
        })
        .collect()
}

#[test]
fn payloads_are_alphanumeric_and_labelled() {
    let data = noise(CHUNK_BYTES * 7 / 2, 1);
    let payloads = encode(&data, "env.yml").unwrap();
    assert_eq!(payloads.len(), 4);
    let sha = hex::encode_upper(Sha256::digest(&data));
    for (i, p) in payloads.iter().enumerate() {
        assert!(
            p.starts_with(&format!("ECSPB1 {}/4 {sha} ", i + 1)),
            "{}",
            &p[..90]
        );
        assert!(
            p.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || b" /".contains(&c))
        );
    }
}

#[test]
fn reassembles_in_any_order_with_duplicates() {
    let data = noise(CHUNK_BYTES * 7 / 2, 2);
    let payloads = encode(&data, "env.yml").unwrap();
    let mut all = found(&payloads, "a.png");
    all.reverse();
    all.extend(found(&payloads[1..3], "b.png"));
    all.swap(0, 3);
    assert_eq!(assemble(&all, &[]).unwrap(), data);
}

#[test]
fn single_code_and_empty_data() {
    for data in [&b""[..], b"#cloud-config\n"] {
        let payloads = encode(data, "env.yml").unwrap();
        assert_eq!(payloads.len(), 1);
        assert_eq!(assemble(&found(&payloads, "x.png"), &[]).unwrap(), data);
    }
}

#[test]
fn names_missing_codes_and_unreadable_ones() {
    let data = noise(CHUNK_BYTES * 13 / 2, 3);
    let payloads = encode(&data, "env.yml").unwrap();
    assert_eq!(payloads.len(), 7);
    let mut some = found(&payloads, "p.png");
    some.remove(4);
    some.remove(2);
    let unreadable = [Unreadable {
        scan: "p2.png".into(),
        x: 10,
        y: 20,
    }];
    let err = assemble(&some, &unreadable).unwrap_err();
    let msg = err.to_string();
    let doc = doc_id(&Sha256::digest(&data).into());
    assert!(
        msg.starts_with(&format!(
            "missing QR codes 3/7, 5/7 of document {doc}: found 5 of 7; "
        )),
        "{msg}"
    );
    assert!(msg.contains("1 code(s) were seen but could not be read"), "{msg}");
    assert!(msg.contains("p2.png near pixel (10, 20)"), "{msg}");
    assert!(err.is_bad_input());
}

#[test]
fn refuses_codes_of_two_documents() {
    let a = encode(&noise(CHUNK_BYTES * 5 / 2, 4), "a").unwrap();
    let b = encode(&noise(CHUNK_BYTES * 5 / 2, 5), "b").unwrap();
    let mut all = found(&a, "a.png");
    all.extend(found(&b[..1], "b.png"));
    let msg = assemble(&all, &[]).unwrap_err().to_string();
    assert!(
        msg.starts_with("the scans hold QR codes of 2 different documents: "),
        "{msg}"
    );
    assert!(msg.contains("(a.png)") && msg.contains("(b.png)"), "{msg}");
}

#[test]
fn refuses_same_code_with_different_contents() {
    let payloads = encode(&noise(CHUNK_BYTES * 5 / 2, 6), "env.yml").unwrap();
    let mut all = found(&payloads, "a.png");
    let mut forged = all[1].clone();
    forged.chunk.bytes[0] ^= 1;
    forged.scan = "b.png".into();
    all.push(forged);
    let msg = assemble(&all, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("QR code 2/3 of document") && msg.contains("a.png and b.png"),
        "{msg}"
    );
}

#[test]
fn detects_data_that_does_not_match_its_sha256() {
    let data = noise(CHUNK_BYTES * 5 / 2, 7);
    let payloads = encode(&data, "env.yml").unwrap();
    // The same codes claiming another document's sha256.
    let other = hex::encode_upper(Sha256::digest(b"other"));
    let real = hex::encode_upper(Sha256::digest(&data));
    let relabelled: Vec<String> = payloads.iter().map(|p| p.replace(&real, &other)).collect();
    let msg = assemble(&found(&relabelled, "a.png"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("all 3 QR codes were read, but the restored data has sha256"),
        "{msg}"
    );
}

#[test]
fn parse_tells_foreign_from_malformed() {
    assert_eq!(parse("https://example.org"), Err(ParseError::Foreign));
    let sha = "A".repeat(64);
    for (payload, why) in [
        ("ECSPB1 0/3 X".to_string(), "<n>/<m>"),
        ("ECSPB1 4/3 X".to_string(), "<n>/<m>"),
        ("ECSPB1 1/3 ABC X".to_string(), "sha256"),
        (format!("ECSPB1 1/3 {sha}"), "no data"),
        (format!("ECSPB1 1/3 {sha} AB1"), "not base32 at offset 2"),
    ] {
        match parse(&payload) {
            Err(ParseError::Malformed(m)) => assert!(m.contains(why), "{payload}: {m}"),
            other => panic!("{payload}: {other:?}"),
        }
    }
}

#[test]
fn refuses_data_needing_too_many_codes() {
    let err = encode(&noise(CHUNK_BYTES * MAX_CODES + 1000, 8), "big.yml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("big.yml is too large for a paper backup: it needs 102 QR codes"),
        "{err}"
    );
}

/// The documented manual recovery: the base32 of the codes, joined in order, decodes to a
/// gzip stream that the real gzip unpacks.
#[test]
fn joined_codes_are_a_plain_gzip_stream() {
    let data = noise(CHUNK_BYTES * 7 / 2, 9);
    let payloads = encode(&data, "env.yml").unwrap();
    let joined: String = payloads.iter().map(|p| p.rsplit(' ').next().unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("env.yml.gz");
    std::fs::write(&gz, base32::decode(&joined).unwrap()).unwrap();
    let out = Tool::new("gzip", "gzip")
        .command()
        .unwrap()
        .arg("-dc")
        .arg(&gz)
        .run_checked()
        .unwrap();
    assert_eq!(out.stdout, data);
}

#[test]
fn gzip_output_is_deterministic() {
    let data = noise(3000, 10);
    assert_eq!(encode(&data, "x").unwrap(), encode(&data, "x").unwrap());
    let gz = gzip(&data).unwrap();
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime must be 0");
}
