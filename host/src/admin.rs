//! The admin API, served only on the admin listener: everything under `/_trellis/`.
//!
//! - `GET /_trellis/services`: components, exports, imports, links and breakers.
//! - `POST /_trellis/reload`: rescan the components folder now (new, changed, removed files).
//! - `POST /_trellis/breakers/{open|close|reset}` with `{"caller", "interface"}`: operator
//!   control of one link's breaker (force open, force closed, back to a fresh closed state).

use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::responses::{self, Response};
use crate::server::App;
use crate::status;

/// Admin request bodies are small JSON documents.
const MAX_ADMIN_BODY: usize = 64 * 1024;

pub async fn handle(app: &App, request: http::Request<Incoming>) -> Response {
    if let Some(token) = &app.admin_token
        && !authorized(&request, token)
    {
        let mut response = responses::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs `Authorization: Bearer TOKEN`",
        );
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        return response;
    }
    let path = request.uri().path().trim_end_matches('/').to_string();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/_trellis/services") => {
            responses::json(StatusCode::OK, &status::services(&app.registry.snapshot()))
        }
        (Method::POST, "/_trellis/reload") => match app.registry.rescan(&app.components_dir).await {
            Ok(()) => responses::json(StatusCode::OK, &status::services(&app.registry.snapshot())),
            Err(e) => responses::error(StatusCode::INTERNAL_SERVER_ERROR, "reload_failed", format!("{e:#}")),
        },
        (Method::POST, action) if action.starts_with("/_trellis/breakers/") => {
            let action = action.trim_start_matches("/_trellis/breakers/").to_string();
            breaker_control(app, &action, request).await
        }
        (_, "/_trellis/services") => wrong_method("GET", &path),
        (_, "/_trellis/reload") => wrong_method("POST", &path),
        (_, p) if p.starts_with("/_trellis/breakers/") => wrong_method("POST", &path),
        _ => responses::not_found(&path),
    }
}

/// Whether the request carries the admin token, compared in constant time.
fn authorized(request: &http::Request<Incoming>, token: &str) -> bool {
    let given = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(given) = given.and_then(|v| v.strip_prefix("Bearer ")) else { return false };
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn wrong_method(allowed: &str, path: &str) -> Response {
    responses::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{path} answers {allowed} only"))
}

/// Names one link's breaker: the importing component and the interface it imports
/// (with or without its version).
#[derive(Deserialize)]
struct BreakerRef {
    caller: String,
    interface: String,
}

async fn breaker_control(app: &App, action: &str, request: http::Request<Incoming>) -> Response {
    if !matches!(action, "open" | "close" | "reset") {
        return responses::not_found(&format!("/_trellis/breakers/{action} (actions: open, close, reset)"));
    }
    let body = match Limited::new(request.into_body(), MAX_ADMIN_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return responses::error(StatusCode::BAD_REQUEST, "bad_body", e.to_string()),
    };
    let target: BreakerRef = match serde_json::from_slice(&body) {
        Ok(target) => target,
        Err(e) => {
            let message = format!("expected {{\"caller\": ..., \"interface\": ...}}: {e}");
            return responses::error(StatusCode::BAD_REQUEST, "malformed_json", message);
        }
    };
    let snapshot = app.registry.snapshot();
    let link = snapshot.components.get(&target.caller).and_then(|c| {
        c.links.iter().find(|l| l.interface.full_name == target.interface || l.interface.name.base == target.interface)
    });
    let Some(link) = link else {
        let message = format!("component '{}' has no import {}", target.caller, target.interface);
        return responses::error(StatusCode::NOT_FOUND, "not_found", message);
    };
    let Some(linked) = link.target() else {
        let message = format!("{} of '{}' is not linked, so it has no breaker", target.interface, target.caller);
        return responses::error(StatusCode::CONFLICT, "unresolved", message);
    };
    match action {
        "open" => linked.breaker.force_open(),
        "close" => linked.breaker.force_closed(),
        _ => linked.breaker.reset(),
    }
    tracing::info!(caller = target.caller, interface = target.interface, action, "breaker changed by an operator");
    responses::json(StatusCode::OK, &serde_json::to_value(linked.breaker.snapshot()).unwrap_or_default())
}
