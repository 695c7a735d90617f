//! Serving a route of a component that runs on another host of the cluster: the request is
//! sent straight to one of its replicas' public HTTP listeners, taking turns, and the answer
//! streamed back.
//!
//! Straight over HTTP rather than over NATS: the request stays an HTTP request end to end
//! (no message size limit, no re-encoding; the answer's body streams back as it comes), the
//! receiving host applies its usual edge (limits, policies, access log, metrics), and NATS
//! carries only what needs it. The request's body is
//! read here first within this host's `max_body_bytes` and body timeout, so that a replica
//! that cannot be reached is skipped for the next one without losing it. The request carries
//! the header [`FORWARDED_BY`]: a host never forwards such a request again, and the
//! correlation id travels on in `x-correlation-id`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::dispatch::read_body;
use super::listener::CORRELATION_HEADER;
use super::responses::{self, Response};
use crate::cluster::RemoteComponent;
use crate::config::Limits;
use crate::ops::metrics::METRICS;

/// Set on a forwarded request, naming the host that forwarded it.
pub(crate) const FORWARDED_BY: &str = "trellis-forwarded-by";

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// Sends requests on to other hosts, over a pool of kept-alive connections.
pub(crate) struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    host_id: String,
    turn: AtomicUsize,
}

impl Forwarder {
    pub(crate) fn new(host_id: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        connector.set_nodelay(true);
        Self { client: Client::builder(TokioExecutor::new()).build(connector), host_id, turn: AtomicUsize::new(0) }
    }

    /// Serves `request` through one of `component`'s replicas; the next one when a replica
    /// cannot be reached; 503 when none can.
    pub(crate) async fn forward(
        &self,
        component: &RemoteComponent,
        request: http::Request<Incoming>,
        correlation_id: &str,
        limits: &Limits,
        body_timeout: Duration,
    ) -> Response {
        let deadline = Instant::now() + limits.request_timeout;
        let (mut parts, body) = request.into_parts();
        let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        let read = read_body(body, limits.max_body_bytes, declared);
        let body = match tokio::time::timeout(body_timeout.min(limits.request_timeout), read).await {
            Ok(Ok(body)) => body,
            Ok(Err(refused)) => return refused,
            Err(_) => {
                return responses::error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                );
            }
        };
        for name in HOP_BY_HOP {
            parts.headers.remove(*name);
        }
        parts.headers.insert(FORWARDED_BY, HeaderValue::from_str(&self.host_id).expect("host ids are header-safe"));
        if let Ok(id) = HeaderValue::from_str(correlation_id) {
            parts.headers.insert(CORRELATION_HEADER, id);
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let replicas = &component.replicas;
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut failures = Vec::new();
        for replica in (0..replicas.len()).map(|i| &replicas[(first + i) % replicas.len()]) {
            let mut request = http::Request::new(Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            *request.headers_mut() = parts.headers.clone();
            *request.uri_mut() = match format!("http://{}{path}", replica.http).parse() {
                Ok(uri) => uri,
                Err(e) => {
                    failures.push(format!("{}: bad address {:?}: {e}", replica.host, replica.http));
                    continue;
                }
            };
            let sent = tokio::time::timeout_at(deadline.into(), self.client.request(request)).await;
            let record = |status: &str| METRICS.record_forward(&component.name, &replica.host, status);
            match sent {
                Ok(Ok(response)) => {
                    record(response.status().as_str());
                    return response.map(|body| body.map_err(wasmtime_wasi_http::Error::Hyper).boxed_unsync());
                }
                Ok(Err(e)) if e.is_connect() => {
                    record("unreachable");
                    failures.push(format!("{} ({}) cannot be reached: {e}", replica.host, replica.http));
                }
                Ok(Err(e)) => {
                    record("failed");
                    let message = format!("host '{}' running '{}' failed to answer: {e}", replica.host, component.name);
                    return responses::error(StatusCode::BAD_GATEWAY, "forward_failed", message);
                }
                Err(_) => {
                    record("timeout");
                    let message =
                        format!("'{}' on host '{}' did not answer within the deadline", component.name, replica.host);
                    return responses::error(StatusCode::GATEWAY_TIMEOUT, "timeout", message);
                }
            }
        }
        let message = format!("no host running '{}' can be reached: {}", component.name, failures.join("; "));
        responses::error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}
