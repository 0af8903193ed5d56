//! How the client subcommands print: `-o text` (aligned tables and lines
//! for people) or `-o json` (one JSON document for scripts), and the text
//! helpers the tables share.

use std::fmt::Write as _;

use raftcfg_client::wire::MemberRole;
use serde::Serialize;

/// The choice of `-o/--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and lines for people.
    #[default]
    Text,
    /// One JSON document (ids are numbers below 2^53, values base64).
    Json,
}

/// The `-o/--output` flag of the commands that print a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct OutputArgs {
    /// How to print the result: text for people, json for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl OutputArgs {
    /// Whether JSON was asked for.
    pub fn json(self) -> bool {
        self.output == Output::Json
    }
}

/// Prints `value` as indented JSON and a newline.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A value for a line of text: UTF-8 as is (control characters escaped, so
/// one value stays on one line), anything else as `<N bytes>`.
pub fn display_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => {
            let mut shown = String::with_capacity(text.len());
            for c in text.chars() {
                if c.is_control() {
                    shown.extend(c.escape_default());
                } else {
                    shown.push(c);
                }
            }
            shown
        }
        Err(_) => format!("<{} bytes>", value.len()),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A member role as the tables show it.
pub fn role_name(role: MemberRole) -> &'static str {
    match role {
        MemberRole::Voter => "voter",
        MemberRole::Learner => "learner",
    }
}

/// The value, or `-` when there is none.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_as_one_line_of_text_or_a_size() {
        assert_eq!(display_value(b"postgres://db"), "postgres://db");
        assert_eq!(display_value(b"a\tb\nc"), "a\\tb\\nc");
        assert_eq!(display_value(b"\xff\x00\x01"), "<3 bytes>");
    }

    #[test]
    fn tables_align_columns_and_leave_no_trailing_spaces() {
        let text = table(
            &["ID", "NAME", "URL"],
            &[
                vec!["1".to_owned(), "first".to_owned(), "http://a".to_owned()],
                vec!["22".to_owned(), "b".to_owned(), String::new()],
            ],
        );
        assert_eq!(text, "ID  NAME   URL\n1   first  http://a\n22  b\n");
    }
}
