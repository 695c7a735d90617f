//! The host's public health and metrics endpoints: `/health`, `/health/live`,
//! `/health/ready` and `/metrics`.

use http::{Method, StatusCode};
use serde_json::json;

use crate::metrics::METRICS;
use crate::responses::{self, Response};
use crate::server::App;
use crate::status;

/// Answers a health or metrics path, or `None` if `path` is not one.
pub fn handle(app: &App, method: &Method, path: &str) -> Option<Response> {
    if !matches!(path, "/health" | "/health/live" | "/health/ready" | "/metrics") {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(responses::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} answers GET only"),
        ));
    }
    Some(match path {
        "/health/live" => responses::json(StatusCode::OK, &json!({ "status": "alive" })),
        "/health/ready" => ready(app),
        "/health" => health(app),
        _ => metrics(app),
    })
}

/// 200 only when every component is loaded and every import resolved; otherwise 503 with why.
fn ready(app: &App) -> Response {
    let snapshot = app.registry.snapshot();
    // A refused replacement is not a reason: its previous version is loaded and serving.
    let mut reasons: Vec<String> = snapshot
        .failures
        .values()
        .filter(|f| !snapshot.components.contains_key(&f.name))
        .map(|f| format!("{}: failed to load: {}", f.name, f.error))
        .collect();
    for c in snapshot.components.values() {
        for (interface, why) in status::unresolved(c) {
            reasons.push(format!("{}: import {interface} unresolved: {why}", c.name));
        }
    }
    if reasons.is_empty() {
        responses::json(StatusCode::OK, &json!({ "status": "ready" }))
    } else {
        responses::json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "not_ready", "reasons": reasons }))
    }
}

fn health(app: &App) -> Response {
    let snapshot = app.registry.snapshot();
    let components: Vec<_> = snapshot
        .components
        .values()
        .map(|c| {
            let breakers: Vec<_> = c
                .links
                .iter()
                .filter_map(|l| {
                    l.target().map(|t| json!({ "interface": l.interface.full_name, "state": t.breaker.state() }))
                })
                .collect();
            json!({
                "name": &*c.name,
                "version": c.digest,
                "state": status::state(c),
                "unresolved_imports": status::unresolved(c).into_iter().map(|(i, _)| i).collect::<Vec<_>>(),
                "breakers": breakers,
            })
        })
        .collect();
    let degraded = !snapshot.failures.is_empty() || components.iter().any(|c| c["state"] != "ready");
    responses::json(
        StatusCode::OK,
        &json!({
            "status": if degraded { "degraded" } else { "ok" },
            "uptime_seconds": app.started.elapsed().as_secs(),
            "components": components,
            "failed": snapshot.failures.values().collect::<Vec<_>>(),
        }),
    )
}

/// The Prometheus exposition. Breakers move from open to half-open when looked at, so each
/// is looked at first for its gauge to be current.
fn metrics(app: &App) -> Response {
    for component in app.registry.snapshot().components.values() {
        for link in &component.links {
            if let Some(target) = link.target() {
                target.breaker.state();
            }
        }
    }
    let body = METRICS.encode();
    responses::text(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", body)
}
