//! The two HTTP listeners and what each serves. The public one routes to components and
//! answers the host's health and metrics endpoints; the admin one serves `/_trellis/...`.
//! Both run until `shutdown` resolves: `run` is what `trellis serve` and the tests call.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::incoming;
use crate::metrics::METRICS;
use crate::registry::Registry;
use crate::responses::{self, Response};
use crate::router::Lookup;

/// The header that carries a request's correlation id in and out.
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// Everything the listeners need.
pub struct App {
    pub registry: Arc<Registry>,
    /// The folder the components are loaded from (rescanned by `POST /_trellis/reload`).
    pub components_dir: std::path::PathBuf,
    /// When set, the admin API requires `Authorization: Bearer` with this token.
    pub admin_token: Option<String>,
    pub started: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    Public,
    Admin,
}

/// Serves both listeners until `shutdown` completes.
pub async fn run(
    app: Arc<App>,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let public_loop = accept_loop(app.clone(), public, Listener::Public);
    let admin_loop = accept_loop(app, admin, Listener::Admin);
    tokio::select! {
        result = public_loop => result,
        result = admin_loop => result,
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn accept_loop(app: Arc<App>, listener: TcpListener, kind: Listener) -> anyhow::Result<()> {
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(app, request, kind).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Where a request went, for the access log and metrics.
struct Served {
    component: String,
    route: String,
}

impl Served {
    fn host(route: &str) -> Self {
        Self { component: "-".into(), route: route.into() }
    }
}

/// One request on either listener, with its correlation id, access-log line and metrics.
async fn handle(app: Arc<App>, request: http::Request<Incoming>, listener: Listener) -> Response {
    let started = Instant::now();
    let correlation_id: Arc<str> = request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(format!("{:016x}", rand::random::<u64>())));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // Every log line of this request, the components' own included, carries its correlation id.
    let span = tracing::info_span!("request", correlation_id = &*correlation_id);
    let (mut response, served) = match listener {
        Listener::Public => public(&app, request, correlation_id.clone()).instrument(span).await,
        Listener::Admin => (crate::admin::handle(&app, request).instrument(span).await, Served::host("admin")),
    };
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    let status = response.status().as_u16();
    let took = started.elapsed();
    if listener == Listener::Public {
        METRICS.record_http(&served.component, &served.route, status, took);
    }
    tracing::info!(
        target: "access",
        %method,
        path,
        status,
        // Microsecond precision: 0.126, not 0.12551700000000002.
        latency_ms = (took.as_secs_f64() * 1e6).round() / 1000.0,
        component = served.component,
        correlation_id = &*correlation_id,
        "request"
    );
    response
}

/// The public listener: host endpoints first, then component routes.
async fn public(app: &App, request: http::Request<Incoming>, correlation_id: Arc<str>) -> (Response, Served) {
    let path = request.uri().path();
    if path == "/_trellis" || path.starts_with("/_trellis/") {
        return (responses::not_found(path), Served::host("-"));
    }
    if let Some(response) = crate::health::handle(app, request.method(), path) {
        let route = Served::host(path);
        return (response, route);
    }
    let snapshot = app.registry.snapshot();
    let (component, route) = match snapshot.router.lookup(request.method(), path) {
        Lookup::Found { component, pattern, .. } => (snapshot.components.get(component).cloned(), pattern.to_string()),
        Lookup::MethodNotAllowed { allowed } => {
            let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            let mut response = responses::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed on {path}; allowed: {}", request.method(), list.join(", ")),
            );
            if let Ok(allow) = HeaderValue::from_str(&list.join(", ")) {
                response.headers_mut().insert(http::header::ALLOW, allow);
            }
            return (response, Served::host("-"));
        }
        Lookup::NotFound => (None, String::new()),
    };
    let Some(component) = component else { return (responses::not_found(path), Served::host("-")) };
    let served = Served { component: component.name.to_string(), route };
    (incoming::serve(component, request, correlation_id).await, served)
}
