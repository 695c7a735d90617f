//! The responses the host itself writes: JSON errors in the one shape every client can rely
//! on (`{"error": {"code", "message"}}`), and JSON or text bodies for its own endpoints.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Every response body the host sends, whether a component or the host wrote it.
pub(crate) type Body = HyperOutgoingBody;
pub(crate) type Response = http::Response<Body>;

pub(crate) fn body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}"));
    let mut response = http::Response::new(body(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn text(status: StatusCode, content_type: &'static str, text: String) -> Response {
    let mut response = http::Response::new(body(text));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `{"error": {"code": code, "message": message}}` with the given status.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": { "code": code, "message": message.into() } }))
}

pub(crate) fn not_found(path: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no route for {path}"))
}

/// 405 naming the methods `path` answers, in the message and in the `Allow` header.
pub(crate) fn method_not_allowed(method: &http::Method, path: &str, allowed: &[http::Method]) -> Response {
    let list: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
    let list = list.join(", ");
    let message = format!("{method} is not allowed on {path}; allowed: {list}");
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message);
    if let Ok(allow) = HeaderValue::from_str(&list) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}
