//! The two HTTP listeners. The public one answers the host's public endpoints and routes
//! everything else to components; the admin one answers only the admin endpoints. Each
//! request gets its correlation id, one access-log line and its metrics here. Both run until
//! `shutdown` resolves: [`run`] is what `trellis serve` and the tests call.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::dispatch;
use super::responses::{self, Response};
use super::router::Lookup;
use crate::ops::endpoints::{Endpoints, Listener};
use crate::ops::metrics::METRICS;
use crate::registry::Registry;

/// The header that carries a request's correlation id in and out.
pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

/// What the listeners serve: the host's own endpoints, and the registry's components.
pub(crate) struct Services {
    pub endpoints: Endpoints,
    pub registry: Arc<Registry>,
}

/// Serves both listeners until `shutdown` completes.
pub(crate) async fn run(
    services: Arc<Services>,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let public_loop = accept_loop(services.clone(), public, Listener::Public);
    let admin_loop = accept_loop(services, admin, Listener::Admin);
    tokio::select! {
        result = public_loop => result,
        result = admin_loop => result,
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn accept_loop(services: Arc<Services>, listener: TcpListener, kind: Listener) -> anyhow::Result<()> {
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
        let services = services.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let services = services.clone();
                async move { Ok::<_, Infallible>(handle(&services, request, kind).await) }
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
async fn handle(services: &Services, request: http::Request<Incoming>, listener: Listener) -> Response {
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
        Listener::Public => public(services, request, correlation_id.clone()).instrument(span).await,
        Listener::Admin => {
            let response = services.endpoints.admin(request).instrument(span).await;
            (response, Served::host("admin"))
        }
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
async fn public(services: &Services, request: http::Request<Incoming>, correlation_id: Arc<str>) -> (Response, Served) {
    let path = request.uri().path();
    if let Some(response) = services.endpoints.public(request.method(), path) {
        let served = Served::host(path);
        return (response, served);
    }
    let snapshot = services.registry.snapshot();
    let found = match snapshot.router.lookup(request.method(), path) {
        Lookup::Found { component, pattern, .. } => snapshot.components.get(component).map(|c| (c.clone(), pattern)),
        Lookup::MethodNotAllowed { allowed } => {
            return (responses::method_not_allowed(request.method(), path, &allowed), Served::host("-"));
        }
        Lookup::NotFound => None,
    };
    let Some((component, route)) = found else { return (responses::not_found(path), Served::host("-")) };
    let served = Served { component: component.name.to_string(), route: route.to_string() };
    (dispatch::serve(component, request, correlation_id).await, served)
}
