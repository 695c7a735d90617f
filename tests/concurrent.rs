//! WASI 0.3 components (`wasi:http/handler@0.3`) served next to WASI 0.2 ones: one instance
//! answers several requests at once, and limits, deadlines, links with their breakers,
//! drop-in and metrics hold for them as for everything else.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Host, eventually};

/// Picking up a dropped or removed file: generous, since the machine may be busy compiling.
const PICKUP: Duration = Duration::from_secs(20);

/// Sends `n` requests for `path` at once, each from its own thread, and returns the replies.
fn at_once(host: &Host, path: &str, n: usize) -> Vec<support::Reply> {
    std::thread::scope(|scope| {
        let sent: Vec<_> = (0..n).map(|_| scope.spawn(|| host.get(path))).collect();
        sent.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn metric(host: &Host, series: &str) -> f64 {
    let metrics = host.get("/metrics").body;
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// `{"slept_ms", "instance", "in_flight"}` of each reply, which must all be 200.
fn sleepers(replies: &[support::Reply]) -> Vec<Value> {
    replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()
        })
        .collect()
}

#[test]
fn one_instance_answers_many_requests_at_once_while_they_await_a_timer() {
    let host = Host::start(&["hello", "hello-p3"]);
    let greeting = host.get("/hello-p3/");
    assert_eq!((greeting.status, greeting.body.as_str()), (200, "Hello from a WASI 0.3 component!\n"));
    assert_eq!(host.get("/hello/").status, 200, "a WASI 0.2 component is served next to it");

    let started = Instant::now();
    let answers = sleepers(&at_once(&host, "/hello-p3/sleep/500", 24));
    let elapsed = started.elapsed();
    let mut per_instance: HashMap<String, u64> = HashMap::new();
    for answer in &answers {
        *per_instance.entry(answer["instance"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let most_at_once = answers.iter().map(|a| a["in_flight"].as_u64().unwrap()).max().unwrap();
    assert!(most_at_once >= 2, "some instance held several requests at once: {answers:?}");
    assert!(per_instance.len() < 24, "fewer instances than requests: {per_instance:?}");
    assert!(elapsed < Duration::from_secs(10), "the sleeps overlapped: {elapsed:?}");
    let alive = metric(&host, "trellis_instances_alive{component=\"hello-p3\"}");
    assert!((1.0..24.0).contains(&alive), "instances are counted: {alive}");
}

#[test]
fn instance_concurrency_caps_the_requests_one_instance_takes() {
    let config = "[components.hello-p3]\ninstance_concurrency = 3\n";
    let host = Host::start_with(&["hello-p3"], config);
    let answers = sleepers(&at_once(&host, "/hello-p3/sleep/400", 12));
    let in_flight: Vec<u64> = answers.iter().map(|a| a["in_flight"].as_u64().unwrap()).collect();
    assert!(in_flight.iter().all(|&n| n <= 3), "never more than 3 at once in one instance: {in_flight:?}");
}

#[test]
fn a_request_past_its_deadline_gets_504_and_the_component_keeps_serving() {
    let config = "[components.hello-p3]\nrequest_timeout = 300\n";
    let host = Host::start_with(&["hello-p3"], config);
    let started = Instant::now();
    let late = host.get("/hello-p3/sleep/5000");
    assert_eq!((late.status, late.error_code()), (504, "deadline_exceeded".to_string()), "{}", late.body);
    assert!(started.elapsed() < Duration::from_secs(4), "answered at the deadline, not after the sleep");
    assert_eq!(host.get("/hello-p3/sleep/10").status, 200);
    assert_eq!(host.get("/hello-p3/").status, 200);
}

#[test]
fn an_oversized_body_is_refused_before_it_reaches_a_wasi_0_3_component() {
    let host = Host::start_with(&["hello-p3"], "[limits]\nmax_body_bytes = 1024\n");
    let url = format!("{}/hello-p3/", host.public);
    let request = http::Request::post(url).body(vec![b'x'; 4096]).unwrap();
    let reply = support::send(request);
    assert_eq!((reply.status, reply.error_code()), (413, "payload_too_large".to_string()));
}

#[test]
fn calls_from_a_wasi_0_3_component_go_through_the_link_and_its_breaker() {
    let host = Host::start(&["testing/provider", "testing/p3-consumer"]);
    let greeting = host.get("/p3-consumer/greet/ann");
    assert_eq!((greeting.status, greeting.body.as_str()), (200, "Hello, ann!"));
    let link = support::link(&host, "p3-consumer", "test:greet/api@1.1.0");
    assert!(link.breaker.is_some(), "linked to the provider: {link:?}");

    let mut last = String::new();
    for _ in 0..20 {
        let reply = host.get("/p3-consumer/misbehave/trap");
        assert_eq!(reply.status, 503, "a trapping provider is unavailable to its caller: {}", reply.body);
        last = reply.body;
    }
    assert!(last.contains("circuit breaker open"), "the breaker opened: {last}");
    let breaker = support::breaker(&host, "p3-consumer", "test:greet/api@1.1.0");
    assert_eq!(breaker.state, support::StateName::Open);
    assert!(host.log().contains("component 'provider' trapped"), "the trap is the provider's");
}

#[test]
fn a_wasi_0_3_component_is_replaced_under_load_without_a_failed_request_and_removed_cleanly() {
    let host = Host::start(&["hello-p3"]);
    let path = host.components_dir().join("hello-p3.wasm");
    let replies = std::thread::scope(|scope| {
        let load = scope.spawn(|| at_once(&host, "/hello-p3/sleep/1500", 8));
        std::thread::sleep(Duration::from_millis(300));
        // A new file (a new time stamp) while those eight are in flight.
        let temporary = host.components_dir().join(".hello-p3.wasm.part");
        std::fs::copy(support::component("hello-p3"), &temporary).unwrap();
        let file = std::fs::File::options().write(true).open(&temporary).unwrap();
        file.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
        load.join().unwrap()
    });
    sleepers(&replies);
    eventually(PICKUP, "the replacement to load", || {
        host.log().matches("component loaded component=hello-p3").count() >= 2
    });
    assert_eq!(host.get("/hello-p3/").status, 200);

    std::fs::remove_file(&path).unwrap();
    eventually(PICKUP, "the removal", || host.get("/hello-p3/").status == 404);
    eventually(PICKUP, "its instances to end", || {
        metric(&host, "trellis_instances_alive{component=\"hello-p3\"}") == 0.0
    });
}

#[test]
fn inspect_says_which_wasi_a_component_serves() {
    let (ok, out, err) = support::trellis(&["inspect", support::component("hello-p3").to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("serves HTTP: yes (WASI 0.3"), "{out}");
    assert!(out.contains("wasi:http/handler@0.3.0"), "{out}");
    let (ok, out, err) = support::trellis(&["inspect", support::component("hello").to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("serves HTTP: yes (WASI 0.2)"), "{out}");
}
