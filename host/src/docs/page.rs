//! `GET /docs`: the interactive API reference (Scalar), whose script is built into the
//! binary from the `scalar_api_reference` crate, so the page works with no internet access.

use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::http::responses::{self, Response};

/// Where the page loads its script from: this host.
pub(super) const SCRIPT_PATH: &str = "/docs/scalar.js";

/// The page: the reference of `/openapi.json`, rendered in the browser.
pub(super) fn page() -> Response {
    let config = json!({
        "url": super::OPENAPI_PATH,
        // Fonts would come from Scalar's servers; the system's fonts need no network.
        "withDefaultFonts": false,
        "hideClientButton": true,
        // Every operation listed at once: the page is the index of the whole API.
        "defaultOpenAllTags": true,
        "telemetry": false,
    });
    let html = scalar_api_reference::scalar_html(&config, Some(SCRIPT_PATH))
        .replace("<title>Scalar API Reference</title>", "<title>Trellis API reference</title>");
    responses::text(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// The page's script.
pub(super) fn script() -> Response {
    let Some(script) = scalar_api_reference::get_asset("scalar.js") else {
        return responses::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the API reference's script is missing",
        );
    };
    let mut response = http::Response::new(responses::body(script));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    // The script changes only with the binary.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}
