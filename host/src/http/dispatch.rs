//! One HTTP request into a component: the body limit, an instance from the pool, the
//! `wasi:http` handler call in its own task (so the body can stream while the guest writes
//! it), the deadline, and the mapping of every failure to the host's JSON errors. A WASI 0.3
//! component's request goes to its concurrent instances instead of the pool.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::oneshot::Receiver;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};

use super::responses::{self, Response};
use crate::component::{Http, LoadedComponent, Unanswered};
use crate::runtime::{CallContext, Fault};

/// After refusing an oversized body, the host reads and discards up to this much more of it
/// so the client, still sending, reliably gets the 413 instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Serves `request` with `component`, which must export `wasi:http/incoming-handler` (0.2)
/// or `wasi:http/handler` (0.3).
pub(crate) async fn serve(
    component: Arc<LoadedComponent>,
    request: http::Request<Incoming>,
    correlation_id: Arc<str>,
    body_timeout: Duration,
) -> Response {
    let limits = &component.limits;
    let deadline = Instant::now() + limits.request_timeout;
    let (mut parts, body) = request.into_parts();
    let read = read_body(body, limits.max_body_bytes, content_length(&parts.headers));
    let body = match tokio::time::timeout_at(deadline.min(Instant::now() + body_timeout).into(), read).await {
        Ok(Ok(body)) => body,
        Ok(Err(response)) => return response,
        Err(_) => {
            let message = format!("the request body did not arrive within {} ms", body_timeout.as_millis());
            let mut response = responses::error(StatusCode::REQUEST_TIMEOUT, "body_timeout", message);
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    // The body is read whole: the guest gets it with its length, as if declared. `wasi:http`
    // hides `transfer-encoding` from guests, so a chunked body would otherwise look absent to
    // one that trusts RFC 9112's rule (no length and no transfer coding: no body).
    if !body.is_empty() || parts.headers.contains_key(header::CONTENT_LENGTH) {
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    parts.headers.remove(header::TRANSFER_ENCODING);
    if !parts.headers.contains_key(header::HOST) && parts.uri.authority().is_none() {
        parts.headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let body = Full::new(body).map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} });
    let request = http::Request::from_parts(parts, body);

    let call = CallContext { deadline, depth: 0, correlation_id };
    if let Some(Http::V0_3(http)) = component.http() {
        return match http.handle(request.map(BodyExt::boxed_unsync), call).await {
            Ok(response) => response,
            Err(Unanswered::ErrorCode(code)) => error_code_response(&component.name, &code),
            Err(Unanswered::Fault(fault)) => fault_response(&fault),
        };
    }
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let owner = component.clone();
    let mut guest = Box::pin(async move {
        owner
            .invoke(call, async |warm| {
                let proxy = owner.proxy(warm)?;
                let request = warm.store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
                let out = warm.store.data_mut().http().new_response_outparam(sender)?;
                proxy.wasi_http_incoming_handler().call_handle(&mut warm.store, request, out).await
            })
            .await
    });
    // Drive the guest in this task until it has answered: most finish within their first
    // poll, which saves a task and a cross-thread wake-up. One that answers and then keeps
    // streaming its body finishes in a task of its own; the deadline bounds both.
    let first = std::future::poll_fn(|cx| Poll::Ready(guest.as_mut().poll(cx))).await;
    if let Poll::Ready(finished) = first {
        return finished_response(&component.name, receiver, finished).await;
    }
    let mut receiver = receiver;
    tokio::select! {
        biased;
        finished = &mut guest => finished_response(&component.name, receiver, finished).await,
        answered = &mut receiver => {
            tokio::spawn(tracing::Instrument::in_current_span(guest));
            match answered {
                Ok(Ok(response)) => response,
                Ok(Err(code)) => error_code_response(&component.name, &code),
                Err(_) => responses::error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the response channel closed"),
            }
        }
    }
}

/// The answer once the guest's handler has returned: the response it sent, or why there is none.
async fn finished_response(
    component: &str,
    mut receiver: Receiver<Result<Response, ErrorCode>>,
    finished: Result<(), Fault>,
) -> Response {
    match receiver.try_recv() {
        Ok(Ok(response)) => whole(response).await,
        Ok(Err(code)) => error_code_response(component, &code),
        Err(_) => match finished {
            Err(fault) => fault_response(&fault),
            Ok(()) => responses::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_response",
                format!("component '{component}' returned without sending a response"),
            ),
        },
    }
}

/// A response whose guest has finished has its whole body waiting in memory: gathering it
/// lets hyper send headers and body in one write instead of several.
async fn whole(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => Response::from_parts(parts, collected.map_err(|never| match never {}).boxed_unsync()),
        Err(e) => responses::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "component_error",
            format!("the response body failed: {e}"),
        ),
    }
}

fn error_code_response(component: &str, code: &impl std::fmt::Debug) -> Response {
    let message = format!("component '{component}' answered with error {code:?}");
    responses::error(StatusCode::INTERNAL_SERVER_ERROR, "component_error", message)
}

/// The host's answer when a component failed before sending its response.
fn fault_response(fault: &Fault) -> Response {
    let (status, code) = match fault {
        Fault::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        Fault::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Fault::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        Fault::OutOfMemory(_) => (StatusCode::INTERNAL_SERVER_ERROR, "out_of_memory"),
        Fault::Instantiation { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "instantiation_failed"),
        Fault::Trap { component, reason } => {
            tracing::warn!(component, reason, "component trapped");
            (StatusCode::INTERNAL_SERVER_ERROR, "component_trapped")
        }
    };
    responses::error(status, code, fault.to_string())
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the whole body if it fits in `limit`; otherwise drains what the client still sends
/// (up to [`DRAIN_LIMIT`]) and answers 413.
pub(super) async fn read_body(mut body: Incoming, limit: u64, declared: Option<u64>) -> Result<Bytes, Response> {
    let too_large = || {
        let mut response = responses::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        );
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    let mut buffer = BytesMut::new();
    let mut seen: u64 = 0;
    let mut over = declared.is_some_and(|len| len > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            responses::error(StatusCode::BAD_REQUEST, "bad_body", format!("cannot read the request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        over |= seen > limit;
        if over {
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        buffer.extend_from_slice(&data);
    }
    if over { Err(too_large()) } else { Ok(buffer.freeze()) }
}
