//! What every shop service shares: JSON records in `wasi:keyvalue` buckets keyed by id,
//! id counters, paging, timestamps and `wasi:logging`. The bindings for those host
//! interfaces are generated here once; services reuse them through `with`.

pub mod paging;
pub mod table;

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/host",
    generate_all,
});

pub use paging::Paging;
pub use table::{Claim, Claims, Table};

use wasi::logging::logging::{Level, log};

/// Logs a line through the host, which tags it with the component and correlation id.
pub fn info(context: &str, message: &str) {
    log(Level::Info, context, message);
}

pub fn warn(context: &str, message: &str) {
    log(Level::Warn, context, message);
}

/// Now, as RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// An id from a path: a positive integer.
pub fn parse_id(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|id| *id >= 1)
}

/// A request the service understood but refuses: 422 with why.
pub fn invalid(message: &str) -> guest_http::Response {
    guest_http::Response::error(422, "validation_error", message)
}

/// The host's storage failed: a 500 naming the cause, never a trap.
pub fn storage_error(message: String) -> guest_http::Response {
    guest_http::Response::error(500, "storage_error", &message)
}
