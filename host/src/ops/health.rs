//! Health on the public listener: `/health` (a report of every component), `/health/live`,
//! `/health/ready` and `/metrics`. `/health` and `/health/ready` judge by the same list of
//! problems, so they always agree on what is healthy.

use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::metrics::METRICS;
use super::report::{ComponentState, FailureReport};
use crate::breaker::StateName;
use crate::http::responses::{self, Response};
use crate::registry::{Registry, Snapshot};

/// What health needs: the loaded set and how long the host has been up.
pub(crate) struct Health {
    pub registry: Arc<Registry>,
    pub started: Instant,
}

/// `/health`.
#[derive(Debug, Serialize)]
struct HealthReport {
    /// "ok" when there is no problem, else "degraded".
    status: &'static str,
    uptime_seconds: u64,
    /// Why the host is not ready, as `/health/ready` lists them.
    problems: Vec<String>,
    components: Vec<ComponentHealth>,
    failed: Vec<FailureReport>,
}

#[derive(Debug, Serialize)]
struct ComponentHealth {
    name: String,
    version: Option<String>,
    digest: String,
    state: ComponentState,
    unresolved_imports: Vec<String>,
    breakers: Vec<BreakerHealth>,
}

#[derive(Debug, Serialize)]
struct BreakerHealth {
    interface: String,
    state: StateName,
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
            let status = if self.registry.loading() { "loading" } else { "not_ready" };
            responses::json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": status, "reasons": problems }))
        }
    }

    pub(crate) fn report(&self) -> Response {
        let snapshot = self.registry.snapshot();
        let problems = self.problems(&snapshot);
        let components = snapshot
            .components
            .values()
            .map(|c| ComponentHealth {
                name: c.name.to_string(),
                version: c.version(),
                digest: c.digest.clone(),
                state: ComponentState::of(c),
                unresolved_imports: c.unresolved().into_iter().map(|(i, _)| i).collect(),
                breakers: c
                    .links
                    .iter()
                    .filter_map(|l| {
                        let target = l.target()?;
                        Some(BreakerHealth { interface: l.interface.full_name.clone(), state: target.breaker.state() })
                    })
                    .collect(),
            })
            .collect();
        let report = HealthReport {
            status: if problems.is_empty() { "ok" } else { "degraded" },
            uptime_seconds: self.started.elapsed().as_secs(),
            problems,
            components,
            failed: snapshot.failures.values().map(FailureReport::of).collect(),
        };
        responses::json(StatusCode::OK, &report)
    }

    /// Everything that keeps the host from being ready: the first scan still running, files
    /// that failed with nothing serving in their place, and imports no provider serves. A
    /// refused replacement is not one: its previous version is loaded and serving.
    fn problems(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut problems = Vec::new();
        if self.registry.loading() {
            problems.push("loading: the components folder is still being scanned".to_string());
        }
        problems.extend(snapshot.unserved_failures().map(|f| format!("{}: failed to load: {}", f.name, f.error)));
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
