//! The NoCloud `meta-data` document. cloud-init parses it with PyYAML (YAML 1.1), where bare
//! `on`, `yes`, `0644` or `12:30` would not stay strings, so every value is written as a
//! double-quoted scalar with everything outside printable ASCII escaped.

/// meta-data YAML with the instance id and hostname.
pub fn meta_data(instance_id: &str, local_hostname: &str) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        quote(instance_id),
        quote(local_hostname)
    )
}

/// A YAML double-quoted scalar that any YAML 1.1 or 1.2 parser reads back as exactly `s`.
/// The output is pure printable ASCII: PyYAML refuses some characters (e.g. U+FFFE) even in
/// quoted scalars unless they are escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xFF => out.push_str(&format!("\\x{:02X}", u32::from(c))),
            c if u32::from(c) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_quoted() {
        assert_eq!(
            meta_data("iid-1", "on.example.org"),
            "instance-id: \"iid-1\"\nlocal-hostname: \"on.example.org\"\n"
        );
    }

    #[test]
    fn escapes_cover_quotes_controls_and_non_ascii() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\u{7}"), r#""x\ny\x07""#);
        assert_eq!(quote("ä€😀"), r#""\xE4\u20AC\U0001F600""#);
    }
}
