//! The admin API's handlers, served only on the admin listener (routing is `endpoints`'):
//!
//! - `GET /_trellis/services`: the services report.
//! - `POST /_trellis/reload`: rescan the components folder now (new, changed, removed files).
//! - `POST /_trellis/breakers/{open|close|reset}` with `{"caller", "interface"}`: operator
//!   control of one link's breaker (force open, force closed, back to a fresh closed state).
//! - `GET /_trellis/cluster`: the hosts of the cluster, what each runs, and the remote links.
//! - `GET /_trellis/messaging`: topics, subscribers with their lag, and dead letters.
//! - `POST /_trellis/messaging/replay`, optionally with `{"subscriber", "ids"}`: deliver dead
//!   letters again (all of them, one subscriber's, or only those numbered).

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::report::{ClusterReport, ServicesReport};
use crate::http::responses::{self, Response};
use crate::registry::Registry;

/// Admin request bodies are small JSON documents.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// What the admin API needs: the registry, the folder it rescans, and its token.
pub(crate) struct Admin {
    pub registry: Arc<Registry>,
    pub components_dir: PathBuf,
    /// When set, every admin request needs `Authorization: Bearer` with this token.
    pub token: Option<String>,
}

/// What an operator can do to a breaker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BreakerAction {
    Open,
    Close,
    Reset,
}

/// Which dead letters to replay: all when absent.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayRef {
    subscriber: Option<String>,
    ids: Option<Vec<u64>>,
}

/// Names one link's breaker: the importing component and the interface it imports
/// (with or without its version).
#[derive(Deserialize)]
struct BreakerRef {
    caller: String,
    interface: String,
}

impl Admin {
    /// The 401 to answer when a token is required and the request does not carry it.
    pub(crate) fn refusal(&self, request: &http::Request<Incoming>) -> Option<Response> {
        let token = self.token.as_ref()?;
        let given = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let given = given.and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
        // Their SHA-256 digests are compared, in constant time: neither the token's bytes nor
        // its length show in how long a wrong guess takes.
        let (given, token) = (Sha256::digest(given.as_bytes()), Sha256::digest(token.as_bytes()));
        let matches = given.iter().zip(token.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if matches {
            return None;
        }
        let mut response = responses::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs `Authorization: Bearer TOKEN`",
        );
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        Some(response)
    }

    pub(crate) fn services(&self) -> Response {
        responses::json(StatusCode::OK, &ServicesReport::of(&self.registry.snapshot()))
    }

    pub(crate) async fn reload(&self) -> Response {
        match self.registry.rescan(&self.components_dir).await {
            Ok(()) => self.services(),
            Err(e) => responses::error(StatusCode::INTERNAL_SERVER_ERROR, "reload_failed", format!("{e:#}")),
        }
    }

    pub(crate) fn cluster(&self) -> Response {
        let report = ClusterReport::of(self.registry.cluster(), &self.registry.snapshot());
        responses::json(StatusCode::OK, &report)
    }

    pub(crate) fn messaging(&self) -> Response {
        match self.registry.bus().status() {
            Ok(status) => responses::json(StatusCode::OK, &status),
            Err(e) => responses::error(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", format!("{e:#}")),
        }
    }

    pub(crate) async fn replay(&self, request: http::Request<Incoming>) -> Response {
        let body = match read_body(request).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let which: ReplayRef = match body.iter().all(u8::is_ascii_whitespace) {
            true => ReplayRef::default(),
            false => match serde_json::from_slice(&body) {
                Ok(which) => which,
                Err(e) => {
                    let message = format!("expected nothing, or {{\"subscriber\": ..., \"ids\": [...]}}: {e}");
                    return responses::error(StatusCode::BAD_REQUEST, "malformed_json", message);
                }
            },
        };
        match self.registry.bus().replay(which.subscriber.as_deref(), which.ids.as_deref()) {
            Ok(replayed) => responses::json(StatusCode::ACCEPTED, &replayed),
            Err(e) => responses::error(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", format!("{e:#}")),
        }
    }

    pub(crate) async fn breaker(&self, action: BreakerAction, request: http::Request<Incoming>) -> Response {
        let body = match read_body(request).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let target: BreakerRef = match serde_json::from_slice(&body) {
            Ok(target) => target,
            Err(e) => {
                let message = format!("expected {{\"caller\": ..., \"interface\": ...}}: {e}");
                return responses::error(StatusCode::BAD_REQUEST, "malformed_json", message);
            }
        };
        let snapshot = self.registry.snapshot();
        let link = snapshot.components.get(&target.caller).and_then(|c| {
            c.links
                .iter()
                .find(|l| l.interface.full_name == target.interface || l.interface.name.base == target.interface)
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
            BreakerAction::Open => linked.breaker.force_open(),
            BreakerAction::Close => linked.breaker.force_closed(),
            BreakerAction::Reset => linked.breaker.reset(),
        }
        tracing::info!(caller = target.caller, interface = target.interface, ?action, "breaker changed by an operator");
        responses::json(StatusCode::OK, &linked.breaker.snapshot())
    }
}

/// An admin request's body, up to [`MAX_ADMIN_BODY`].
async fn read_body(request: http::Request<Incoming>) -> Result<bytes::Bytes, Response> {
    match Limited::new(request.into_body(), MAX_ADMIN_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(responses::error(StatusCode::BAD_REQUEST, "bad_body", e.to_string())),
    }
}
