//! The two HTTP listeners. The public one answers the host's public endpoints and routes
//! everything else to components; the admin one answers only the admin endpoints. Each
//! request gets its correlation id, one access-log line and its metrics here. Each listener
//! holds at most its budget of connections (the rest wait in the kernel's backlog), and
//! [`run`] serves until `shutdown` resolves, then drains: no new connections, requests in
//! flight finish (answered with `Connection: close`) for up to the shutdown timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::dispatch;
use super::edge::{Activity, Watched};
use super::forward::{FORWARDED_BY, Forwarder};
use super::responses::{self, Response};
use super::router::Lookup;
use crate::cluster::RemoteComponent;
use crate::component::LoadedComponent;
use crate::config::EdgeLimits;
use crate::docs;
use crate::ops::endpoints::{Endpoints, Listener};
use crate::ops::metrics::METRICS;
use crate::policy::{self, Passed, Policies};
use crate::registry::{Registry, Snapshot};

/// The header that carries a request's correlation id in and out.
pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

/// What the listeners serve: the host's own endpoints, and the registry's components.
pub(crate) struct Services {
    pub(crate) endpoints: Endpoints,
    pub(crate) registry: Arc<Registry>,
    pub(crate) limits: EdgeLimits,
    /// Set when draining starts; readiness answers 503 from then on.
    pub(crate) draining: Arc<AtomicBool>,
    /// In cluster mode: sends requests for other hosts' routes on to them.
    pub(crate) forwarder: Option<Forwarder>,
    /// Authentication, scopes, rate limits and CORS, checked before a component sees a request.
    pub(crate) policies: Policies,
}

/// Serves both listeners until `shutdown` completes, then drains for up to `drain_for`.
pub(crate) async fn run(
    services: Arc<Services>,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_for: Duration,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let public_loop = accept_loop(services.clone(), public, Listener::Public, &graceful);
    let admin_loop = accept_loop(services.clone(), admin, Listener::Admin, &graceful);
    tokio::select! {
        result = public_loop => result?,
        result = admin_loop => result?,
        () = shutdown => {}
    }
    services.draining.store(true, Ordering::Relaxed);
    let open = graceful.count();
    tracing::info!(open_connections = open, drain_for_ms = drain_for.as_millis() as u64, "draining");
    match tokio::time::timeout(drain_for, graceful.shutdown()).await {
        Ok(()) => tracing::info!("every connection finished"),
        Err(_) => tracing::warn!("the shutdown timeout passed with requests still in flight; stopping them"),
    }
    Ok(())
}

/// Accepts connections while fewer than the listener's budget are open, each served until it
/// ends, its client overstays a timeout, or draining closes it.
async fn accept_loop(
    services: Arc<Services>,
    listener: TcpListener,
    kind: Listener,
    graceful: &GracefulShutdown,
) -> anyhow::Result<()> {
    let budget = match kind {
        Listener::Public => services.limits.max_connections,
        Listener::Admin => services.limits.max_admin_connections,
    };
    let open = Arc::new(Semaphore::new(budget));
    loop {
        let slot = open.clone().acquire_owned().await?;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let services_for_requests = services.clone();
        let requests = activity.clone();
        let service = service_fn(move |request| {
            let services = services_for_requests.clone();
            let activity = requests.clone();
            activity.serving();
            async move {
                let response = handle(&services, request, peer.ip(), kind).await;
                activity.answered();
                Ok::<_, Infallible>(response)
            }
        });
        let limits = &services.limits;
        let connection = hyper::server::conn::http1::Builder::new()
            .max_buf_size(limits.max_header_bytes)
            .max_headers(limits.max_headers)
            .serve_connection(TokioIo::new(Watched::new(stream, activity.clone())), service);
        let connection = graceful.watch(connection);
        let services = services.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                why = activity.expired(&services.limits) => tracing::debug!(why, "connection closed"),
            }
            drop(slot);
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
async fn handle(services: &Services, request: http::Request<Incoming>, peer: IpAddr, listener: Listener) -> Response {
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
        Listener::Public => public(services, request, peer, correlation_id.clone()).instrument(span).await,
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

/// The public listener: host endpoints first, then component routes here or on another host,
/// each behind its policy.
async fn public(
    services: &Services,
    request: http::Request<Incoming>,
    peer: IpAddr,
    correlation_id: Arc<str>,
) -> (Response, Served) {
    let (mut parts, body) = request.into_parts();
    policy::strip_identity(&mut parts.headers);
    let path = parts.uri.path();
    if let Some(response) = services.endpoints.public(&parts.method, path) {
        return (response, Served::host(path));
    }
    let snapshot = services.registry.snapshot();
    if let Some(response) = docs::answer(&parts.method, path, &snapshot, &services.policies) {
        return (response, Served::host(path));
    }
    if let Some(asked) = policy::preflight_method(&parts)
        && let Ok(target) = target(services, &snapshot, &parts, &asked)
        && let Some(rule) = services.policies.find(path, target.component())
        && let Some(response) = services.policies.preflight(rule, &parts, &asked)
    {
        return (response, target.served());
    }
    let target = match target(services, &snapshot, &parts, &parts.method) {
        Ok(target) => target,
        Err(response) => return (*response, Served::host("-")),
    };
    let served = target.served();
    let passed = match services.policies.find(path, target.component()) {
        None => Passed::default(),
        Some(rule) => match services.policies.admit(rule, &mut parts, peer) {
            Ok(passed) => passed,
            Err(refusal) => return (*refusal, served),
        },
    };
    let request = http::Request::from_parts(parts, body);
    let body_timeout = services.limits.body_read_timeout;
    let mut response = match target {
        Target::Local(component, _) => dispatch::serve(component, request, correlation_id, body_timeout).await,
        Target::Remote(forwarder, component, _) => {
            let limits = &services.registry.config().limits;
            forwarder.forward(component, request, &correlation_id, limits, body_timeout).await
        }
    };
    passed.apply(&mut response);
    (response, served)
}

/// The component that answers a request: one here, or, in cluster mode and unless the request
/// was forwarded here already, one on another host.
enum Target<'a> {
    Local(Arc<LoadedComponent>, &'a str),
    Remote(&'a Forwarder, &'a RemoteComponent, &'a str),
}

impl Target<'_> {
    fn component(&self) -> &str {
        match self {
            Target::Local(component, _) => &component.name,
            Target::Remote(_, component, _) => &component.name,
        }
    }

    fn served(&self) -> Served {
        let (Target::Local(_, route) | Target::Remote(_, _, route)) = self;
        Served { component: self.component().to_string(), route: route.to_string() }
    }
}

/// Where a request for `method` on the request's path goes, or the 404 / 405 answer.
fn target<'a>(
    services: &'a Services,
    snapshot: &'a Snapshot,
    request: &http::request::Parts,
    method: &Method,
) -> Result<Target<'a>, Box<Response>> {
    let path = request.uri.path();
    match snapshot.router.lookup(method, path) {
        Lookup::Found { component, pattern, .. } => {
            if let Some(found) = snapshot.components.get(component) {
                return Ok(Target::Local(found.clone(), pattern));
            }
        }
        Lookup::MethodNotAllowed { allowed } => {
            return Err(Box::new(responses::method_not_allowed(method, path, &allowed)));
        }
        Lookup::NotFound => {}
    }
    let (Some(forwarder), false) = (&services.forwarder, request.headers.contains_key(FORWARDED_BY)) else {
        return Err(Box::new(responses::not_found(path)));
    };
    match snapshot.remote.router.lookup(method, path) {
        Lookup::Found { component, pattern, .. } => match snapshot.remote.components.get(component) {
            Some(found) => Ok(Target::Remote(forwarder, found, pattern)),
            None => Err(Box::new(responses::not_found(path))),
        },
        Lookup::MethodNotAllowed { allowed } => Err(Box::new(responses::method_not_allowed(method, path, &allowed))),
        Lookup::NotFound => Err(Box::new(responses::not_found(path))),
    }
}
