//! Test WASI 0.3 `wasi:http` component (served under `/p3-consumer/`) whose async handler
//! calls `test:greet/api@1.1.0` through Trellis, so tests can show that calls from a WASI
//! 0.3 component go through links and their breakers like any other:
//!
//! - `GET /p3-consumer/greet/{name}`: 200 with the greeting, 422 for a business error, 503
//!   when the provider is unavailable (the message says why).
//! - `GET /p3-consumer/misbehave/{none|trap|slow}?amount=N`: the same, asking the provider
//!   to fail.

mod bindings {
    wit_bindgen::generate!({
        // The WASI 0.3 WIT hello-p3 vendors, then the greet interface the consumer imports.
        path: [
            "../../hello-p3/wit/deps/clocks.wit",
            "../../hello-p3/wit/deps/random.wit",
            "../../hello-p3/wit/deps/filesystem.wit",
            "../../hello-p3/wit/deps/sockets.wit",
            "../../hello-p3/wit/deps/cli.wit",
            "../../hello-p3/wit/deps/http.wit",
            "../consumer/wit/deps/greet",
            "wit",
        ],
        world: "test:p3-consumer/p3-consumer",
        generate_all,
    });
}

use bindings::exports::wasi::http::handler::Guest;
use bindings::test::greet::api::{self, Error, Fault};
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::{wit_future, wit_stream};

struct Consumer;

impl Guest for Consumer {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let amount = query.strip_prefix("amount=").and_then(|n| n.parse().ok()).unwrap_or(0);
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (status, text) = match segments.as_slice() {
            [_, "greet", name] => answer(api::greet(name)),
            [_, "misbehave", how] => match fault(how) {
                Some(fault) => answer(api::misbehave(fault, amount)),
                None => (404, format!("no fault named {how}")),
            },
            _ => (404, format!("no route for {path}")),
        };
        respond(status, text)
    }
}

fn fault(name: &str) -> Option<Fault> {
    Some(match name {
        "none" => Fault::None,
        "trap" => Fault::Trap,
        "slow" => Fault::Slow,
        _ => return None,
    })
}

fn answer(result: Result<String, Error>) -> (u16, String) {
    match result {
        Ok(text) => (200, text),
        Err(Error::Invalid(why)) => (422, why),
        Err(Error::Unavailable(why)) => (503, why),
    }
}

fn respond(status: u16, text: String) -> Result<Response, ErrorCode> {
    let body = text.into_bytes();
    let headers = Fields::from_list(&[
        ("content-type".to_string(), b"text/plain; charset=utf-8".to_vec()),
        ("content-length".to_string(), body.len().to_string().into_bytes()),
    ])
    .map_err(|e| ErrorCode::InternalError(Some(format!("headers: {e:?}"))))?;
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    response.set_status_code(status).map_err(|()| ErrorCode::InternalError(Some("bad status".into())))?;
    wit_bindgen::spawn_local(async move {
        body_tx.write_all(body).await;
        drop(body_tx);
        let _ = trailers_tx.write(Ok(None)).await;
    });
    Ok(response)
}

bindings::export!(Consumer with_types_in bindings);
