//! The data as printable lines: Base-14 fonts speak WinAnsi only, so everything outside
//! printable ASCII is shown as a visible escape, and long lines wrap with a marked continuation.
//! The text is for people; the QR codes carry the exact bytes.

/// One printed line: the gutter (line number, or `+` for a continuation) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub gutter: String,
    pub text: String,
}

/// The lines of `data`, each at most `columns` characters of text, and the number of escapes.
pub fn lines(data: &[u8], columns: usize) -> (Vec<Line>, usize) {
    let mut escapes = 0;
    let mut raw: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.ends_with(b"\n") {
        raw.pop();
    }
    let width = raw.len().max(1).to_string().len();
    let mut out = Vec::new();
    for (n, line) in raw.iter().enumerate() {
        let units = units(line, &mut escapes);
        let mut first = true;
        let mut piece = String::new();
        let mut used = 0;
        for unit in units.iter().chain(std::iter::once(&String::new())) {
            let end = unit.is_empty();
            if end || used + unit.len() > columns {
                if end && !first && piece.is_empty() {
                    break;
                }
                let gutter = if first {
                    format!("{:>width$}", n + 1)
                } else {
                    format!("{:>width$}", "+")
                };
                out.push(Line {
                    gutter,
                    text: std::mem::take(&mut piece),
                });
                first = false;
                used = 0;
            }
            piece.push_str(unit);
            used += unit.len();
        }
    }
    (out, escapes)
}

/// Printable ASCII as itself; any other character as `<U+XXXX>`, invalid UTF-8 as `<xHH>`.
pub fn escape(text: &[u8], escapes: &mut usize) -> String {
    units(text, escapes).concat()
}

fn units(line: &[u8], escapes: &mut usize) -> Vec<String> {
    let mut units = Vec::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (' '..='~').contains(&c) {
                units.push(c.to_string());
            } else {
                *escapes += 1;
                units.push(format!("<U+{:04X}>", c as u32));
            }
        }
        for b in chunk.invalid() {
            *escapes += 1;
            units.push(format!("<x{b:02X}>"));
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(data: &[u8], columns: usize) -> (Vec<String>, usize) {
        let (lines, escapes) = lines(data, columns);
        (
            lines
                .into_iter()
                .map(|l| format!("{}|{}", l.gutter, l.text))
                .collect(),
            escapes,
        )
    }

    #[test]
    fn numbers_lines_and_wraps_with_continuations() {
        let data = b"a: 1\n\nkey: abcdefghij\n";
        let (lines, escapes) = show(data, 6);
        assert_eq!(lines, ["1|a: 1", "2|", "3|key: a", "+|bcdefg", "+|hij"]);
        assert_eq!(escapes, 0);
    }

    #[test]
    fn exact_fit_has_no_empty_continuation_and_missing_final_newline_is_fine() {
        let (lines, _) = show(b"abcdef\nxy", 6);
        assert_eq!(lines, ["1|abcdef", "2|xy"]);
    }

    #[test]
    fn escapes_non_ascii_without_splitting_them() {
        let (lines, escapes) = show(b"ab\xc3\xa9\tc\n\xff", 9);
        assert_eq!(lines, ["1|ab", "+|<U+00E9>", "+|<U+0009>c", "2|<xFF>"]);
        assert_eq!(escapes, 3);
    }

    #[test]
    fn gutter_width_follows_line_count() {
        let data = "x\n".repeat(12);
        let (lines, _) = show(data.as_bytes(), 10);
        assert_eq!(lines[0], " 1|x");
        assert_eq!(lines[11], "12|x");
    }
}
