//! Events as tests drive them: a host over chosen components, publishing and requesting through
//! the `events` test component, and reading what subscribers received and what the bus reports.

use std::time::Duration;

use serde_json::Value;

use super::{Host, Reply};

/// Picking up a dropped or removed file: generous, since the machine may be busy compiling.
pub const PICKUP: Duration = Duration::from_secs(20);
/// Deliveries that have nothing in their way take milliseconds; this is for a busy machine.
pub const DELIVERY: Duration = Duration::from_secs(10);

/// A host serving copies of built components under the names given, with `config`.
pub fn host(components: &[(&str, &str)], config: &str) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("components");
    std::fs::create_dir(&folder).unwrap();
    for (component, name) in components {
        std::fs::copy(super::component(component), folder.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(dir.path().join("trellis.toml"), config).unwrap();
    Host::start_in(dir)
}

/// Publishes `data` on `topic` through the `events` component named `via`.
pub fn publish(host: &Host, via: &str, topic: &str, data: &str) -> Reply {
    post(host, &format!("/{via}/publish/{topic}"), data, None)
}

pub fn post(host: &Host, path: &str, body: &str, correlation_id: Option<&str>) -> Reply {
    let mut request = http::Request::builder().method("POST").uri(format!("{}{path}", host.public));
    if let Some(id) = correlation_id {
        request = request.header("x-correlation-id", id);
    }
    super::send(request.body(body.as_bytes().to_vec()).unwrap())
}

/// What the `events` component named `name` acknowledged, in order, and its deliveries.
pub fn received(host: &Host, name: &str) -> (Vec<Value>, Value) {
    let reply = host.get(&format!("/{name}/received"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    (json["received"].as_array().unwrap().clone(), json["deliveries"].clone())
}

pub fn data_received(host: &Host, name: &str) -> Vec<String> {
    received(host, name).0.iter().map(|r| r["data"].as_str().unwrap().to_string()).collect()
}

pub fn notifications(host: &Host, user_id: u64) -> Vec<Value> {
    let reply = host.get(&format!("/api/v1/users/{user_id}/notifications?page_size=100"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["items"].as_array().unwrap().clone()
}

pub fn messaging(host: &Host) -> Value {
    let reply = host.admin_get("/_trellis/messaging");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}
