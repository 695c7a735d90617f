//! The API's documentation, generated from the components themselves: `GET /openapi.json`
//! merges the OpenAPI documents the loaded components export (`trellis:http/openapi`) with
//! what the host adds (`merge`), current with every drop-in since it is built from the
//! registry's snapshot at each request; `GET /docs` is the interactive reference (`page`).
//! Both are public and outside every policy; the listener asks here before routing.

mod merge;
mod page;

use http::{Method, StatusCode};

use crate::http::responses::{self, Response};
use crate::policy::Policies;
use crate::registry::Snapshot;

pub(crate) const OPENAPI_PATH: &str = "/openapi.json";
const DOCS_PATH: &str = "/docs";

/// Answers a request for the documentation, if it is one.
pub(crate) fn answer(method: &Method, path: &str, snapshot: &Snapshot, policies: &Policies) -> Option<Response> {
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    if ![OPENAPI_PATH, DOCS_PATH, page::SCRIPT_PATH].contains(&path) {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(responses::method_not_allowed(method, path, &[Method::GET, Method::HEAD]));
    }
    Some(match path {
        OPENAPI_PATH => responses::json(StatusCode::OK, &merge::document(snapshot, policies)),
        DOCS_PATH => page::page(),
        _ => page::script(),
    })
}
