//! Test `wasi:http` component that tries what a hostile guest would, served under `/hostile/`:
//!
//! - `fetch?url=http://HOST:PORT/PATH`: an outgoing GET; answers `status N: BODY` or
//!   `error: CODE` with the `wasi:http` error the host gave.
//! - `shout?lines=N`: writes N lines to stdout, each with a terminal escape sequence in it,
//!   and one to stderr; answers `shouted N`.
//! - `forge`: logs through `wasi:logging` a message with a newline, a forged log line and
//!   terminal escapes in it; answers `forged`.
//! - `hoard?kib=K`: stores values of K KiB in its bucket until the host refuses one; answers
//!   `stored N: ERROR`.
//! - `handles?n=N`: opens N buckets and keeps them (host-side resources); answers `opened N`
//!   unless the host stops it first.
//! - `cas?n=N`: makes N compare-and-swap handles on one 1 MiB value (each holds a copy on
//!   the host); answers `held N: ERROR` when the host refuses one.
//! - `grow?mib=N`: touches N MiB of its memory and answers `grew N`: the instance stays that
//!   big, so the host should not keep it warm.

use guest_http::{Answer, Request, Response};
use service_kit::wasi::keyvalue::{atomics, store};
use service_kit::wasi::logging::logging::{Level, log};
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
        Some("forge") => {
            let forged = "honest\n2026-12-03T00:00:00Z  INFO trellis: admin token accepted \u{1b}[2Jcleared";
            log(Level::Warn, "forge\r\nctx", forged);
            Ok(Response::text(200, "forged"))
        }
        Some("hoard") => {
            let kib: usize = number(&request, "kib", 64);
            let bucket = store::open("hoard").map_err(|e| Response::text(500, format!("{e:?}")))?;
            let value = vec![7u8; kib * 1024];
            let mut stored = 0u64;
            let error = loop {
                match bucket.set(&format!("hoard-{stored}"), &value) {
                    Ok(()) => stored += 1,
                    Err(e) => break e,
                }
            };
            Ok(Response::text(200, format!("stored {stored}: {error:?}")))
        }
        Some("handles") => {
            let n: usize = number(&request, "n", 10);
            let buckets: Vec<_> = (0..n).filter_map(|_| store::open("hoard").ok()).collect();
            Ok(Response::text(200, format!("opened {}", buckets.len())))
        }
        Some("cas") => {
            let n: usize = number(&request, "n", 10);
            let bucket = store::open("cas").map_err(|e| Response::text(500, format!("{e:?}")))?;
            bucket.set("big", &vec![1u8; 1024 * 1024]).map_err(|e| Response::text(500, format!("{e:?}")))?;
            let mut handles = Vec::new();
            for _ in 0..n {
                match atomics::Cas::new(&bucket, "big") {
                    Ok(cas) => handles.push(cas),
                    Err(e) => return Ok(Response::text(200, format!("held {}: {e:?}", handles.len()))),
                }
            }
            Ok(Response::text(200, format!("held {}", handles.len())))
        }
        Some("grow") => {
            let mib: usize = number(&request, "mib", 1);
            let grown = vec![1u8; mib * 1024 * 1024];
            Ok(Response::text(200, format!("grew {}", grown.iter().filter(|b| **b == 1).count() / (1024 * 1024))))
        }
        _ => Err(Response::not_found(&request.path)),
    }
}

fn number(request: &Request, name: &str, default: usize) -> usize {
    request.query_param(name).and_then(|n| n.parse().ok()).unwrap_or(default)
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
