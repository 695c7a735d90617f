//! Text from outside (file names, guest output, error messages) made safe for one log line.

/// `text` on one line: control characters (newlines, escape sequences) written as escapes, so
/// that nothing a file name or a component writes can forge a log line or a terminal's state.
pub(crate) fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            super::one_line("a\nINFO forged \u{1b}[31mred\t'quoted'"),
            "a\\nINFO forged \\u{1b}[31mred\\t'quoted'"
        );
    }
}
