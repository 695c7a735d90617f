//! How a component's names become what JetStream allows: a namespace becomes a bucket name
//! (`[A-Za-z0-9_-]`), and a (bucket, key) pair of any bytes becomes a key of two tokens
//! (`[-/_=.A-Za-z0-9]`, dot-separated). Every other byte is escaped as a mark and two hex
//! digits, the mark itself included, so different names never meet; the empty string is the
//! mark alone. Keys stay readable in `nats kv ls` (`user:1` is `user=3A1`). A dozen lines, so
//! no crate: percent-encoding's `%` is not allowed in either place.

/// The JetStream key-value bucket holding a component's data in the cluster `cluster`.
pub(super) fn bucket(cluster: &str, namespace: &str) -> String {
    format!("trellis-{cluster}-kv-{}", safe_name(namespace))
}

/// `name` as JetStream names buckets, streams and consumers: `[A-Za-z0-9_-]`.
pub(crate) fn safe_name(name: &str) -> String {
    escape(name, b'_', |b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The key of `key` in the component's bucket `bucket`: `<bucket>.<key>`, each escaped.
pub(super) fn key(bucket: &str, key: &str) -> String {
    format!("{}.{}", token(bucket), token(key))
}

/// The escaped token of one name: the prefix of every key of a bucket is `token(bucket).`.
pub(super) fn token(name: &str) -> String {
    escape(name, b'=', |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
}

/// The component's key of an escaped `<bucket>.<key>` token pair, if it is one.
pub(super) fn unkey(token: &str) -> Option<String> {
    let (_, key) = token.split_once('.')?;
    unescape(key, b'=')
}

fn escape(name: &str, mark: u8, keep: impl Fn(u8) -> bool) -> String {
    if name.is_empty() {
        return char::from(mark).to_string();
    }
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("{}{b:02X}", char::from(mark)));
        }
    }
    out
}

fn unescape(token: &str, mark: u8) -> Option<String> {
    if token.as_bytes() == [mark] {
        return Some(String::new());
    }
    let (bytes, mut out, mut i) = (token.as_bytes(), Vec::with_capacity(token.len()), 0);
    while i < bytes.len() {
        if bytes[i] == mark {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_any_text_round_trip_and_stay_allowed() {
        for name in ["", "user:1", "a.b", "=", "x y/é", "orders:00000000000000000042", "..", "*>"] {
            let encoded = key("users", name);
            let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.');
            assert!(encoded.bytes().all(allowed), "{encoded}");
            assert_eq!(encoded.matches('.').count(), 1, "{encoded}");
            assert_eq!(unkey(&encoded).as_deref(), Some(name), "{encoded}");
        }
        assert_eq!(key("", "user:1"), "=.user=3A1");
    }

    #[test]
    fn bucket_names_are_distinct_and_allowed() {
        assert_eq!(bucket("shop", "user-service"), "trellis-shop-kv-user-service");
        assert_ne!(bucket("shop", "a.b"), bucket("shop", "a_b"));
        assert!(bucket("shop", "v1.2_beta").bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
