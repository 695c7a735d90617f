//! Containment: a component gets no capability it was not granted and cannot make the host
//! read what it should not. Outgoing HTTP reaches only the origins listed for a component
//! (never the host's own listeners unless listed), and oversized component files are
//! refused before they are read.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use support::Host;

/// A one-route HTTP server on loopback that answers every request `upstream ok`.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\nupstream ok");
        }
    });
    port
}

fn metric(host: &Host, series: &str) -> f64 {
    let metrics = host.get("/metrics").body;
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn outgoing_http_reaches_only_the_granted_origins_and_never_the_hosts_own_listeners() {
    let port = upstream();
    let config = format!("[components.hostile]\nallowed_outbound_hosts = [\"http://127.0.0.1:{port}\"]\n");
    let host = Host::start_with(&["testing/hostile", "hello"], &config);
    let fetch = |url: &str| host.get(&format!("/hostile/fetch?url={url}")).body;

    let admin = fetch(&format!("{}/_trellis/services", host.admin));
    assert!(admin.contains("HttpRequestDenied"), "the admin listener is out of reach: {admin}");
    let public = fetch(&format!("{}/hello/", host.public));
    assert!(public.contains("HttpRequestDenied"), "so is the public one: {public}");
    let elsewhere = fetch("http://example.invalid/");
    assert!(elsewhere.contains("HttpRequestDenied"), "and any host not listed: {elsewhere}");
    let other_port = fetch(&format!("http://127.0.0.1:{}/", port + 1));
    assert!(other_port.contains("HttpRequestDenied"), "a grant names the port too: {other_port}");
    assert_eq!(host.get("/hello/").status, 200, "the neighbour answers throughout");

    let granted = fetch(&format!("http://127.0.0.1:{port}/anything"));
    assert_eq!(granted, "status 200: upstream ok");

    let labels = |result: &str| format!("trellis_outbound_requests_total{{component=\"hostile\",result=\"{result}\"}}");
    assert_eq!(metric(&host, &labels("denied")), 4.0);
    assert_eq!(metric(&host, &labels("allowed")), 1.0);
    let log = host.log_when(|log| log.contains("outgoing request denied"));
    assert!(log.contains("outgoing request denied"), "denials are logged");
}

#[test]
fn a_component_without_a_grant_has_no_outgoing_http_and_a_bad_grant_is_refused_by_name() {
    let host = Host::start_with(&["testing/hostile"], "[components.other]\nallowed_outbound_hosts = []\n");
    let port = upstream();
    let reply = host.get(&format!("/hostile/fetch?url=http://127.0.0.1:{port}/"));
    assert!(reply.body.contains("HttpRequestDenied"), "nothing is granted by default: {}", reply.body);
    drop(host);

    let host = Host::start_with(&["testing/hostile"], "[components.hostile]\nallowed_outbound_hosts = [\"ftp://x\"]\n");
    let failed = host.services().failed;
    assert!(failed[0].error.contains("allowed_outbound_hosts") && failed[0].error.contains("ftp"), "{failed:?}");
}

#[test]
fn a_component_file_over_the_size_limit_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::copy(support::component("hello"), components.join("hello.wasm")).unwrap();
    // 300 MiB, sparse: a real component's header, then nothing written.
    let header = std::fs::read(support::component("hello")).unwrap()[..8].to_vec();
    let big = std::fs::File::create(components.join("big.wasm")).unwrap();
    (&big).write_all(&header).unwrap();
    big.set_len(300 * 1024 * 1024).unwrap();
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    let started = std::time::Instant::now();
    let host = Host::start_in(dir);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(host.get("/hello/").status, 200);
    let failed = host.services().failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].error.contains("over the limit") && failed[0].error.contains("max_component_mib"), "{failed:?}");
}

#[test]
fn guest_output_is_logged_escaped_and_rate_limited_without_slowing_anyone() {
    let host = Host::start_with(&["testing/hostile", "hello"], "[limits]\nguest_log_lines_per_second = 50\n");
    assert_eq!(host.get("/hostile/shout?lines=3").body, "shouted 3");
    let log = host.log_when(|log| log.contains("shout 2") && log.contains("complaint"));
    let shout = log.lines().find(|l| l.contains("shout 0")).unwrap_or_else(|| panic!("stdout is logged:\n{log}"));
    assert!(shout.contains("hostile") && shout.contains("guest"), "tagged with the component: {shout}");
    assert!(!log.contains('\u{1b}'), "no escape sequence reaches the log:\n{log}");
    assert!(shout.contains("\\u{1b}[2J"), "it is written escaped: {shout}");

    let started = std::time::Instant::now();
    assert_eq!(host.get("/hostile/shout?lines=20000").body, "shouted 20000");
    assert!(started.elapsed() < Duration::from_secs(5), "a flood does not block: {:?}", started.elapsed());
    assert_eq!(host.get("/hello/").status, 200);
    let dropped = metric(&host, "trellis_guest_log_lines_dropped_total{component=\"hostile\"}");
    assert!(dropped > 19_000.0, "the flood was dropped and counted: {dropped}");
    let logged = host.log().lines().filter(|l| l.contains("shout ")).count();
    assert!(logged < 500, "at most the burst and the rate got through: {logged}");
}

#[test]
fn a_component_stalling_in_its_load_time_export_is_refused_alone_while_the_rest_loads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    for name in ["testing/slow-routes", "hello"] {
        let source = support::component(name);
        std::fs::copy(&source, components.join(source.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    let mut host = Host::launch(dir, &[]);
    // While slow-routes stalls (for 5 s, the load-time deadline), the rest is served.
    support::eventually(Duration::from_secs(4), "hello served while loading", || host.get("/hello/").status == 200);
    assert_eq!(host.get("/health/ready").json()["status"], "loading");
    let started = std::time::Instant::now();
    assert_eq!(host.admin_send("POST", "/_trellis/breakers/reset", None).status, 400, "the admin API answers");
    assert!(started.elapsed() < Duration::from_secs(1));

    host.wait_until_loaded();
    let failed = host.services().failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].name == "slow-routes" && failed[0].error.contains("deadline"), "{failed:?}");
    assert_eq!(host.get("/hello/").status, 200);
}

#[test]
fn concurrent_deep_chains_of_nested_calls_finish_or_fail_fast_but_never_wait_for_the_deadline() {
    // Each chain holds one instance per level while it waits for the next: 8 chains of 16
    // levels need 128 instances of `chain`, twice its bulkhead.
    let host =
        Host::start_with(&["testing/chain", "hello"], "[limits]\nrequest_timeout = 20000\ncall_timeout = 20000\n");
    let started = std::time::Instant::now();
    let chains: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{}/chain/15", host.public);
            std::thread::spawn(move || support::request("GET", &url, None))
        })
        .collect();
    let replies: Vec<_> = chains.into_iter().map(|c| c.join().unwrap()).collect();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "no chain waited for the 20 s deadline: {elapsed:?}");
    for reply in &replies {
        match reply.status {
            200 => assert_eq!(reply.body, "15"),
            503 => assert!(reply.body.contains("do not wait"), "a fast, named refusal: {}", reply.body),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(replies.iter().any(|r| r.status == 200), "the bulkhead's room is used, not refused outright");
    assert_eq!(host.get("/hello/").status, 200, "a neighbour answers throughout");
    assert_eq!(host.get("/chain/15").body, "15", "and a chain alone finishes");
}

#[test]
fn a_component_filling_its_storage_quota_gets_an_error_naming_it_and_its_neighbours_store_on() {
    let config = "[components.hostile]\nmax_storage_mib = 1\n";
    let host = Host::start_with(&["testing/hostile", "user-service"], config);
    let reply = host.get("/hostile/hoard?kib=64");
    assert!(reply.body.starts_with("stored 15: "), "1 MiB holds 15 values of 64 KiB and keys: {}", reply.body);
    assert!(reply.body.contains("quota") && reply.body.contains("max_storage_mib"), "{}", reply.body);
    let user = support::shop::create_user(&host, "Neighbour", "neighbour@example.com");
    assert_eq!(host.get(&format!("/api/v1/users/{}", user["id"])).status, 200);
    let reply = host.get("/hostile/hoard?kib=4096");
    assert!(reply.body.starts_with("stored 0: ") && reply.body.contains("max_value_bytes"), "{}", reply.body);
}

#[test]
fn what_a_guest_makes_the_host_hold_for_it_is_bounded_per_instance() {
    let host =
        Host::start_with(&["testing/hostile", "hello"], "[limits]\nmax_host_resources = 1000\nmax_host_mib = 8\n");
    let reply = host.get("/hostile/cas?n=100");
    assert!(reply.body.starts_with("held 8: ") && reply.body.contains("max_host_mib"), "{}", reply.body);
    let reply = host.get("/hostile/handles?n=5000");
    assert_eq!(reply.status, 500, "the guest is stopped: {}", reply.body);
    assert_eq!(host.get("/hello/").status, 200);
    assert_eq!(host.get("/hostile/handles?n=10").body, "opened 10", "a fresh instance serves the next request");
}

#[test]
fn a_guest_cannot_forge_log_lines_through_wasi_logging() {
    let host = Host::start(&["testing/hostile"]);
    assert_eq!(host.get("/hostile/forge").body, "forged");
    let log = host.log_when(|log| log.contains("honest"));
    assert!(!log.lines().any(|l| l.starts_with("2026-12-03T00:00:00Z")), "no forged line:\n{log}");
    assert!(!log.contains('\u{1b}'), "no escape sequence reaches the log:\n{log}");
    let line = log.lines().find(|l| l.contains("honest")).unwrap();
    assert!(line.contains("hostile") && line.contains("\\n2026-12-03"), "one line, escaped, tagged: {line}");
}

#[test]
fn an_instance_that_grew_large_is_dropped_instead_of_kept_warm() {
    let host = Host::start_with(&["testing/hostile"], "[limits]\nmax_idle_instance_mib = 32\n");
    let alive = || metric(&host, "trellis_instances_alive{component=\"hostile\"}");
    assert_eq!(host.get("/hostile/grow?mib=1").body, "grew 1");
    assert_eq!(alive(), 1.0, "a small instance is kept warm");
    assert_eq!(host.get("/hostile/grow?mib=64").body, "grew 64");
    assert_eq!(alive(), 0.0, "a large one is dropped");
}

#[test]
fn values_too_large_to_cross_between_components_are_the_callers_error_and_never_open_a_breaker() {
    let config = "[limits]\nmax_call_value_bytes = 1000\n[breaker]\nminimum_calls = 5\n";
    let host = Host::start_with(&["testing/consumer", "testing/provider"], config);
    let long = "x".repeat(2000);
    for _ in 0..20 {
        let reply = host.get(&format!("/consumer/greet/{long}"));
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert!(reply.body.contains("max_call_value_bytes"), "{}", reply.body);
    }
    let breaker = support::breaker(&host, "consumer", "test:greet/api@1.1.0");
    assert_eq!(breaker.state.as_str(), "closed", "{breaker:?}");
    assert_eq!(host.get("/consumer/greet/Ada").status, 200);
}

#[test]
fn a_component_cannot_take_more_memory_or_more_of_the_pool_than_its_share() {
    let hostile = ["testing/memories", "testing/many-instances", "testing/many-memories"];
    let host = Host::start_with(&[&hostile[..], &["hello"]].concat(), "[limits]\nmemory_mib = 128\n");
    let failed = host.services().failed;
    let reason = |name: &str| {
        let entry = failed.iter().find(|f| f.name == name);
        entry.unwrap_or_else(|| panic!("{name} is refused: {failed:?}")).error.clone()
    };
    let memories = reason("memories");
    assert!(memories.contains("128 MiB: limits.memory_mib"), "four memories of 48 MiB are 192 MiB: {memories}");
    assert!(reason("many-instances").contains("64"), "{}", reason("many-instances"));
    assert!(reason("many-memories").contains("memories"), "{}", reason("many-memories"));
    assert_eq!(host.get("/hello/").status, 200, "a healthy neighbour serves");

    let roomy = Host::start_with(&["testing/memories"], "[limits]\nmemory_mib = 256\n");
    assert!(roomy.services().failed.is_empty(), "with room for all four it loads: the refusal was their total");
}

#[test]
fn instances_a_burst_needed_are_dropped_once_idle_all_but_one() {
    let config = "[limits]\nidle_instance_timeout = 300\n";
    let host = Host::start_with(&["testing/consumer", "testing/provider"], config);
    let url = format!("{}/consumer/misbehave/slow?amount=400", host.public);
    let burst: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn({
                let url = url.clone();
                move || support::request("GET", &url, None).status
            })
        })
        .collect();
    assert!(burst.into_iter().all(|b| b.join().unwrap() == 200));
    let alive = || metric(&host, "trellis_instances_alive{component=\"provider\"}");
    assert!(alive() >= 4.0, "the burst needed four at once: {}", alive());
    support::eventually(Duration::from_secs(5), "idle instances dropped", || alive() == 1.0);
    assert_eq!(host.get("/consumer/greet/Ada").status, 200, "the one kept serves");
}
