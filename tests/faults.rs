//! Fault containment: a component that panics, loops, exhausts memory, recurses without end,
//! answers slowly or fails some of its calls never takes down the host or slows the others;
//! callers get a clear error within their deadline, and the breaker cuts the fault off.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Host, Reply, Snapshot, StateName};

/// A generous bound on "within its deadline" for a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(4);

fn timed(f: impl FnOnce() -> Reply) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = f();
    (reply, started.elapsed())
}

fn breaker(host: &Host) -> Snapshot {
    support::breaker(host, "consumer", "test:greet/api@1.1.0")
}

#[test]
fn every_fault_of_a_plain_http_component_is_contained_to_its_request() {
    let host = Host::start_with(&["hello", "testing/faulty"], "[limits]\nrequest_timeout = 1000\n");
    let cases = [
        ("/faulty/panic", 500, "component_trapped"),
        ("/faulty/spin", 504, "deadline_exceeded"),
        ("/faulty/oom", 500, "out_of_memory"),
        ("/faulty/recurse", 500, "component_trapped"),
        ("/faulty/slow?ms=5000", 504, "deadline_exceeded"),
    ];
    for (path, status, code) in cases {
        let (reply, took) = timed(|| host.get(path));
        assert_eq!((reply.status, reply.error_code().as_str()), (status, code), "{path}: {}", reply.body);
        assert!(took < Duration::from_secs(1) + SLACK, "{path} took {took:?}");
        assert_eq!(host.get("/hello/").status, 200, "after {path}, the others still answer");
    }
    assert_eq!(host.get("/faulty/ok").status, 200, "and the faulty component itself recovers");
    assert_eq!(host.get("/faulty/slow?ms=10").status, 200);
}

#[test]
fn every_fault_of_a_provider_reaches_its_caller_as_unavailable_within_the_deadline() {
    let config = "[limits]\ncall_timeout = 500\n[breaker]\nminimum_calls = 100\n";
    let host = Host::start_with(&["testing/consumer", "testing/provider"], config);
    let cases = [
        ("trap", "trapped"),
        ("spin", "did not answer within the deadline"),
        ("oom", "ran out of its memory limit"),
        ("recurse", "trapped"),
        ("slow?amount=5000", "did not answer within the deadline"),
    ];
    for (fault, message) in cases {
        let (reply, took) = timed(|| host.get(&format!("/consumer/misbehave/{fault}")));
        assert_eq!(reply.status, 503, "{fault}: {}", reply.body);
        assert!(reply.body.contains(message) && reply.body.contains("test:greet/api@1.1.0"), "{fault}: {}", reply.body);
        assert!(took < Duration::from_millis(500) + SLACK, "{fault} took {took:?}");
        assert_eq!(host.get("/consumer/greet/Ada").status, 200, "after {fault}, the caller still works");
    }
    let breaker = breaker(&host);
    assert_eq!(breaker.failures, 5, "each fault counted as a failure: {breaker:?}");
}

#[test]
fn a_nested_call_gets_only_what_is_left_of_the_requests_deadline() {
    let config = "[limits]\nrequest_timeout = 600\ncall_timeout = 30000\n";
    let host = Host::start_with(&["testing/consumer", "testing/provider"], config);
    let (reply, took) = timed(|| host.get("/consumer/misbehave/spin"));
    // Both deadlines fall at the same instant: either the consumer answers first (503, the
    // callee was out of time) or the host does (504, the request was).
    assert!(matches!(reply.status, 503 | 504), "{}", reply.body);
    assert!(reply.body.contains("deadline"), "{}", reply.body);
    assert!(
        took < Duration::from_millis(600) + SLACK,
        "stopped by the request's budget, not the 30 s call timeout: {took:?}"
    );
}

#[test]
fn memory_returns_to_its_level_after_an_out_of_memory_fault() {
    let host = Host::start(&["testing/faulty", "testing/consumer", "testing/provider"]);
    assert_eq!(host.get("/faulty/ok").status, 200);
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    let (before, _) = host.memory_mib();
    for _ in 0..3 {
        assert_eq!(host.get("/faulty/oom").error_code(), "out_of_memory");
        assert_eq!(host.get("/consumer/misbehave/oom").status, 503);
    }
    let (after, peak) = host.memory_mib();
    assert!(peak < 1024, "the host's peak resident memory was {peak} MiB");
    assert!(after < before + 64, "resident memory went from {before} MiB to {after} MiB and stayed there");
}

#[test]
fn the_breaker_opens_on_a_failing_provider_and_closes_when_the_fault_stops() {
    let config = r#"
        [breaker]
        window = { kind = "count", size = 10 }
        minimum_calls = 5
        failure_rate_threshold = 0.5
        open_wait = 700
        jitter = 0.0
        half_open_permits = 2
    "#;
    let host = Host::start_with(&["testing/consumer", "testing/provider"], config);
    for _ in 0..10 {
        host.get("/consumer/misbehave/flaky?amount=80");
        if breaker(&host).state == StateName::Open {
            break;
        }
    }
    assert_eq!(breaker(&host).state, StateName::Open, "80% failures opened it");
    let (reply, took) = timed(|| host.get("/consumer/greet/Ada"));
    assert!(reply.body.contains("circuit breaker open"), "{}", reply.body);
    assert!(took < Duration::from_millis(500), "rejected at once, took {took:?}");

    // The fault stops; after the open wait, two good trial calls close it.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    assert_eq!(breaker(&host).state, StateName::Closed);
}

#[test]
fn a_healthy_service_keeps_answering_while_a_provider_is_faulty_under_load() {
    let config = "[limits]\ncall_timeout = 300\nrequest_timeout = 1000\n";
    let host = Host::start_with(&["hello", "testing/consumer", "testing/provider", "testing/faulty"], config);
    let stop = AtomicBool::new(false);
    let healthy: Vec<u16> = std::thread::scope(|s| {
        for path in ["/consumer/misbehave/spin", "/consumer/misbehave/trap", "/faulty/spin", "/consumer/misbehave/oom"]
        {
            let (host, stop) = (&host, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    host.get(path);
                }
            });
        }
        let statuses = (0..60).map(|_| host.get("/hello/").status).collect();
        stop.store(true, Ordering::Relaxed);
        statuses
    });
    assert!(healthy.iter().all(|s| *s == 200), "healthy requests failed: {healthy:?}");
    assert_eq!(host.get("/health/live").status, 200);
}

#[test]
fn a_full_bulkhead_answers_unavailable_at_once_instead_of_queueing() {
    let config = r#"
        [components.faulty]
        max_instances = 1
        max_queue = 0
        [components.provider]
        max_instances = 1
        max_queue = 0
    "#;
    let host = Host::start_with(&["testing/faulty", "testing/consumer", "testing/provider"], config);
    // A slow request takes the only instance; it may itself be refused while a probe below
    // holds that instance for a moment, so it tries again until it gets in.
    let hold = |path: &str| {
        let started = Instant::now();
        loop {
            let status = host.get(path).status;
            if status != 503 || started.elapsed() > SLACK {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Probes until the slow request holds the instance, then the probe is refused at once.
    let refused = |path: &str| {
        let started = Instant::now();
        loop {
            let (reply, took) = timed(|| host.get(path));
            if reply.status != 200 || started.elapsed() > Duration::from_secs(3) {
                return (reply, took);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::scope(|s| {
        let slow = s.spawn(|| hold("/faulty/slow?ms=4000"));
        let slow_call = s.spawn(|| hold("/consumer/misbehave/slow?amount=4000"));
        let (reply, took) = refused("/faulty/ok");
        assert_eq!((reply.status, reply.error_code().as_str()), (503, "busy"), "{}", reply.body);
        assert!(took < Duration::from_millis(1000), "refused at once, took {took:?}");
        let (reply, took) = refused("/consumer/greet/Ada");
        assert_eq!(reply.status, 503);
        assert!(reply.body.contains("busy"), "{}", reply.body);
        assert!(took < Duration::from_millis(1000), "refused at once, took {took:?}");
        assert_eq!((slow.join().unwrap(), slow_call.join().unwrap()), (200, 200));
    });
    assert_eq!(host.get("/faulty/ok").status, 200, "free again");
    assert_eq!(breaker(&host).failures, 0, "a full bulkhead is not the provider's failure");
}
