//! The host's own endpoints and the one small router they go through: which path answers
//! which methods on which listener. A known path with another method is 405 with `Allow`;
//! the admin API is checked for its token first, and is never served on the public listener.

use http::Method;
use hyper::body::Incoming;

use super::admin::{Admin, BreakerAction};
use super::health::Health;
use crate::http::responses::{self, Response};

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    Public,
    Admin,
}

/// One of the host's endpoints.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Live,
    Ready,
    Health,
    Metrics,
    Services,
    Reload,
    Breaker(BreakerAction),
    Messaging,
    Replay,
    Cluster,
}

const READ: &[Method] = &[Method::GET, Method::HEAD];
const WRITE: &[Method] = &[Method::POST];

/// Path, methods, endpoint: the public listener's table.
const PUBLIC: &[(&str, &[Method], Endpoint)] = &[
    ("/health", READ, Endpoint::Health),
    ("/health/live", READ, Endpoint::Live),
    ("/health/ready", READ, Endpoint::Ready),
    ("/metrics", READ, Endpoint::Metrics),
];

/// The admin listener's table.
const ADMIN: &[(&str, &[Method], Endpoint)] = &[
    ("/_trellis/services", READ, Endpoint::Services),
    ("/_trellis/reload", WRITE, Endpoint::Reload),
    ("/_trellis/breakers/open", WRITE, Endpoint::Breaker(BreakerAction::Open)),
    ("/_trellis/breakers/close", WRITE, Endpoint::Breaker(BreakerAction::Close)),
    ("/_trellis/breakers/reset", WRITE, Endpoint::Breaker(BreakerAction::Reset)),
    ("/_trellis/messaging", READ, Endpoint::Messaging),
    ("/_trellis/cluster", READ, Endpoint::Cluster),
    ("/_trellis/messaging/replay", WRITE, Endpoint::Replay),
];

/// The endpoint at `path` in `table`, if the method is one it answers; else the methods it
/// answers. `None` when no endpoint has that path.
fn find(
    table: &'static [(&'static str, &'static [Method], Endpoint)],
    method: &Method,
    path: &str,
) -> Option<Result<Endpoint, &'static [Method]>> {
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let &(_, methods, endpoint) = table.iter().find(|(p, _, _)| *p == path)?;
    Some(if methods.contains(method) { Ok(endpoint) } else { Err(methods) })
}

/// The handlers behind the host's endpoints.
pub(crate) struct Endpoints {
    pub health: Health,
    pub admin: Admin,
}

impl Endpoints {
    /// Answers a public request if it is for one of the host's endpoints.
    pub(crate) fn public(&self, method: &Method, path: &str) -> Option<Response> {
        if path == "/_trellis" || path.starts_with("/_trellis/") {
            return Some(responses::not_found(path));
        }
        Some(match find(PUBLIC, method, path)? {
            Ok(Endpoint::Live) => self.health.live(),
            Ok(Endpoint::Ready) => self.health.ready(),
            Ok(Endpoint::Health) => self.health.report(),
            Ok(_) => self.health.metrics(),
            Err(allowed) => responses::method_not_allowed(method, path, allowed),
        })
    }

    /// Answers every request on the admin listener.
    pub(crate) async fn admin(&self, request: http::Request<Incoming>) -> Response {
        if let Some(refused) = self.admin.refusal(&request) {
            return refused;
        }
        let path = request.uri().path().to_string();
        match find(ADMIN, request.method(), &path) {
            None => responses::not_found(&path),
            Some(Err(allowed)) => responses::method_not_allowed(request.method(), &path, allowed),
            Some(Ok(Endpoint::Services)) => self.admin.services(),
            Some(Ok(Endpoint::Reload)) => self.admin.reload().await,
            Some(Ok(Endpoint::Breaker(action))) => self.admin.breaker(action, request).await,
            Some(Ok(Endpoint::Messaging)) => self.admin.messaging(),
            Some(Ok(Endpoint::Replay)) => self.admin.replay(request).await,
            Some(Ok(Endpoint::Cluster)) => self.admin.cluster(),
            Some(Ok(_)) => responses::not_found(&path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_with_another_method_names_the_allowed_ones() {
        assert!(matches!(find(PUBLIC, &Method::GET, "/health/ready"), Some(Ok(Endpoint::Ready))));
        assert!(matches!(find(PUBLIC, &Method::HEAD, "/metrics/"), Some(Ok(Endpoint::Metrics))));
        assert_eq!(find(PUBLIC, &Method::POST, "/health").unwrap().unwrap_err(), READ);
        assert_eq!(find(ADMIN, &Method::GET, "/_trellis/reload").unwrap().unwrap_err(), WRITE);
        assert!(find(ADMIN, &Method::POST, "/_trellis/breakers/explode").is_none());
        assert!(find(PUBLIC, &Method::GET, "/hello").is_none());
    }
}
