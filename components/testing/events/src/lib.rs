//! A test component for `wasi:messaging`, served under `/NAME/` (NAME: its file name):
//!
//! - `POST /NAME/publish/TOPIC` publishes the body on TOPIC (204 once the host stored it).
//! - `POST /NAME/request/TOPIC?timeout_ms=N&expected=N` sends the body as a request and
//!   answers `{"replies": [...]}`.
//! - `POST /NAME/connect/CLIENT` connects to a client by name (204, or 503 with the error).
//! - `PUT /NAME/mode` with `{"sleep_ms": N}`: each delivery takes that long.
//! - `GET /NAME/received` lists what it acknowledged, in order, and how often each message
//!   was delivered.
//!
//! For the benchmark, `bench.>` messages are acknowledged at once; one whose data is
//! `t:NANOS` (the Unix time it was sent) first notes how long it took to arrive. Notes are
//! kept in the instance until a message `flush` stores them (or 100,000 are kept), so the
//! handler's own writes are not part of what is measured; `GET /NAME/latencies` lists them
//! (in nanoseconds).
//!
//! It subscribes to `test.>` and `bench.>`. A `test.>` delivery is counted durably before anything else; a message
//! `trap` makes it trap, `fail` makes it answer an error (not in the `fixed` build),
//! `sleep:MS` makes it take MS milliseconds; a request gets the reply `re:DATA`.

use guest_http::{Answer, Request, Response};
use serde_json::{Value, json};
use service_kit::wasi::keyvalue::{atomics, store};
use service_kit::wasi::messaging::producer;
use service_kit::wasi::messaging::types::{Client, Error, Message};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::trellis::messaging::subscriptions;
use exports::wasi::messaging::incoming_handler;
use wasi::messaging::request_reply::{self, RequestOptions};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "trellis:worlds/events-test",
    with: {
        "wasi:keyvalue/store@0.2.0-draft2": service_kit::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": service_kit::wasi::keyvalue::atomics,
        "wasi:keyvalue/batch@0.2.0-draft2": service_kit::wasi::keyvalue::batch,
        "trellis:keyvalue/ordered@0.1.0": service_kit::trellis::keyvalue::ordered,
        "trellis:keyvalue/sequences@0.1.0": service_kit::trellis::keyvalue::sequences,
        "wasi:logging/logging@0.1.0-draft": service_kit::wasi::logging::logging,
        "wasi:messaging/types@0.2.0-draft": service_kit::wasi::messaging::types,
        "wasi:messaging/producer@0.2.0-draft": service_kit::wasi::messaging::producer,
        "trellis:messaging/outbox@0.1.0": service_kit::trellis::messaging::outbox,
    },
    generate_all,
});

struct Events;

/// Latencies noted for `bench.>` messages, not stored yet.
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

export!(Events);
wasip2::http::proxy::export!(Events);

fn bucket() -> Result<store::Bucket, Response> {
    store::open("events").map_err(|e| Response::error(500, "storage", &format!("{e:?}")))
}

fn failed(e: Error) -> Response {
    Response::error(503, "messaging", &format!("{e:?}"))
}

impl wasip2::exports::http::incoming_handler::Guest for Events {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        guest_http::serve(request, out, |request| Ok(route(request).unwrap_or_else(|refusal| refusal)));
    }
}

fn route(request: Request) -> Answer {
    let segments: Vec<String> = request.segments().into_iter().skip(1).map(str::to_string).collect();
    let body = request.body.clone();
    match (request.method.as_str(), segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("POST", ["publish", topic]) => {
            let client = Client::connect("default").map_err(failed)?;
            producer::send(&client, topic, Message::new(&body)).map_err(failed)?;
            Ok(Response::empty())
        }
        ("POST", ["request", topic]) => {
            let client = Client::connect("default").map_err(failed)?;
            let options = RequestOptions::new();
            if let Some(ms) = request.query_param("timeout_ms").and_then(|t| t.parse().ok()) {
                options.set_timeout_ms(ms);
            }
            if let Some(n) = request.query_param("expected").and_then(|t| t.parse().ok()) {
                options.set_expected_replies(n);
            }
            let replies =
                request_reply::request(&client, topic, &Message::new(&body), Some(options)).map_err(failed)?;
            let replies: Vec<String> =
                replies.iter().map(|m| String::from_utf8_lossy(&m.data()).into_owned()).collect();
            Ok(Response::json(200, &json!({ "replies": replies })))
        }
        ("POST", ["connect", name]) => {
            Client::connect(name).map_err(failed)?;
            Ok(Response::empty())
        }
        ("PUT", ["mode"]) => {
            let mode: Value = request.json()?;
            let sleep_ms = mode["sleep_ms"].as_u64().unwrap_or(0);
            bucket()?
                .set("mode/sleep-ms", sleep_ms.to_string().as_bytes())
                .map_err(|e| Response::error(500, "storage", &format!("{e:?}")))?;
            Ok(Response::empty())
        }
        ("GET", ["received"]) => received(),
        ("GET", ["latencies"]) => latencies(),
        _ => Err(Response::not_found(&request.path)),
    }
}

/// The latencies recorded for `bench.>` messages, in nanoseconds.
fn latencies() -> Answer {
    let bucket = store::open("bench").map_err(|e| Response::error(500, "storage", &format!("{e:?}")))?;
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            bucket.list_keys(cursor.as_deref()).map_err(|e| Response::error(500, "storage", &format!("{e:?}")))?;
        for key in &page.keys {
            let value = bucket.get(key).ok().flatten().unwrap_or_default();
            found.extend(String::from_utf8_lossy(&value).split(',').filter_map(|n| n.parse::<u64>().ok()));
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Response::json(200, &json!({ "latencies_ns": found })))
}

/// What it acknowledged, in order, and how often each message was delivered.
fn received() -> Answer {
    let bucket = bucket()?;
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            bucket.list_keys(cursor.as_deref()).map_err(|e| Response::error(500, "storage", &format!("{e:?}")))?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let read = |key: &str| bucket.get(key).ok().flatten().unwrap_or_default();
    let mut received = Vec::new();
    let mut deliveries = serde_json::Map::new();
    keys.sort();
    for key in keys {
        if key.starts_with("r/") {
            received.push(serde_json::from_slice::<Value>(&read(&key)).unwrap_or(Value::Null));
        } else if let Some(id) = key.strip_prefix("d/") {
            let count = <[u8; 8]>::try_from(read(&key).as_slice()).map(i64::from_le_bytes).unwrap_or(-1);
            deliveries.insert(id.to_string(), json!(count));
        }
    }
    Ok(Response::json(200, &json!({ "received": received, "deliveries": deliveries })))
}

impl subscriptions::Guest for Events {
    fn subscriptions() -> Vec<String> {
        vec!["test.>".to_string(), "bench.>".to_string()]
    }
}

impl incoming_handler::Guest for Events {
    fn handle(message: Message) -> Result<(), Error> {
        let storage = |e: store::Error| Error::Other(format!("storage: {e:?}"));
        let topic = message.topic().unwrap_or_default();
        let data = String::from_utf8_lossy(&message.data()).into_owned();
        let metadata = message.metadata().unwrap_or_default();
        let meta = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default();
        let id = meta("message-id");
        if topic.starts_with("bench.") {
            let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(sent) = data.strip_prefix("t:").and_then(|t| t.parse::<u128>().ok()) {
                let now = wasip2::clocks::wall_clock::now();
                let now = u128::from(now.seconds) * 1_000_000_000 + u128::from(now.nanoseconds);
                notes.push(now.saturating_sub(sent).to_string());
            }
            if notes.len() >= 100_000 || (data == "flush" && !notes.is_empty()) {
                let bucket = store::open("bench").map_err(storage)?;
                bucket.set(&format!("lat/{id}"), notes.join(",").as_bytes()).map_err(storage)?;
                notes.clear();
            }
            return Ok(());
        }
        let bucket = store::open("events").map_err(storage)?;
        atomics::increment(&bucket, &format!("d/{id}"), 1).map_err(storage)?;
        let fixed = cfg!(feature = "fixed");
        if data == "trap" && !fixed {
            panic!("told to trap on message {id}");
        }
        if data == "fail" && !fixed {
            return Err(Error::Other(format!("told to fail on message {id}")));
        }
        let mode = bucket.get("mode/sleep-ms").map_err(storage)?.unwrap_or_default();
        let mode: u64 = String::from_utf8_lossy(&mode).parse().unwrap_or(0);
        let sleep_ms = data.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()).unwrap_or(mode);
        if sleep_ms > 0 {
            wasip2::clocks::monotonic_clock::subscribe_duration(sleep_ms * 1_000_000).block();
        }
        // A request gets its reply; for a published message there is no one to reply to.
        let _ = request_reply::reply(&message, Message::new(format!("re:{data}").as_bytes()));
        let n = atomics::increment(&bucket, "received", 1).map_err(storage)?;
        let record = json!({ "id": id, "topic": topic, "data": data, "correlation_id": meta("correlation-id") });
        bucket.set(&format!("r/{n:08}"), record.to_string().as_bytes()).map_err(storage)?;
        Ok(())
    }
}
