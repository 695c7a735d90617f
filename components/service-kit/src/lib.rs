//! What every shop service shares: JSON records in `wasi:keyvalue` buckets keyed by id,
//! id counters, indexes and totals written atomically with their records (`index`), paging,
//! timestamps, `wasi:logging`, events through `wasi:messaging` (`events`), serving a request with the service's
//! version, and the `trellis:http/routes` export ([`export_routes!`]). The bindings for the
//! host interfaces are generated here once; services reuse them through `with`.

pub mod events;
pub mod index;
pub mod openapi;
pub mod paging;
pub mod table;

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/service",
    generate_all,
});

pub use index::{Changes, Index, index_existing, read_count};
pub use paging::Paging;
pub use table::{StorageError, Table};

use guest_http::{Answer, Response};
use wasi::logging::logging::{Level, log};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// Implements a service's `trellis:http/routes` export from its route table. The service's
/// own bindings (`exports::trellis::http::routes`) must be in scope where it is invoked.
///
/// ```ignore
/// service_kit::export_routes!(UserService, [("GET", "/api/v1/users"), ("POST", "/api/v1/users")]);
/// ```
#[macro_export]
macro_rules! export_routes {
    ($service:ty, [$(($method:literal, $pattern:literal)),* $(,)?]) => {
        impl exports::trellis::http::routes::Guest for $service {
            fn routes() -> Vec<exports::trellis::http::routes::Route> {
                vec![$(exports::trellis::http::routes::Route {
                    method: $method.to_string(),
                    pattern: $pattern.to_string(),
                }),*]
            }
        }
    };
}

/// Serves one request with `route`, naming the service's `version` in `x-service-version` on
/// every answer, refusals included.
pub fn serve(
    incoming: IncomingRequest,
    out: ResponseOutparam,
    version: &str,
    route: impl FnOnce(guest_http::Request) -> Answer,
) {
    guest_http::serve(incoming, out, |request| {
        let response = route(request).unwrap_or_else(|refusal| refusal);
        Ok(response.with_header("x-service-version", version))
    });
}

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

/// A JSON number with no fractional part as the integer it is: `3` and `3.0` alike, as JSON
/// has one number type. None for fractions, negative numbers, non-numbers, and past `u64`.
pub fn whole_number(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let n = value.as_f64()?;
        (n.fract() == 0.0 && n >= 0.0 && n < u64::MAX as f64).then_some(n as u64)
    })
}

/// A request the service understood but refuses: 422 with why.
pub fn invalid(message: &str) -> Response {
    Response::error(422, "validation_error", message)
}
