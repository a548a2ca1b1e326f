//! A position-carrying view of a YAML document: just enough structure (mappings, sequences,
//! scalars with their style) to name the line and column of any key path, to check key names
//! before serde sees them, and to spot plain scalars that YAML 1.1 (PyYAML, cloud-init's parser)
//! reads differently from our typed model.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{ErrorKind, Event, Parser, ScalarStyle, Span};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Scalar { value: String, plain: bool, at: Pos },
    Seq { items: Vec<Node>, at: Pos },
    Map { entries: Vec<Entry>, at: Pos },
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_at: Pos,
    pub value: Node,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// `appliance.extra.files[0].path`
pub(crate) fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The path with indices replaced by `[]`, as the schema names list items.
pub(crate) fn pattern_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(_) => s.push_str("[]"),
        }
    }
    s
}

impl Node {
    pub fn at(&self) -> Pos {
        match self {
            Node::Scalar { at, .. } | Node::Seq { at, .. } | Node::Map { at, .. } => *at,
        }
    }

    /// Where `path` is written: the key's position for mapping entries, the item's for
    /// sequence items. Falls back to the deepest ancestor found.
    pub fn locate(&self, path: &[Seg]) -> Pos {
        let mut node = self;
        let mut pos = Pos { line: 1, column: 1 };
        for seg in path {
            let next = match (node, seg) {
                (Node::Map { entries, .. }, Seg::Key(k)) => entries
                    .iter()
                    .rev()
                    .find(|e| &e.key == k)
                    .map(|e| (e.key_at, &e.value)),
                (Node::Seq { items, .. }, Seg::Index(i)) => items.get(*i).map(|n| (n.at(), n)),
                _ => None,
            };
            match next {
                Some((p, n)) => {
                    pos = p;
                    node = n;
                }
                None => break,
            }
        }
        pos
    }

    /// Whether `path` is present in this document.
    pub fn contains(&self, path: &[Seg]) -> bool {
        let mut node = self;
        for seg in path {
            let next = match (node, seg) {
                (Node::Map { entries, .. }, Seg::Key(k)) => {
                    entries.iter().rev().find(|e| &e.key == k).map(|e| &e.value)
                }
                (Node::Seq { items, .. }, Seg::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        true
    }
}

/// A YAML syntax error with its position.
pub(crate) struct SyntaxError {
    pub at: Pos,
    pub message: String,
}

/// How deep mappings and sequences may nest: env.yml needs 5 levels; recursion stays bounded.
pub(crate) const MAX_DEPTH: usize = 32;
/// How many nodes the document may hold once every alias is expanded: env.yml has a few
/// hundred, an alias bomb billions.
pub(crate) const MAX_NODES: usize = 100_000;
/// How many bytes of scalar text the document may hold once every alias is expanded (the file
/// itself is capped at 4 MiB; aliases must not multiply that).
pub(crate) const MAX_SCALAR_BYTES: usize = 16 * 1024 * 1024;

/// Parses the first document of `text`; an empty document is an empty mapping. Refuses
/// documents nested deeper than `MAX_DEPTH` or growing past `MAX_NODES` / `MAX_SCALAR_BYTES`
/// through aliases, before anything is copied.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        depth: 0,
        cost: Cost::default(),
        last: Pos { line: 1, column: 1 },
    };
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamEnd => {
                return Ok(Node::Map {
                    entries: Vec::new(),
                    at: Pos { line: 1, column: 1 },
                });
            }
            Event::StreamStart | Event::DocumentStart(..) => {}
            other => return builder.node(other, span),
        }
    }
}

/// What a subtree costs to hold: its nodes and its scalar bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    bytes: usize,
}

impl Cost {
    fn of(node: &Node) -> Cost {
        match node {
            Node::Scalar { value, .. } => Cost {
                nodes: 1,
                bytes: value.len(),
            },
            Node::Seq { items, .. } => items
                .iter()
                .fold(Cost { nodes: 1, bytes: 0 }, |c, n| c.add(Cost::of(n))),
            Node::Map { entries, .. } => entries.iter().fold(Cost { nodes: 1, bytes: 0 }, |c, e| {
                c.add(Cost::of(&e.value)).add(Cost {
                    nodes: 1,
                    bytes: e.key.len(),
                })
            }),
        }
    }

    fn add(self, other: Cost) -> Cost {
        Cost {
            nodes: self.nodes.saturating_add(other.nodes),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }
}

struct Builder<'a> {
    events: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    /// Anchored nodes with their cost, so an alias is charged before it is copied.
    anchors: HashMap<usize, (Node, Cost)>,
    depth: usize,
    /// Everything built so far, aliases counted in full.
    cost: Cost,
    /// Where the last event was, for an input that ends too early.
    last: Pos,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        loop {
            match self.events.next() {
                None => {
                    return Err(SyntaxError {
                        at: self.last,
                        message: "unexpected end of input".into(),
                    });
                }
                Some(Err(e)) => {
                    // The scanner may reach its own nesting limit before we see the depth.
                    let message = if matches!(e.kind(), ErrorKind::RecursionLimitExceeded) {
                        depth_message()
                    } else {
                        e.info()
                    };
                    return Err(SyntaxError {
                        at: Pos {
                            line: e.marker().line(),
                            column: e.marker().col() + 1,
                        },
                        message,
                    });
                }
                Some(Ok((event, span))) => {
                    self.last = Pos::of(&span);
                    if matches!(event, Event::Comment(..) | Event::Anchor(..)) {
                        continue;
                    }
                    return Ok((event, span));
                }
            }
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), Cost::of(node)));
        }
    }

    /// Adds `cost` to the document's total, or says which limit it would exceed.
    fn charge(&mut self, cost: Cost, at: Pos, alias: bool) -> Result<(), SyntaxError> {
        self.cost = self.cost.add(cost);
        let why = if alias {
            " (aliases (*name) repeat what their anchor (&name) holds; is this an alias bomb?)"
        } else {
            ""
        };
        if self.cost.nodes > MAX_NODES {
            return Err(SyntaxError {
                at,
                message: format!("the document grows past the limit of {MAX_NODES} values{why}"),
            });
        }
        if self.cost.bytes > MAX_SCALAR_BYTES {
            return Err(SyntaxError {
                at,
                message: format!(
                    "the document grows past the limit of {} MiB of text{why}",
                    MAX_SCALAR_BYTES / (1024 * 1024)
                ),
            });
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        let at = Pos::of(&span);
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                self.charge(
                    Cost {
                        nodes: 1,
                        bytes: value.len(),
                    },
                    at,
                    false,
                )?;
                let node = Node::Scalar {
                    value: value.into_owned(),
                    plain: style == ScalarStyle::Plain && tag.is_none(),
                    at,
                };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((node, cost)) => {
                    let (node, cost) = (node.clone(), *cost);
                    self.charge(cost, at, true)?;
                    Ok(node)
                }
                None => Ok(Node::Scalar {
                    value: String::new(),
                    plain: false,
                    at,
                }),
            },
            Event::SequenceStart(_, anchor, _) => {
                self.enter(at)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span)?);
                }
                self.depth -= 1;
                let node = Node::Seq { items, at };
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(_, anchor, _) => {
                self.enter(at)?;
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key_at = Pos::of(&span);
                    let key = match self.node(event, span)? {
                        Node::Scalar { value, .. } => value,
                        _ => {
                            return Err(SyntaxError {
                                at: key_at,
                                message: "expected a plain key, found a mapping or sequence as key".into(),
                            });
                        }
                    };
                    let (event, span) = self.next()?;
                    let value = self.node(event, span)?;
                    entries.push(Entry { key, key_at, value });
                }
                self.depth -= 1;
                let node = Node::Map { entries, at };
                self.remember(anchor, &node);
                Ok(node)
            }
            other => Err(SyntaxError {
                at,
                message: format!("unexpected YAML event {other:?}"),
            }),
        }
    }

    /// One level deeper, or the depth limit's error.
    fn enter(&mut self, at: Pos) -> Result<(), SyntaxError> {
        self.depth += 1;
        self.charge(Cost { nodes: 1, bytes: 0 }, at, false)?;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError {
                at,
                message: depth_message(),
            });
        }
        Ok(())
    }
}

fn depth_message() -> String {
    format!("mappings and lists nest deeper than the limit of {MAX_DEPTH} levels")
}

/// How PyYAML (YAML 1.1, cloud-init's parser) reads a plain scalar that our model, like
/// YAML 1.2, would take for a string: a sexagesimal number or a timestamp. `None` when both agree.
pub(crate) fn yaml11_reading(plain: &str) -> Option<&'static str> {
    let s = plain.strip_prefix(['-', '+']).unwrap_or(plain);
    // [1-9][0-9_]*(:[0-5]?[0-9])+ (int) and [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* (float)
    let (int_part, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let mut parts = int_part.split(':');
    let head = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    let sexagesimal = !rest.is_empty()
        && !head.is_empty()
        && head.chars().all(|c| c.is_ascii_digit() || c == '_')
        && head.starts_with(|c: char| c.is_ascii_digit())
        && (frac.is_some() || !head.starts_with('0'))
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            matches!(b.len(), 1 | 2) && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] <= b'5')
        })
        && frac.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit() || c == '_'));
    if sexagesimal {
        return Some("a base-60 number");
    }
    if is_yaml11_timestamp(plain) {
        return Some("a date");
    }
    None
}

/// `YYYY-MM-DD`, or `YYYY-M-D` followed by a time (PyYAML's timestamp resolver).
fn is_yaml11_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() == 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10) {
        return true;
    }
    // Date with time: YYYY-M(M)-D(D)[Tt ]...H(H):MM:SS
    let Some(sep) = s.find(['T', 't', ' ']) else {
        return false;
    };
    let (date, time) = (&s[..sep], s[sep..].trim_start_matches(['T', 't', ' ']));
    let d: Vec<&str> = date.split('-').collect();
    d.len() == 3
        && d[0].len() == 4
        && d.iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|c| c.is_ascii_digit()))
        && d[1].len() <= 2
        && d[2].len() <= 2
        && time.len() >= 7
        && time.as_bytes()[1..3].contains(&b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_and_items() {
        let doc = parse("a:\n  b: 1\n  list:\n    - x\n    - y: 2\n").ok().unwrap();
        let p = doc.locate(&[Seg::Key("a".into()), Seg::Key("b".into())]);
        assert_eq!((p.line, p.column), (2, 3));
        let p = doc.locate(&[
            Seg::Key("a".into()),
            Seg::Key("list".into()),
            Seg::Index(1),
            Seg::Key("y".into()),
        ]);
        assert_eq!((p.line, p.column), (5, 7));
    }

    #[test]
    fn yaml11_readings() {
        for s in [
            "12:30",
            "1:20:30",
            "190:20:30.15",
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
        ] {
            assert!(yaml11_reading(s).is_some(), "{s}");
        }
        for s in [
            "06:30",
            "*-*-* 06:30:00",
            "Sun *-*-* 06:30:00",
            "12:60",
            "ecs.example.org",
            "a:b",
            "2024-1",
        ] {
            assert_eq!(yaml11_reading(s), None, "{s}");
        }
    }

    #[test]
    fn syntax_error_has_position() {
        let Err(e) = parse("a: 'x\n") else {
            panic!("parsed")
        };
        assert!(e.at.line >= 1, "{}", e.message);
    }
}
