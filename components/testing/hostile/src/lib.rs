//! Test `wasi:http` component that tries what a hostile guest would, served under `/hostile/`:
//!
//! - `fetch?url=http://HOST:PORT/PATH`: an outgoing GET; answers `status N: BODY` or
//!   `error: CODE` with the `wasi:http` error the host gave.
//! - `shout?lines=N`: writes N lines to stdout, each with a terminal escape sequence in it,
//!   and one to stderr; answers `shouted N`.

use guest_http::{Answer, Request, Response};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingRequest, ResponseOutparam, Scheme};
use wasip2::io::streams::StreamError;

struct Hostile;

wasip2::http::proxy::export!(Hostile);

impl wasip2::exports::http::incoming_handler::Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        guest_http::serve(request, out, route);
    }
}

fn route(request: Request) -> Answer {
    match request.segments().get(1).copied() {
        Some("fetch") => {
            let url = request.query_param("url").ok_or_else(|| Response::error(400, "bad", "url= is required"))?;
            Ok(Response::text(200, fetch(url)))
        }
        Some("shout") => {
            let lines: u32 = request.query_param("lines").and_then(|n| n.parse().ok()).unwrap_or(1);
            for i in 0..lines {
                println!("shout {i} \u{1b}[2J\u{1b}[31mred");
            }
            eprintln!("complaint");
            Ok(Response::text(200, format!("shouted {lines}")))
        }
        _ => Err(Response::not_found(&request.path)),
    }
}

/// A GET of `url` (`http://` or `https://` only, no percent-decoding): what came back.
fn fetch(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => (Scheme::Http, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let pending = match outgoing_handler::handle(request, None) {
        Ok(pending) => pending,
        Err(code) => return format!("error: {code:?}"),
    };
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return format!("error: {code:?}"),
        other => return format!("error: no response ({other:?})"),
    };
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume()
        && let Ok(stream) = incoming.stream()
    {
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return format!("error: {}", e.to_debug_string()),
            }
        }
    }
    format!("status {status}: {}", String::from_utf8_lossy(&body))
}
