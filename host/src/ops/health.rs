//! Health on the public listener: `/health` (a report of every component), `/health/live`,
//! `/health/ready` and `/metrics`. `/health` and `/health/ready` judge by the same list of
//! problems, so they always agree on what is healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::metrics::METRICS;
use super::report::ComponentState;
use super::supervisor::Supervisor;
use crate::http::responses::{self, Response};
use crate::registry::{Registry, Snapshot};

/// What health needs: the loaded set, how long the host has been up, and whether it drains.
pub(crate) struct Health {
    pub(crate) registry: Arc<Registry>,
    pub(crate) started: Instant,
    /// Set when shutdown begins.
    pub(crate) draining: Arc<AtomicBool>,
    /// Background tasks, some of which may be down.
    pub(crate) supervisor: Arc<Supervisor>,
}

/// `/health`, on the public listener: names and states only. Versions, digests, breakers and
/// the errors of failed files are on the admin API (`/_trellis/services`).
#[derive(Debug, Serialize)]
struct HealthReport {
    /// "ok" when readiness is 200, else "degraded".
    status: &'static str,
    uptime_seconds: u64,
    components: Vec<ComponentHealth>,
    /// The names of files that failed to load.
    failed: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ComponentHealth {
    name: String,
    state: ComponentState,
}

impl Health {
    pub(crate) fn live(&self) -> Response {
        responses::json(StatusCode::OK, &json!({ "status": "alive" }))
    }

    /// 200 when there is no problem; otherwise 503 with them.
    pub(crate) fn ready(&self) -> Response {
        let problems = self.problems(&self.registry.snapshot());
        if problems.is_empty() {
            responses::json(StatusCode::OK, &json!({ "status": "ready" }))
        } else {
            let status = if self.draining.load(Ordering::Relaxed) {
                "draining"
            } else if self.registry.loading() {
                "loading"
            } else {
                "not_ready"
            };
            responses::json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": status, "reasons": problems }))
        }
    }

    pub(crate) fn report(&self) -> Response {
        let snapshot = self.registry.snapshot();
        let healthy = self.problems(&snapshot).is_empty();
        let components = snapshot
            .components
            .values()
            .map(|c| ComponentHealth { name: c.name.to_string(), state: ComponentState::of(c) })
            .collect();
        let report = HealthReport {
            status: if healthy { "ok" } else { "degraded" },
            uptime_seconds: self.started.elapsed().as_secs(),
            components,
            failed: snapshot.failures.keys().cloned().collect(),
        };
        responses::json(StatusCode::OK, &report)
    }

    /// Everything that keeps the host from being ready: the first scan still running, files
    /// that failed with nothing serving in their place, and imports no provider serves. A
    /// refused replacement is not one: its previous version is loaded and serving.
    fn problems(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut problems = Vec::new();
        if self.draining.load(Ordering::Relaxed) {
            problems.push("draining: the host is shutting down".to_string());
        }
        if self.registry.loading() {
            problems.push("loading: the components folder is still being scanned".to_string());
        }
        problems.extend(self.supervisor.problems());
        problems.extend(self.registry.cluster().map(|c| c.problems()).unwrap_or_default());
        // The error itself (file paths included) is for operators, on the admin API.
        let failed = snapshot.unserved_failures();
        problems.extend(failed.map(|f| format!("{}: failed to load (the admin API says why)", f.name)));
        for c in snapshot.components.values() {
            for (interface, why) in c.unresolved() {
                problems.push(format!("{}: import {interface} unresolved: {why}", c.name));
            }
        }
        problems
    }

    /// The Prometheus exposition. Breakers move from open to half-open when looked at, so each
    /// is looked at first for its gauge to be current.
    pub(crate) fn metrics(&self) -> Response {
        for component in self.registry.snapshot().components.values() {
            for link in &component.links {
                if let Some(target) = link.target() {
                    target.breaker.state();
                }
            }
        }
        let body = METRICS.encode();
        responses::text(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", body)
    }
}
