//! Text from the cluster, made safe for an operator's terminal.
//!
//! Names, reasons, notices and error messages come from the replicated
//! state or from a site, so from whoever could write there. Printed raw, an
//! escape sequence in one (`\x1b[2J`) would clear or rewrite the operator's
//! screen. Every control character is shown escaped instead (`\u{1b}`), so
//! what is printed is what is stored, visibly.

use std::borrow::Cow;

/// `text` with every control character escaped, newlines included.
pub fn escaped(text: &str) -> Cow<'_, str> {
    escaped_keeping(text, false)
}

/// `text` with every control character but the newline escaped: for
/// output that is already laid out in lines.
pub fn escaped_lines(text: &str) -> Cow<'_, str> {
    escaped_keeping(text, true)
}

fn escaped_keeping(text: &str, newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && !(newlines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        assert_eq!(escaped("<script>\x1b[2J"), "<script>\\u{1b}[2J");
        assert_eq!(escaped("a\nb\tc\u{7f}"), "a\\nb\\tc\\u{7f}");
        assert_eq!(escaped_lines("a\nb\x07"), "a\nb\\u{7}");
    }

    #[test]
    fn clean_text_is_left_alone() {
        assert!(matches!(escaped("東京 tokyo-1"), Cow::Borrowed(_)));
    }
}
