//! Operations: health and readiness, Prometheus metrics after real traffic, correlated logs
//! across components, the admin API's token, and the CLI (`status`, `--help`).

mod support;

use serde_json::{Value, json};
use support::{Host, StateName, trellis};

const SHOP: &[&str] = &["user-service", "order-service", "gateway"];

fn order(user_id: u64) -> Value {
    json!({
        "user_id": user_id,
        "items": [{ "product_id": 1, "product_name": "Widget", "quantity": 2, "price": 3.25 }],
        "shipping_address": "1 Main St"
    })
}

/// The value of one sample in a Prometheus exposition, by its full name and labels.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn public_health_names_each_component_and_its_state_and_the_admin_api_has_the_details() {
    let host = Host::start(SHOP);
    let health = host.get("/health");
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["status"], "ok");
    let components = health["components"].as_array().unwrap();
    assert_eq!(components.len(), 3);
    let orders = components.iter().find(|c| c["name"] == "order-service").unwrap();
    assert_eq!(orders, &json!({ "name": "order-service", "state": "ready" }), "names and states only");
    assert_eq!(host.get("/health/live").status, 200);
    assert_eq!(host.get("/health/ready").status, 200);

    let services = host.services();
    let orders = services.components.iter().find(|c| c.name == "order-service").unwrap();
    assert_eq!(orders.version.as_deref(), Some("0.2.0"), "the version its exports carry");
    assert_eq!(orders.digest.len(), 64, "a SHA-256: {}", orders.digest);
    let link = &orders.imports[0];
    assert_eq!(link.interface, "shop:users/api@0.1.0");
    assert_eq!(link.breaker.as_ref().unwrap().state, StateName::Closed);
}

#[test]
fn readiness_is_503_with_reasons_while_a_dependency_is_missing() {
    let host = Host::start(&["order-service", "gateway"]);
    let ready = host.get("/health/ready");
    assert_eq!(ready.status, 503);
    let reasons = ready.json()["reasons"].to_string();
    assert!(reasons.contains("order-service") && reasons.contains("shop:users/api@0.1.0"), "{reasons}");
    let health = host.get("/health").json();
    assert_eq!(health["status"], "degraded");
    let gateway = health["components"].as_array().unwrap().iter().find(|c| c["name"] == "gateway").unwrap().clone();
    assert_eq!(gateway["state"], "degraded");
    let unresolved: Vec<String> = support::link(&host, "gateway", "shop:users/api@0.1.0").reason.into_iter().collect();
    assert_eq!(unresolved.len(), 1, "the admin API says why");
    assert_eq!(host.get("/health/live").status, 200);
}

#[test]
fn metrics_count_requests_calls_storage_and_breaker_changes() {
    let host = Host::start(&["user-service", "order-service", "testing/consumer", "testing/provider"]);
    host.send("POST", "/api/v1/users", Some(&json!({ "name": "Ada", "email": "ada@example.com" })));
    for _ in 0..2 {
        assert_eq!(host.send("POST", "/api/v1/orders", Some(&order(1))).status, 201);
    }
    let metrics = host.get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.body;
    let series = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no sample {s} in:\n{text}"));
    assert_eq!(
        series(r#"trellis_http_requests_total{component="user-service",route="/api/v1/users",status="201"}"#),
        1.0
    );
    assert_eq!(
        series(r#"trellis_http_requests_total{component="order-service",route="/api/v1/orders",status="201"}"#),
        2.0
    );
    assert_eq!(
        series(
            r#"trellis_calls_total{caller="order-service",interface="shop:users/api@0.1.0",function="get-user",outcome="success"}"#
        ),
        2.0
    );
    assert_eq!(
        series(r#"trellis_http_request_duration_seconds_count{component="order-service",route="/api/v1/orders"}"#),
        2.0
    );
    assert!(
        series(r#"trellis_storage_operations_total{component="user-service",operation="write-and-send",result="ok"}"#)
            >= 1.0
    );
    assert_eq!(series(r#"trellis_component_loads_total{component="user-service",result="loaded"}"#), 1.0);
    assert!(series(r#"trellis_instances_alive{component="user-service"}"#) >= 1.0);
    let link = r#"{caller="consumer",interface="test:greet/api@1.1.0"}"#;
    assert_eq!(series(&format!("trellis_breaker_state{link}")), 0.0);

    let target = json!({ "caller": "consumer", "interface": "test:greet/api" });
    let forced = host.admin_send("POST", "/_trellis/breakers/open", Some(&target));
    assert_eq!(forced.status, 200);
    assert_eq!(host.get("/consumer/greet/Ada").status, 503);
    let text = host.get("/metrics").body;
    assert_eq!(sample(&text, &format!("trellis_breaker_state{link}")), Some(3.0), "forced open:\n{text}");
    let opened =
        r#"trellis_breaker_transitions_total{caller="consumer",interface="test:greet/api@1.1.0",to="forced-open"}"#;
    assert_eq!(sample(&text, opened), Some(1.0));
    let rejected = r#"trellis_calls_total{caller="consumer",interface="test:greet/api@1.1.0",function="greet",outcome="rejected"}"#;
    assert_eq!(sample(&text, rejected), Some(1.0));
}

#[test]
fn one_correlation_id_follows_an_order_through_both_services_logs() {
    let host = Host::start_with_args(&["user-service", "order-service"], "", &["--log-format", "json"]);
    host.send("POST", "/api/v1/users", Some(&json!({ "name": "Ada", "email": "ada@example.com" })));
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/api/v1/orders", host.public))
        .header("content-type", "application/json")
        .header("x-correlation-id", "order-trace-42")
        .body(order(1).to_string().into_bytes())
        .unwrap();
    let reply = support::send(request);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("x-correlation-id"), Some("order-trace-42"));

    // The access-log line is written last, after every line the request caused.
    let log =
        host.log_when(|log| log.lines().any(|l| l.contains("order-trace-42") && l.contains(r#""target":"access""#)));
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "the log is JSON lines:\n{}", host.log());
    let traced: Vec<&Value> = lines.iter().filter(|l| l.to_string().contains("order-trace-42")).collect();
    let from = |component: &str| traced.iter().any(|l| l["target"] == "guest" && l["component"] == component);
    assert!(from("order-service"), "no order-service line with the id: {traced:#?}");
    assert!(from("user-service"), "no user-service line with the id: {traced:#?}");
    let access = traced.iter().find(|l| l["target"] == "access").expect("an access-log line with the id");
    assert_eq!((access["method"].as_str(), access["status"].as_u64()), (Some("POST"), Some(201)));
    assert_eq!(access["component"], "order-service");
    assert!(access["latency_ms"].as_f64().is_some());
}

#[test]
fn the_admin_api_needs_the_token_when_one_is_set_and_status_uses_it() {
    let config = "[server]\nadmin_token = \"from-the-file\"\n";
    let host = Host::start_with_args(&["user-service", "order-service"], config, &["--admin-token", "s3cret"]);
    let denied = host.admin_get("/_trellis/services");
    assert_eq!((denied.status, denied.error_code().as_str()), (401, "unauthorized"));
    let allowed =
        support::request_with_header(&format!("{}/_trellis/services", host.admin), "Authorization", "Bearer s3cret");
    assert_eq!(allowed.status, 200, "the flag overrides the config file");
    assert_eq!(host.get("/_trellis/services").status, 404, "never on the public listener");

    let data = host.dir.path().join("data");
    let data = data.to_str().unwrap();
    let (ok, _, stderr) = trellis(&["status", "--data", data]);
    assert!(!ok && stderr.contains("401"), "{stderr}");
    let (ok, out, stderr) = trellis(&["status", "--data", data, "--admin-token", "s3cret"]);
    assert!(ok, "{stderr}");
    for expected in ["COMPONENT", "order-service", "user-service", "shop:users/api@0.1.0", "closed"] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }
}

#[test]
fn the_cli_explains_itself_and_reports_what_is_wrong() {
    let (ok, out, _) = trellis(&["--help"]);
    assert!(ok && out.contains("serve") && out.contains("status") && out.contains("inspect"), "{out}");
    let (ok, out, _) = trellis(&["serve", "--help"]);
    for flag in ["--components", "--listen", "--admin-listen", "--data", "--config", "--no-watch", "--admin-token"] {
        assert!(ok && out.contains(flag), "{flag} missing from:\n{out}");
    }
    let (ok, _, stderr) = trellis(&["status", "--data", "/nonexistent/trellis-data"]);
    assert!(!ok && stderr.contains("admin.addr"), "{stderr}");
    let (ok, _, stderr) = trellis(&["serve", "--config", "/nonexistent/trellis.toml"]);
    assert!(!ok && stderr.contains("cannot read config file"), "{stderr}");
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let missing = ["serve", "--components", "/nonexistent/components", "--data", data, "--no-watch"];
    let (ok, _, stderr) = trellis(&missing);
    assert!(!ok && stderr.contains("cannot read the components folder /nonexistent/components"), "{stderr}");
}

#[test]
fn liveness_answers_while_the_components_are_still_compiling_and_readiness_says_loading() {
    // An 18 MB component on a cold compile cache takes seconds to compile: the host serves
    // from the moment it is bound, and health and readiness agree that it is still loading.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("components")).unwrap();
    std::fs::copy(support::component("testing/python-hello"), dir.path().join("components/python-hello.wasm")).unwrap();
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    let mut host = Host::launch(dir, &[]);
    assert_eq!(host.get("/health/live").status, 200);
    let ready = host.get("/health/ready");
    assert_eq!((ready.status, ready.json()["status"].clone()), (503, json!("loading")), "{}", ready.body);
    let health = host.get("/health").json();
    assert_eq!(health["status"], "degraded", "health agrees with readiness: {health}");

    host.wait_until_loaded();
    assert_eq!(host.get("/health/ready").status, 200);
    assert_eq!(host.get("/health").json()["status"], "ok");
    assert_eq!(host.get("/python-hello/").status, 200);
}

#[test]
fn every_host_endpoint_answers_another_method_with_405_and_allow() {
    let host = Host::start(&["hello"]);
    for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
        let reply = host.send("POST", path, None);
        assert_eq!((reply.status, reply.header("allow")), (405, Some("GET, HEAD")), "{path}: {}", reply.body);
        assert_eq!(reply.error_code(), "method_not_allowed");
    }
    let admin = |method: &str, path: &str| host.admin_send(method, path, None);
    for (method, path, allowed) in [
        ("POST", "/_trellis/services", "GET, HEAD"),
        ("GET", "/_trellis/reload", "POST"),
        ("GET", "/_trellis/breakers/open", "POST"),
        ("DELETE", "/_trellis/breakers/reset", "POST"),
    ] {
        let reply = admin(method, path);
        assert_eq!((reply.status, reply.header("allow")), (405, Some(allowed)), "{method} {path}: {}", reply.body);
    }
    assert_eq!(admin("POST", "/_trellis/breakers/explode").status, 404);
}
