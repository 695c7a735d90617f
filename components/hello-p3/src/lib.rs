//! `hello-p3`: `hello` for WASI 0.3, an async `wasi:http/handler@0.3.0` with no
//! Trellis-specific export. Trellis serves it under `/hello-p3/` (its file name), and one
//! instance answers several requests at once; `wasmtime serve -Wcomponent-model-async=y
//! -Sp3=y` can serve it as it is.
//!
//! - any path: a greeting.
//! - `.../sleep/MS`: awaits a timer of MS milliseconds (at most 10 s) first, then says which
//!   instance answered and how many requests that instance held at once meanwhile, as JSON:
//!   `{"slept_ms": 300, "instance": "9f...", "in_flight": 12}`.

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "trellis:hello-p3/hello", generate_all });
}

use std::cell::Cell;

use bindings::exports::wasi::http::handler::Guest;
use bindings::wasi::clocks::monotonic_clock;
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::wasi::random::random;
use bindings::{wit_future, wit_stream};

/// The answer to every request but `sleep`.
const GREETING: &[u8] = b"Hello from a WASI 0.3 component!\n";
/// The longest sleep asked for that is honoured.
const MAX_SLEEP_MS: u64 = 10_000;

thread_local! {
    /// This instance's id, drawn once.
    static INSTANCE: Cell<Option<u64>> = const { Cell::new(None) };
    /// Requests this instance is holding now.
    static IN_FLIGHT: Cell<u32> = const { Cell::new(0) };
}

struct Hello;

impl Guest for Hello {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        let (body, content_type) = match sleep_ms(&path) {
            Some(ms) => (sleep(ms).await.into_bytes(), "application/json"),
            None => (GREETING.to_vec(), "text/plain; charset=utf-8"),
        };
        respond(content_type, body)
    }
}

/// The milliseconds a `.../sleep/MS` path asks for.
fn sleep_ms(path: &str) -> Option<u64> {
    let (_, ms) = path.split('?').next()?.rsplit_once("/sleep/")?;
    Some(ms.parse::<u64>().unwrap_or(0).min(MAX_SLEEP_MS))
}

/// Awaits the timer while counted in flight, and reports the most requests held at once
/// (when it arrived or when it woke).
async fn sleep(ms: u64) -> String {
    let arrived = IN_FLIGHT.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    monotonic_clock::wait_for(ms * 1_000_000).await;
    let woke = IN_FLIGHT.with(|n| {
        let now = n.get();
        n.set(now - 1);
        now
    });
    let instance = INSTANCE.with(|id| {
        let drawn = id.get().unwrap_or_else(random::get_random_u64);
        id.set(Some(drawn));
        drawn
    });
    format!("{{\"slept_ms\":{ms},\"instance\":\"{instance:016x}\",\"in_flight\":{}}}", arrived.max(woke))
}

/// A response with the whole body, written by a task of its own once the response is sent.
fn respond(content_type: &str, body: Vec<u8>) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[
        ("content-type".to_string(), content_type.as_bytes().to_vec()),
        ("content-length".to_string(), body.len().to_string().into_bytes()),
    ])
    .map_err(|e| ErrorCode::InternalError(Some(format!("headers: {e:?}"))))?;
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    wit_bindgen::spawn_local(async move {
        body_tx.write_all(body).await;
        drop(body_tx);
        let _ = trailers_tx.write(Ok(None)).await;
    });
    Ok(response)
}

bindings::export!(Hello with_types_in bindings);
