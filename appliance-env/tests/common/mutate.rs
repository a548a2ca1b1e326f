//! Careless and hostile edits of a YAML file, for the loaders' property tests (env.yml here,
//! machine.yml in builder/tests/machine_props.rs, which includes this file), and a way to run a
//! test in a child process under a memory cap so an unbounded allocation fails the test instead
//! of exhausting the machine.

#![allow(dead_code)]

use proptest::prelude::*;

/// One edit; positions are taken modulo the text's length.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Cut the text at a byte (a file copied half-way).
    Truncate(usize),
    /// Repeat a line right after itself (a duplicate key).
    DuplicateLine(usize),
    /// Drop a line.
    DeleteLine(usize),
    /// Put an anchor on a line's value and alias it from an inserted key.
    AnchorAndAlias(usize, usize),
    /// `[[[[...]]]]` or a deeply indented block, `n` levels.
    Nest(usize, bool),
    /// A scalar of `n` bytes at a line.
    HugeScalar(usize, usize),
    /// Overwrite a byte with one that is not UTF-8 (read back with `from_utf8_lossy`).
    InvalidByte(usize, u8),
    /// Insert arbitrary text at a byte.
    Insert(usize, String),
    /// Change a line's indentation.
    Indent(usize, usize),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Truncate),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DeleteLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::AnchorAndAlias(a, b)),
        (1usize..400, any::<bool>()).prop_map(|(n, flow)| Edit::Nest(n, flow)),
        (any::<usize>(), 1usize..200_000).prop_map(|(at, n)| Edit::HugeScalar(at, n)),
        (any::<usize>(), 0x80u8..=0xff).prop_map(|(at, b)| Edit::InvalidByte(at, b)),
        (
            any::<usize>(),
            prop_oneof![
                "[ -~\n]{0,40}",
                Just("&a".to_string()),
                Just("*a".to_string()),
                Just(": ".to_string()),
                Just("- ".to_string()),
                Just("? ".to_string()),
                Just("!!binary ".to_string()),
                Just("<<: *a\n".to_string()),
                Just("\n---\n".to_string()),
                Just("y".to_string()),
                Just("\t".to_string()),
                Just("'".to_string()),
                Just("\"".to_string()),
                Just("|".to_string()),
            ]
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 0usize..12).prop_map(|(a, n)| Edit::Indent(a, n)),
    ]
}

fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The text with `edit` applied; bytes that are not UTF-8 come back as U+FFFD, as a loader
/// reading with `from_utf8_lossy` would see them.
pub fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let line = |at: usize| at % lines.len().max(1);
    match edit {
        Edit::Truncate(at) => return text[..boundary(text, *at)].to_string(),
        Edit::DuplicateLine(at) if !lines.is_empty() => {
            let i = line(*at);
            lines.insert(i + 1, lines[i].clone());
        }
        Edit::DeleteLine(at) if !lines.is_empty() => {
            lines.remove(line(*at));
        }
        Edit::AnchorAndAlias(a, b) if !lines.is_empty() => {
            let (i, j) = (line(*a), line(*b));
            if let Some(colon) = lines[i].find(": ") {
                lines[i].insert_str(colon + 2, "&anchor ");
            }
            let indent = lines[j].len() - lines[j].trim_start().len();
            lines.insert(j, format!("{}aliased: *anchor", " ".repeat(indent)));
        }
        Edit::Nest(n, flow) => {
            let nested = if *flow {
                format!("deep: {}{}", "[".repeat(*n), "]".repeat(*n))
            } else {
                (0..*n).map(|d| format!("{}k{d}:\n", "  ".repeat(d))).collect()
            };
            lines.push(nested);
        }
        Edit::HugeScalar(at, n) if !lines.is_empty() => {
            let i = line(*at);
            lines[i].push_str(&"x".repeat(*n));
        }
        Edit::InvalidByte(at, b) => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = *b;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        Edit::Insert(at, s) => {
            let i = boundary(text, *at);
            return format!("{}{s}{}", &text[..i], &text[i..]);
        }
        Edit::Indent(at, n) if !lines.is_empty() => {
            let i = line(*at);
            lines[i] = format!("{}{}", " ".repeat(*n), lines[i].trim_start());
        }
        _ => {}
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// A YAML alias bomb ("billion laughs") of about 1 KB: nine levels of nine aliases each, 9^9
/// (387 million) strings once expanded. `prefix` goes in front (e.g. `#cloud-config\n`).
pub fn alias_bomb(prefix: &str) -> String {
    let mut s = String::from(prefix);
    s.push_str("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for level in 1..10 {
        let prev = format!("*a{}", level - 1);
        let items = [prev.as_str(); 9].join(",");
        s.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    s
}

/// The number of the last line of `text` (1-based), counting a final line without a newline.
pub fn last_line(text: &str) -> usize {
    text.lines().count().max(1) + 1
}

/// Runs the test named `name` again in a child process whose address space is capped with
/// util-linux's `prlimit`, and asserts that it passed there. In the child (marked by an
/// environment variable) returns `true`: the caller then runs the test body.
/// `vars` are passed to the child (e.g. an expensive fixture made once by the parent).
pub fn in_capped_child(name: &str, cap_bytes: u64, vars: &[(&str, &str)]) -> bool {
    const MARK: &str = "ECS_TEST_CAPPED_CHILD";
    if std::env::var_os(MARK).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("prlimit")
        .arg(format!("--as={cap_bytes}"))
        .arg("--")
        .arg(&exe)
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(MARK, "1")
        .envs(vars.iter().copied())
        .output()
        .expect("running prlimit (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} under a {cap_bytes}-byte address space cap: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
