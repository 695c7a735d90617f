//! Live drop-in: components added, replaced and removed while the host serves traffic,
//! with no failed request, dependents relinked, and broken files changing nothing.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Host, eventually};

/// Picking up a dropped file: generous, since the machine may be busy compiling.
const PICKUP: Duration = Duration::from_secs(20);

/// Copies a built component into the host's folder the way a deploy script would: write a
/// temporary name, then rename into place.
fn deploy(host: &Host, component: &str, as_name: &str) {
    let target = host.components_dir().join(format!("{as_name}.wasm"));
    let temporary = host.components_dir().join(format!(".{as_name}.wasm.part"));
    std::fs::copy(support::component(component), &temporary).unwrap();
    std::fs::rename(&temporary, &target).unwrap();
}

fn digest(host: &Host, name: &str) -> Option<String> {
    host.services().components.into_iter().find(|c| c.name == name).map(|c| c.digest)
}

/// An order for user 1.
fn order() -> Value {
    json!({
        "user_id": 1,
        "items": [{ "product_id": 1, "product_name": "Widget", "quantity": 1, "price": 2.5 }],
        "shipping_address": "1 Main St"
    })
}

fn failure(host: &Host, name: &str) -> Option<String> {
    host.services().failed.into_iter().find(|f| f.name == name).map(|f| f.error)
}

#[test]
fn a_component_dropped_in_while_serving_answers_within_seconds() {
    let host = Host::start(&[]);
    assert_eq!(host.get("/hello/").status, 404);
    std::fs::copy(support::component("hello"), host.components_dir().join("hello.wasm")).unwrap();
    eventually(PICKUP, "the dropped component to answer", || host.get("/hello/").status == 200);
}

#[test]
fn a_provider_dropped_in_resolves_the_components_waiting_for_it() {
    let host = Host::start(&["testing/consumer"]);
    assert_eq!(host.get("/consumer/greet/Ada").status, 503);
    deploy(&host, "testing/provider", "greeter");
    eventually(PICKUP, "the consumer to be linked", || host.get("/consumer/greet/Ada").status == 200);
}

#[test]
fn replacing_a_provider_under_load_fails_no_request_and_switches_behaviour() {
    let host = Host::start(&["testing/consumer"]);
    deploy(&host, "testing/provider", "greeter");
    eventually(PICKUP, "the first version", || host.get("/consumer/greet/Ada").body == "Hello, Ada!");
    let stop = AtomicBool::new(false);
    let failures = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let reply = host.get("/consumer/greet/Ada");
                if reply.status != 200 {
                    failures.push(reply.body);
                }
            }
            failures
        });
        deploy(&host, "testing/provider-newer", "greeter");
        eventually(PICKUP, "the new version", || host.get("/consumer/greet/Ada").body == "Hello, Ada! (1.4.0)");
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap()
    });
    assert!(failures.is_empty(), "failed requests during the swap: {failures:?}");
}

#[test]
fn replacing_the_user_service_three_times_while_orders_flow_fails_nothing_and_keeps_the_data() {
    let host = Host::start(&["user-service", "order-service"]);
    let version = || host.get("/api/v1/users").header("x-service-version").map(str::to_string);
    assert_eq!(version().as_deref(), Some("0.1.0"));
    let user = host.send("POST", "/api/v1/users", Some(&json!({ "name": "Ada", "email": "ada@example.com" })));
    assert_eq!(user.status, 201);
    let order = order();
    let stop = AtomicBool::new(false);
    let (created, failures) = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let (mut created, mut failures) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let reply = host.send("POST", "/api/v1/orders", Some(&order));
                match reply.status {
                    201 => created += 1,
                    _ => failures.push(format!("{} {}", reply.status, reply.body)),
                }
            }
            (created, failures)
        });
        // Three releases in place: the successor, back to the current build, the successor again.
        let releases = [("testing/user-service-next", "0.2.0-next"), ("user-service", "0.1.0")];
        for round in 0..3 {
            let (build, expected) = releases[round % 2];
            let path = host.components_dir().join("user-service.wasm");
            std::fs::copy(support::component(build), &path).unwrap();
            touch_later(&path, round as u64);
            eventually(PICKUP, "the new release to answer", || version().as_deref() == Some(expected));
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap()
    });
    assert!(failures.is_empty(), "failed requests during replacements: {failures:?}");
    assert!(created > 3, "orders kept flowing ({created})");
    let log = host.log_when(|log| log.matches("component loaded component=user-service").count() >= 4);
    assert!(log.matches("component loaded component=user-service").count() >= 4, "{log}");
    let user = host.get("/api/v1/users/1");
    assert_eq!(user.header("x-service-version"), Some("0.2.0-next"), "the last release answers");
    assert_eq!(user.json()["email"], "ada@example.com", "the replaced service kept its data");
}

/// Gives each rewrite a distinct modification time even on coarse-grained file systems.
fn touch_later(path: &Path, round: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let time = std::time::SystemTime::now() + Duration::from_secs(round + 1);
    file.set_modified(time).unwrap();
}

#[test]
fn removing_a_dependency_makes_dependents_answer_503_and_adding_it_back_heals_them() {
    let host = Host::start(&["user-service", "order-service"]);
    host.send("POST", "/api/v1/users", Some(&json!({ "name": "Ada", "email": "ada@example.com" })));
    let order = order();
    assert_eq!(host.send("POST", "/api/v1/orders", Some(&order)).status, 201);

    std::fs::remove_file(host.components_dir().join("user-service.wasm")).unwrap();
    eventually(PICKUP, "the removal", || host.get("/api/v1/users/1").status == 404);
    let reply = host.send("POST", "/api/v1/orders", Some(&order));
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("shop:users/api"), "{}", reply.body);
    let ready = host.get("/health/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("shop:users/api"), "{}", ready.body);

    deploy(&host, "user-service", "user-service");
    eventually(PICKUP, "the user service to be back", || {
        host.send("POST", "/api/v1/orders", Some(&order)).status == 201
    });
    assert_eq!(host.get("/health/ready").status, 200);
    assert_eq!(host.get("/api/v1/users/1").json()["name"], "Ada", "its data was kept");
}

#[test]
fn a_garbage_file_dropped_in_changes_nothing_for_the_running_services() {
    let host = Host::start(&["hello", "testing/consumer", "testing/provider"]);
    std::fs::write(host.components_dir().join("garbage.wasm"), b"\0asm but not really").unwrap();
    eventually(PICKUP, "the garbage to be refused", || failure(&host, "garbage").is_some());
    assert_eq!(host.get("/hello/").status, 200);
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);

    // A broken replacement of a serving component: refused, and the old version keeps serving.
    let old = digest(&host, "hello");
    std::fs::write(host.components_dir().join("hello.wasm"), b"not wasm").unwrap();
    eventually(PICKUP, "the broken replacement to be refused", || failure(&host, "hello").is_some());
    assert!(failure(&host, "hello").unwrap().contains("not a WebAssembly component"));
    assert_eq!(host.get("/hello/").status, 200);
    assert_eq!(digest(&host, "hello"), old);
    assert!(
        host.log_when(|log| log.contains("hello.wasm is not a WebAssembly component"))
            .contains("hello.wasm is not a WebAssembly component")
    );
}

#[test]
fn a_replacement_that_would_break_its_dependents_is_refused() {
    let host = Host::start(&["testing/consumer"]);
    deploy(&host, "testing/provider", "greeter");
    eventually(PICKUP, "the link", || host.get("/consumer/greet/Ada").status == 200);
    deploy(&host, "testing/provider-mismatch", "greeter");
    eventually(PICKUP, "the refusal", || failure(&host, "greeter").is_some());
    let error = failure(&host, "greeter").unwrap();
    assert!(error.contains("replacement refused") && error.contains("type mismatch"), "{error}");
    assert_eq!(host.get("/consumer/greet/Ada").body, "Hello, Ada!", "the previous version keeps serving");
}

#[test]
fn a_file_still_being_written_is_not_loaded_until_it_is_complete() {
    let host = Host::start(&[]);
    let bytes = std::fs::read(support::component("hello")).unwrap();
    let path = host.components_dir().join("slow.wasm");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(host.get("/slow/").status, 404);
    assert!(failure(&host, "slow").is_none(), "a half-written file was never tried");
    file.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(file);
    eventually(PICKUP, "the finished file", || host.get("/slow/").status == 200);
    assert!(failure(&host, "slow").is_none());
}

#[test]
fn with_no_watch_only_a_reload_picks_up_changes() {
    let host = Host::start_with_args(&[], "", &["--no-watch"]);
    std::fs::copy(support::component("hello"), host.components_dir().join("hello.wasm")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(host.get("/hello/").status, 404, "not watching");
    assert_eq!(host.send("POST", "/_trellis/reload", None).status, 404, "admin only");
    let reload = host.admin_send("POST", "/_trellis/reload", None);
    assert_eq!(reload.status, 200);
    assert_eq!(host.get("/hello/").status, 200);
    std::fs::remove_file(host.components_dir().join("hello.wasm")).unwrap();
    host.admin_send("POST", "/_trellis/reload", None);
    assert_eq!(host.get("/hello/").status, 404);
}
