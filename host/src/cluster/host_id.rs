//! The host id a host takes when the config names none.

/// The machine's name and a random suffix: readable in a list of hosts, unique when several
/// hosts run on one machine.
pub(super) fn default_host_id() -> String {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        String::from_utf8_lossy(buf.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
    } else {
        String::new()
    };
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).take(40).collect();
    let name = if name.is_empty() { "host".to_string() } else { name };
    format!("{name}-{:04x}", rand::random::<u16>())
}
