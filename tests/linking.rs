//! Discovery and run-time linking: imports are linked to whichever loaded component exports
//! a compatible interface, every call goes through a circuit breaker, and a failing, missing
//! or runaway provider is answered as "unavailable" without harming its caller.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Host, StateName, breaker, link};

const GREET: &str = "test:greet/api@1.1.0";

fn breaker_control(host: &Host, action: &str, caller: &str, interface: &str) -> support::Reply {
    let target = json!({ "caller": caller, "interface": interface });
    host.admin_send("POST", &format!("/_trellis/breakers/{action}"), Some(&target))
}

#[test]
fn an_import_is_linked_to_the_component_exporting_a_compatible_version() {
    let host = Host::start(&["testing/consumer", "testing/provider"]);
    let reply = host.get("/consumer/greet/Ada");
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello, Ada!"));
    let unicode = host.get("/consumer/greet/%C3%89lodie");
    assert_eq!(unicode.status, 200, "{}", unicode.body);
    let link = link(&host, "consumer", GREET);
    assert!(link.resolved);
    assert_eq!(link.provider.as_deref(), Some("provider"));
    assert_eq!(link.export.as_deref(), Some("test:greet/api@1.2.0"), "1.2.0 serves an import of 1.1.0");
}

#[test]
fn a_business_error_reaches_the_caller_and_does_not_count_as_a_failure() {
    let host = Host::start(&["testing/consumer", "testing/provider"]);
    let reply = host.get("/consumer/greet");
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error_code(), "invalid");
    let breaker = breaker(&host, "consumer", GREET);
    assert_eq!((breaker.calls, breaker.failures), (1, 0));
}

#[test]
fn an_incompatible_major_version_is_not_linked() {
    let host = Host::start(&["testing/consumer", "testing/provider-v2"]);
    let link = link(&host, "consumer", GREET);
    assert!(!link.resolved);
    let reason = link.reason.unwrap();
    assert!(reason.contains("no loaded component provides test:greet/api@1.1.0"), "{reason}");
    assert_eq!(host.get("/consumer/greet/Ada").status, 503);
}

#[test]
fn a_type_mismatch_is_refused_at_load_naming_both_components_the_interface_and_the_function() {
    let host = Host::start(&["testing/consumer", "testing/provider-mismatch"]);
    let reason = link(&host, "consumer", GREET).reason.unwrap();
    for part in [
        "type mismatch",
        "'consumer'",
        "'provider-mismatch'",
        "test:greet/api@1.1.0",
        "test:greet/api@1.3.0",
        "`greet`",
    ] {
        assert!(reason.contains(part), "{part} missing from: {reason}");
    }
    assert!(
        host.log_when(|log| log.contains("type mismatch")).contains("type mismatch"),
        "reported in the log at load, before any call"
    );
    assert_eq!(host.get("/health/ready").status, 503);
}

#[test]
fn the_highest_compatible_version_is_chosen_unless_the_config_pins_a_provider() {
    let host =
        Host::start(&["testing/consumer", "testing/provider", "testing/provider-newer", "testing/provider-mismatch"]);
    assert_eq!(host.get("/consumer/greet/Ada").body, "Hello, Ada! (1.4.0)", "1.4.0 beats 1.2.0; 1.3.0 mismatches");
    assert_eq!(link(&host, "consumer", GREET).provider.as_deref(), Some("provider-newer"));
    drop(host);

    let pinned = "[providers]\n\"test:greet/api\" = \"provider\"\n";
    let host = Host::start_with(&["testing/consumer", "testing/provider", "testing/provider-newer"], pinned);
    assert_eq!(host.get("/consumer/greet/Ada").body, "Hello, Ada!");
    assert_eq!(link(&host, "consumer", GREET).provider.as_deref(), Some("provider"));
}

#[test]
fn a_missing_provider_is_reported_and_answered_as_unavailable() {
    let host = Host::start(&["testing/consumer"]);
    assert!(!link(&host, "consumer", GREET).resolved);

    // In-band: the import's error type has `unavailable(string)`, so the consumer degrades.
    let reply = host.get("/consumer/greet/Ada");
    assert_eq!(reply.status, 503);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(GREET) && message.contains("no loaded component provides"), "{message}");
    assert_eq!(host.get("/consumer/absent").status, 503);

    // No error type to say it with: the consumer traps and the host answers 503 itself.
    for path in ["/consumer/absent-plain", "/consumer/counter"] {
        let reply = host.get(path);
        assert_eq!(reply.status, 503, "{path}: {}", reply.body);
        assert_eq!(reply.error_code(), "unavailable");
        assert!(reply.body.contains("test:"), "names the interface: {}", reply.body);
    }

    let ready = host.get("/health/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("test:absent/api@0.1.0") && ready.body.contains(GREET), "{}", ready.body);
    assert_eq!(host.get("/health/live").status, 200, "the host itself is fine");
}

#[test]
fn a_trapping_callee_does_not_break_the_callers_later_calls() {
    let host = Host::start(&["testing/consumer", "testing/provider"]);
    let reply = host.get("/consumer/misbehave/trap");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("trapped"), "{}", reply.body);
    for _ in 0..3 {
        assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    }
    assert_eq!(breaker(&host, "consumer", GREET).failures, 1);
}

#[test]
fn the_breaker_opens_rejects_while_open_half_opens_and_closes() {
    let config = r#"
        [breaker]
        window = { kind = "count", size = 10 }
        minimum_calls = 3
        open_wait = 1000
        jitter = 0.0
        half_open_permits = 1
    "#;
    let host = Host::start_with(&["testing/consumer", "testing/provider"], config);
    for _ in 0..3 {
        assert!(host.get("/consumer/misbehave/trap").body.contains("trapped"));
    }
    assert_eq!(breaker(&host, "consumer", GREET).state, StateName::Open);

    let reply = host.get("/consumer/greet/Ada");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("circuit breaker open"), "{}", reply.body);
    assert!(reply.body.contains("retry in"), "the rejection says when to retry: {}", reply.body);
    assert_eq!(breaker(&host, "consumer", GREET).calls, 3, "the rejected call never reached the provider");

    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(breaker(&host, "consumer", GREET).state, StateName::HalfOpen);
    assert_eq!(host.get("/consumer/greet/Ada").status, 200, "the trial call succeeds");
    assert_eq!(breaker(&host, "consumer", GREET).state, StateName::Closed);
}

#[test]
fn a_callee_stuck_in_a_loop_is_stopped_by_its_deadline() {
    let host = Host::start_with(&["testing/consumer", "testing/provider"], "[limits]\ncall_timeout = 300\n");
    let started = Instant::now();
    let reply = host.get("/consumer/misbehave/spin");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("did not answer within the deadline"), "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its 300 ms deadline, took {:?}",
        started.elapsed()
    );
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    assert_eq!(breaker(&host, "consumer", GREET).failures, 1, "a timeout is a failure");
}

#[test]
fn every_forwarded_call_passes_through_the_breaker() {
    let host = Host::start(&["testing/consumer", "testing/provider"]);
    for _ in 0..5 {
        assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    }
    assert_eq!(host.get("/consumer/greet").status, 422);
    assert_eq!(host.get("/consumer/counter").status, 200);
    assert_eq!(breaker(&host, "consumer", GREET).calls, 7, "each call was counted by the breaker");

    let forced = breaker_control(&host, "open", "consumer", "test:greet/api");
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_eq!(forced.json()["state"], "forced-open");
    let reply = host.get("/consumer/greet/Ada");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("forced open"), "{}", reply.body);
    let reply = host.get("/consumer/counter");
    assert_eq!((reply.status, reply.error_code()), (503, "unavailable".to_string()), "no function bypasses it");

    assert_eq!(breaker_control(&host, "reset", "consumer", GREET).status, 200);
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);
    assert_eq!(breaker_control(&host, "open", "consumer", "test:nothing/here").status, 404);
}

#[test]
fn nested_calls_and_cycles_work_and_their_depth_is_bounded() {
    let host = Host::start(&["testing/chain"]);
    let provider = link(&host, "chain", "test:chain/api@0.1.0").provider;
    assert_eq!(provider.as_deref(), Some("chain"), "it provides its own import");
    let reply = host.get("/chain/5");
    assert_eq!((reply.status, reply.body.as_str()), (200, "5"));
    let reply = host.get("/chain/40");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("nested deeper than 16"), "{}", reply.body);
    assert_eq!(host.get("/chain/3").body, "3", "still serving");
}

#[test]
fn warm_instances_are_reused_unless_configured_off() {
    let host = Host::start(&["testing/consumer", "testing/provider"]);
    let counts: Vec<u64> = (0..3).map(|_| host.get("/consumer/counter").body.parse().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[1] > w[0]), "one warm instance served them in turn: {counts:?}");
    drop(host);

    let host = Host::start_with(&["testing/consumer", "testing/provider"], "[limits]\ninstance_reuse = false\n");
    let counts: Vec<u64> = (0..3).map(|_| host.get("/consumer/counter").body.parse().unwrap()).collect();
    assert_eq!(counts, vec![1, 1, 1], "a fresh instance each time");
}

#[test]
fn inspect_prints_imports_and_exports_in_wit_terms() {
    let consumer = support::component("testing/consumer");
    let (ok, text, _) = support::trellis(&["inspect", consumer.to_str().unwrap()]);
    assert!(ok);
    assert!(text.contains("test:greet/api@1.1.0"), "{text}");
    assert!(
        text.contains("greet: func(name: string) -> result<string, variant { invalid(string), unavailable(string) }>"),
        "{text}"
    );
    assert!(text.contains("wasi:http/incoming-handler@0.2.12"), "{text}");

    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"nope").unwrap();
    let (ok, _, stderr) = support::trellis(&["inspect", garbage.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("not a valid component"));
}
