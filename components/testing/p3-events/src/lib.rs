//! Test WASI 0.3 component (served under `/p3-events/`) built against `wasi:messaging` exactly
//! as upstream types it (`wit/upstream/wasi-messaging.wit`): `client.connect`, `producer.send`,
//! `request-reply.request` and `.reply` are `async func`s it awaits, and its
//! `incoming-handler.handle` is an `async func` too.
//!
//! - `POST /p3-events/publish/TOPIC` publishes the body on TOPIC: 204 once the host stored it,
//!   503 with the error.
//! - `POST /p3-events/request/TOPIC?timeout_ms=N` sends the body as a request and answers
//!   `{"replies": [...]}`.
//! - `POST /p3-events/connect/CLIENT` connects to a client by name (204, or 503 with the error).
//!
//! It subscribes to `p3.>`. A message on `p3.ask.>` that is a request gets the reply
//! `re:DATA`; any other is passed on: it publishes `p3:DATA` on `test.from-p3` (from inside
//! its handler) before it acknowledges. A message `fail` is answered with an error.

mod bindings {
    wit_bindgen::generate!({
        // The WASI 0.3 WIT hello-p3 vendors, then upstream's messaging text and ours.
        path: [
            "../../hello-p3/wit/deps/clocks.wit",
            "../../hello-p3/wit/deps/random.wit",
            "../../hello-p3/wit/deps/filesystem.wit",
            "../../hello-p3/wit/deps/sockets.wit",
            "../../hello-p3/wit/deps/cli.wit",
            "../../hello-p3/wit/deps/http.wit",
            "../../../wit/upstream/wasi-messaging.wit",
            "../../../wit/deps/trellis-messaging/subscriptions.wit",
            "wit",
        ],
        world: "test:p3-events/p3-events",
        generate_all,
    });
}

use bindings::exports::trellis::messaging::subscriptions;
use bindings::exports::wasi::http::handler;
use bindings::exports::wasi::messaging::incoming_handler;
use bindings::wasi::http::types::{ErrorCode, Fields, Request, Response};
use bindings::wasi::messaging::producer;
use bindings::wasi::messaging::request_reply::{self, RequestOptions};
use bindings::wasi::messaging::types::{Client, Error, Message};
use bindings::{wit_future, wit_stream};

struct P3Events;

impl handler::Guest for P3Events {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).skip(1).map(String::from).collect();
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, _trailers) = Request::consume_body(request, done);
        let body = body.collect().await;
        let (status, text) = match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["publish", topic] => answer(publish(topic, body).await.map(|()| String::new())),
            ["request", topic] => answer(ask(topic, body, query).await),
            ["connect", name] => answer(Client::connect(name.to_string()).await.map(|_| String::new())),
            _ => (404, format!("no route for {path}")),
        };
        respond(status, text)
    }
}

async fn publish(topic: &str, data: Vec<u8>) -> Result<(), Error> {
    let client = Client::connect("default".to_string()).await?;
    producer::send(&client, topic.to_string(), Message::new(&data)).await
}

/// A request on `topic`; its replies as a JSON list of strings.
async fn ask(topic: &str, data: Vec<u8>, query: &str) -> Result<String, Error> {
    let client = Client::connect("default".to_string()).await?;
    let options = RequestOptions::new();
    if let Some(ms) = query.strip_prefix("timeout_ms=").and_then(|ms| ms.parse().ok()) {
        options.set_timeout_ms(ms);
    }
    let replies = request_reply::request(&client, topic.to_string(), &Message::new(&data), Some(options)).await?;
    let quoted: Vec<String> =
        replies.iter().map(|m| format!("{:?}", String::from_utf8_lossy(&m.data()).into_owned())).collect();
    Ok(format!("{{\"replies\":[{}]}}", quoted.join(",")))
}

fn answer(result: Result<String, Error>) -> (u16, String) {
    match result {
        Ok(text) if text.is_empty() => (204, text),
        Ok(json) => (200, json),
        Err(e) => (503, format!("{e:?}")),
    }
}

impl subscriptions::Guest for P3Events {
    fn subscriptions() -> Vec<String> {
        vec!["p3.>".to_string()]
    }
}

impl incoming_handler::Guest for P3Events {
    async fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        let data = String::from_utf8_lossy(&message.data()).into_owned();
        if data == "fail" {
            return Err(Error::Other(format!("told to fail on {topic}")));
        }
        if topic.starts_with("p3.ask.") {
            return request_reply::reply(&message, Message::new(format!("re:{data}").as_bytes())).await;
        }
        publish("test.from-p3", format!("p3:{data}").into_bytes()).await
    }
}

/// A response with the whole body, written by a task of its own once the response is sent.
fn respond(status: u16, text: String) -> Result<Response, ErrorCode> {
    let body = text.into_bytes();
    let content_type: &[u8] = if body.starts_with(b"{") { b"application/json" } else { b"text/plain; charset=utf-8" };
    let headers = Fields::from_list(&[
        ("content-type".to_string(), content_type.to_vec()),
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

bindings::export!(P3Events with_types_in bindings);
