//! Topics and the patterns that subscribe to them, as NATS users know them: dot-separated
//! tokens; in a pattern `*` matches exactly one token and `>`, last, one or more.

use std::fmt;

/// Largest topic or pattern accepted, in bytes.
const MAX_TOPIC_BYTES: usize = 256;

/// Why `topic` cannot be published to, if it cannot: 1 to 256 bytes of dot-separated tokens,
/// none empty, none holding white space, no wildcard (those are for subscribing).
pub(crate) fn check_topic(topic: &str) -> Result<(), String> {
    check_tokens(topic, "topic")?;
    if topic.split('.').any(|t| t == "*" || t == ">") {
        return Err(format!("invalid topic {topic:?}: the wildcards * and > are for subscribing, not sending"));
    }
    Ok(())
}

fn check_tokens(text: &str, what: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_TOPIC_BYTES {
        return Err(format!("a {what} has 1 to {MAX_TOPIC_BYTES} bytes; {text:?} has {}", text.len()));
    }
    if text.split('.').any(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control())) {
        return Err(format!("invalid {what} {text:?}: dot-separated tokens, none empty, without white space"));
    }
    Ok(())
}

/// A subscription's topic pattern, e.g. `orders.>` or `users.*.deleted`. Stored as its text
/// (the bus keeps the topics of subscribers away); only [`TopicPattern::parse`] makes one
/// from outside input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TopicPattern(String);

impl TopicPattern {
    /// Reads a pattern, saying what is wrong with a bad one.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        check_tokens(text, "topic pattern")?;
        let tokens: Vec<&str> = text.split('.').collect();
        if let Some(at) = tokens.iter().position(|t| *t == ">")
            && at + 1 != tokens.len()
        {
            return Err(format!("invalid topic pattern {text:?}: > may only be its last token"));
        }
        if tokens.iter().any(|t| t.len() > 1 && (t.contains('*') || t.contains('>'))) {
            return Err(format!("invalid topic pattern {text:?}: * and > are whole tokens (orders.*, not orders.a*)"));
        }
        Ok(Self(text.to_string()))
    }

    /// Whether `topic` is one this pattern subscribes to.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        let mut topic = topic.split('.');
        for token in self.0.split('.') {
            match (token, topic.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (literal, Some(t)) if literal == t => {}
                _ => return false,
            }
        }
        topic.next().is_none()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        TopicPattern::parse(pattern).unwrap().matches(topic)
    }

    #[test]
    fn star_is_one_token_and_greater_than_is_the_rest() {
        assert!(matches("orders.>", "orders.created"));
        assert!(matches("orders.>", "orders.status-changed.eu"));
        assert!(!matches("orders.>", "orders"), "> needs at least one token");
        assert!(matches("users.*", "users.deleted"));
        assert!(!matches("users.*", "users.deleted.now"));
        assert!(matches("*.created", "orders.created"));
        assert!(matches("orders.created", "orders.created"));
        assert!(!matches("orders.created", "orders.created2"));
        assert!(!matches("orders.created.eu", "orders.created"));
    }

    #[test]
    fn bad_patterns_and_topics_say_what_is_wrong() {
        assert!(TopicPattern::parse("orders.>.x").unwrap_err().contains("last token"));
        assert!(TopicPattern::parse("orders.a*").unwrap_err().contains("whole tokens"));
        assert!(TopicPattern::parse("orders..x").unwrap_err().contains("none empty"));
        assert!(TopicPattern::parse("").unwrap_err().contains("1 to 256"));
        assert!(check_topic("orders.*").unwrap_err().contains("for subscribing"));
        assert!(check_topic("orders created").unwrap_err().contains("white space"));
        assert!(check_topic("orders.created").is_ok());
    }
}
