//! CSV as RFC 4180 writes it, for exports and the partner import: a writer whose text cells are
//! safe to open in a spreadsheet, and a parser that reads what the writer (or a spreadsheet) wrote.
//!
//! - A field with a comma, a quote, CR or LF is quoted; a quote inside is doubled; rows end with
//!   CRLF.
//! - Formula injection: a text cell starting with `=`, `+`, `-`, `@`, tab or CR would be read as a
//!   formula by Excel, LibreOffice or Sheets; it is written with a leading `'` (OWASP's advice).
//!   Numbers the export writes itself ([`Writer::int`]) are not text and are written as they are,
//!   so a negative amount stays a number.

/// Whether a spreadsheet could read `s` as a formula (or a DDE call) if it were a cell.
pub fn needs_guard(s: &str) -> bool {
    matches!(s.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

/// Appends `s` as one field: prefixed with `'` when [`needs_guard`] (if `guard`), quoted when
/// it holds a comma, a quote, CR or LF.
pub fn push_field(out: &mut String, s: &str, guard: bool) {
    let quote = s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if quote {
        out.push('"');
    }
    if guard && needs_guard(s) {
        out.push('\'');
    }
    if quote {
        for part in s.split('"').enumerate() {
            if part.0 > 0 {
                out.push_str("\"\"");
            }
            out.push_str(part.1);
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Builds a CSV document row by row.
#[derive(Default)]
pub struct Writer {
    out: String,
    fresh: bool,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { out: String::new(), fresh: true }
    }

    fn sep(&mut self) {
        if !self.fresh {
            self.out.push(',');
        }
        self.fresh = false;
    }

    /// A text cell (guarded against formula injection).
    pub fn text(&mut self, s: &str) -> &mut Writer {
        self.sep();
        push_field(&mut self.out, s, true);
        self
    }

    /// A text cell, empty for `None`.
    pub fn opt(&mut self, s: Option<&str>) -> &mut Writer {
        self.text(s.unwrap_or(""))
    }

    /// A number written by the export itself (never guarded).
    pub fn int(&mut self, n: i64) -> &mut Writer {
        self.sep();
        self.out.push_str(&n.to_string());
        self
    }

    /// A whole row of text cells.
    pub fn row(&mut self, cells: &[&str]) -> &mut Writer {
        for c in cells {
            self.text(c);
        }
        self.end()
    }

    /// Ends the current row (CRLF).
    pub fn end(&mut self) -> &mut Writer {
        self.out.push_str("\r\n");
        self.fresh = true;
        self
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Why a document is not CSV. `row` is the 1-based record number (a spreadsheet's row number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A quoted field runs to the end of the input.
    UnterminatedQuote { row: usize },
    /// A quote inside an unquoted field, or text after a closing quote.
    StrayQuote { row: usize },
    /// More than the allowed number of records.
    TooManyRows { max: usize },
}

impl ParseError {
    pub fn message(&self) -> String {
        match self {
            ParseError::UnterminatedQuote { row } => format!("row {row}: a quoted field is never closed"),
            ParseError::StrayQuote { row } => {
                format!("row {row}: a quote must open a field and be doubled inside a quoted one")
            }
            ParseError::TooManyRows { max } => format!("at most {max} rows (the header included)"),
        }
    }
}

/// One record and its 1-based number (blank lines count, as in a spreadsheet).
pub type Record = (usize, Vec<String>);

/// Parses a CSV document: RFC 4180 quoting, CRLF or LF line ends, an optional UTF-8 byte order
/// mark (Excel writes one), blank lines skipped, no trailing newline needed. At most
/// `max_records` records (blank lines not counted), so a huge body stops early.
pub fn parse(input: &str, max_records: usize) -> Result<Vec<Record>, ParseError> {
    let s = input.strip_prefix('\u{feff}').unwrap_or(input);
    let b = s.as_bytes();
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut number = 1;
    let mut i = 0;
    loop {
        let field = if b.get(i) == Some(&b'"') {
            let mut f = String::new();
            let mut start = i + 1;
            loop {
                let Some(q) = s[start..].find('"').map(|q| start + q) else {
                    return Err(ParseError::UnterminatedQuote { row: number });
                };
                f.push_str(&s[start..q]);
                if b.get(q + 1) == Some(&b'"') {
                    f.push('"');
                    start = q + 2;
                } else {
                    i = q + 1;
                    break;
                }
            }
            if !matches!(b.get(i), None | Some(b',' | b'\r' | b'\n')) {
                return Err(ParseError::StrayQuote { row: number });
            }
            f
        } else {
            let end = s[i..].find([',', '\r', '\n']).map_or(b.len(), |e| i + e);
            let f = &s[i..end];
            if f.contains('"') {
                return Err(ParseError::StrayQuote { row: number });
            }
            i = end;
            f.to_string()
        };
        record.push(field);
        match b.get(i) {
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(b'\r') => i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 },
            Some(_) => i += 1,
            None => {}
        }
        let done = std::mem::take(&mut record);
        if !(done.len() == 1 && done[0].is_empty()) {
            if records.len() == max_records {
                return Err(ParseError::TooManyRows { max: max_records });
            }
            records.push((number, done));
        }
        number += 1;
        if i >= b.len() {
            return Ok(records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(rows: &[Vec<String>], guard: bool) -> String {
        let mut out = String::new();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_field(&mut out, c, guard);
            }
            out.push_str("\r\n");
        }
        out
    }

    fn fields(rows: Vec<Record>) -> Vec<Vec<String>> {
        rows.into_iter().map(|(_, f)| f).collect()
    }

    #[test]
    fn quoting() {
        let mut w = Writer::new();
        w.row(&["plain", "a,b", "say \"hi\"", "two\nlines", "cr\rx", ""]).int(-1250).int(7).end();
        assert_eq!(w.finish(), "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rx\",\r\n-1250,7\r\n");
    }

    #[test]
    fn formula_guard() {
        let cases = [
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@x", "'@x"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("=1+1,2", "\"'=1+1,2\""),
            ("a=1", "a=1"),
            (" =1", " =1"),
            ("'quoted", "'quoted"),
        ];
        for (cell, want) in cases {
            let mut w = Writer::new();
            w.text(cell);
            assert_eq!(w.finish(), want, "{cell:?}");
        }
        assert!(!needs_guard(""));
    }

    #[test]
    fn parses_rfc4180() {
        let p = |s: &str| fields(parse(s, 100).unwrap());
        assert_eq!(p("a,b\r\n1,2\r\n"), vec![vec!["a", "b"], vec!["1", "2"]]);
        assert_eq!(p("a,b\n1,2"), vec![vec!["a", "b"], vec!["1", "2"]]);
        assert_eq!(p("\u{feff}a\n\n\nb\n"), vec![vec!["a"], vec!["b"]]);
        assert_eq!(p("\"x,\"\"y\"\"\nz\",\n"), vec![vec!["x,\"y\"\nz", ""]]);
        assert_eq!(p(",\r\n"), vec![vec!["", ""]]);
        assert_eq!(p(""), Vec::<Vec<String>>::new());
        assert_eq!(p("é,ü\n"), vec![vec!["é", "ü"]]);
        let numbered = parse("h\n\nx\n\"multi\nline\"\ny", 100).unwrap();
        assert_eq!(numbered.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3, 4, 5]);
        assert_eq!(parse("a\n\"open", 10), Err(ParseError::UnterminatedQuote { row: 2 }));
        assert_eq!(parse("a\"b", 10), Err(ParseError::StrayQuote { row: 1 }));
        assert_eq!(parse("\"a\"b", 10), Err(ParseError::StrayQuote { row: 1 }));
        assert_eq!(parse("a\nb\nc\n", 2), Err(ParseError::TooManyRows { max: 2 }));
        assert_eq!(parse("a\nb\n\n\n", 2).unwrap().len(), 2);
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 ]{0,6}",
            "[=+@\\-\t\r\n,\"' a-zé]{0,8}",
            any::<String>().prop_map(|s| s.chars().take(10).collect()),
        ]
    }

    fn rows() -> impl Strategy<Value = Vec<Vec<String>>> {
        // A record of one empty field is a blank line, which the parser skips.
        prop::collection::vec(prop::collection::vec(cell(), 1..6), 0..8)
            .prop_map(|rows| rows.into_iter().filter(|r| !(r.len() == 1 && r[0].is_empty())).collect())
    }

    proptest! {
        #[test]
        fn parse_reads_what_the_writer_wrote(rows in rows()) {
            prop_assert_eq!(fields(parse(&doc(&rows, false), 1000).unwrap()), rows.clone());
            // Guarded: the same cells, those a spreadsheet would evaluate prefixed with `'`.
            let guarded: Vec<Vec<String>> = rows.iter()
                .map(|r| r.iter().map(|c| if needs_guard(c) { format!("'{c}") } else { c.clone() }).collect())
                .collect();
            let back = fields(parse(&doc(&rows, true), 1000).unwrap());
            prop_assert_eq!(&back, &guarded);
            prop_assert!(back.iter().flatten().all(|c| !needs_guard(c)));
        }

        #[test]
        fn parse_never_panics(s in any::<String>(), max in 0usize..5) {
            let _ = parse(&s, max);
        }

        #[test]
        fn record_numbers_increase(rows in rows()) {
            let parsed = parse(&doc(&rows, true), 1000).unwrap();
            prop_assert!(parsed.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
