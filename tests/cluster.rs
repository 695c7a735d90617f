//! Cluster mode, driven as users would: real `nats-server` processes, several real `trellis
//! serve --cluster` hosts on loopback, each with its own components folder, talking HTTP.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::nats::Nats;
use support::{Host, Reply, eventually, link, shop};

const USERS_API: &str = "shop:users/api@0.1.0";
const GREET: &str = "test:greet/api@1.1.0";

/// A host of the cluster over `nats`, with a short heartbeat so that tests see hosts leave
/// within a second or two.
fn host(nats: &Nats, id: &str, components: &[&str]) -> Host {
    let config = "[cluster]\nname = \"shop\"\nheartbeat = 300\n";
    Host::start_with_args(components, config, &["--cluster", &nats.urls(), "--host-id", id])
}

/// Waits until `caller` on `host` links `interface` to a provider on the hosts `hosts`.
fn wait_remote_link(host: &Host, caller: &str, interface: &str, hosts: &[&str]) {
    eventually(Duration::from_secs(10), &format!("{caller} to link {interface} on {hosts:?}"), || {
        link(host, caller, interface).remote_hosts.is_some_and(|h| h == hosts)
    });
}

fn post_with_correlation(host: &Host, path: &str, body: &Value, correlation: &str) -> Reply {
    let request = http::Request::post(format!("{}{path}", host.public))
        .header("content-type", "application/json")
        .header("x-correlation-id", correlation)
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    support::send(request)
}

#[test]
fn an_order_on_one_host_validates_its_user_through_the_user_service_on_another() {
    let nats = Nats::single();
    let a = host(&nats, "host-a", &["user-service"]);
    let b = host(&nats, "host-b", &["order-service"]);
    let c = host(&nats, "host-c", &[]);
    wait_remote_link(&b, "order-service", USERS_API, &["host-a"]);

    let user = shop::create_user(&a, "Ada", "ada@example.com");
    let user_id = user["id"].as_u64().unwrap();
    let reply = post_with_correlation(&b, "/api/v1/orders", &shop::order_body(user_id), "cluster-test-7f3a");
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["user_id"], user_id);
    // The user service on host A said who does not exist, too.
    let unknown = b.send("POST", "/api/v1/orders", Some(&shop::order_body(9_999_999)));
    assert_eq!(shop::status(&unknown), (422, "validation_error".to_string()), "{}", unknown.body);

    // Host C runs nothing, and serves every route of the cluster.
    eventually(Duration::from_secs(10), "host C to know the other hosts' routes", || {
        c.get(&format!("/api/v1/users/{user_id}")).status == 200
    });
    let order = c.send("POST", "/api/v1/orders", Some(&shop::order_body(user_id)));
    assert_eq!(order.status, 201, "{}", order.body);
    let id = order.json()["id"].as_u64().unwrap();
    assert_eq!(b.get(&format!("/api/v1/orders/{id}")).json()["user_id"], user_id, "stored by host B");
    assert_eq!(c.get("/api/v1/nothing-here").status, 404);
    let metrics = c.get("/metrics").body;
    assert!(
        metrics.lines().any(|l| l.starts_with("trellis_forwarded_requests_total{")
            && l.contains("component=\"order-service\"")
            && l.contains("host=\"host-b\"")
            && l.contains("status=\"201\"")),
        "{metrics}"
    );

    // One request, followed across both hosts' logs by its correlation id.
    let served = a.log_when(|log| log.contains("cluster-test-7f3a"));
    assert!(served.lines().any(|l| l.contains("cluster-test-7f3a") && l.contains("remote call served")), "{served}");
    assert!(b.log().contains("cluster-test-7f3a"), "{}", b.log());

    // The link is reported as remote, everywhere an operator looks.
    let cluster = b.admin_get("/_trellis/cluster").json();
    assert_eq!(cluster["enabled"], true);
    assert_eq!(cluster["host"], "host-b");
    let hosts: Vec<&str> = cluster["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["host-b", "host-a", "host-c"]);
    let remote = &cluster["remote_links"][0];
    assert_eq!((remote["caller"].as_str(), remote["provider"].as_str()), (Some("order-service"), Some("user-service")));
    assert_eq!(remote["hosts"], json!(["host-a"]));
    assert_eq!(remote["breaker"]["state"], "closed");
    let (ok, table, err) = support::trellis(&["status", "--admin", &b.admin]);
    assert!(ok, "{err}");
    assert!(table.contains("user-service @ host-a"), "{table}");
    assert!(table.contains("host-a") && table.contains("host-b (this host)"), "{table}");
}

#[test]
fn a_component_dropped_into_one_host_is_callable_from_another_within_two_seconds() {
    let nats = Nats::single();
    let a = host(&nats, "drop-a", &[]);
    let b = host(&nats, "drop-b", &["order-service"]);
    // Both hosts see each other before the drop, so the time measured is the drop's alone.
    eventually(Duration::from_secs(10), "the hosts to see each other", || {
        b.admin_get("/_trellis/cluster").json()["hosts"].as_array().is_some_and(|h| h.len() == 2)
    });
    assert!(!link(&b, "order-service", USERS_API).resolved);

    let dropped = Instant::now();
    std::fs::copy(support::component("user-service"), a.components_dir().join("user-service.wasm")).unwrap();
    wait_remote_link(&b, "order-service", USERS_API, &["drop-a"]);
    let user = shop::create_user(&a, "Grace", "grace@example.com");
    let reply = b.send("POST", "/api/v1/orders", Some(&shop::order_body(user["id"].as_u64().unwrap())));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let took = dropped.elapsed();
    assert!(took < Duration::from_secs(2), "callable from the other host after {took:?}");

    std::fs::remove_file(a.components_dir().join("user-service.wasm")).unwrap();
    eventually(Duration::from_secs(5), "the other host to see the provider gone", || {
        !link(&b, "order-service", USERS_API).resolved
    });
    let reply = b.send("POST", "/api/v1/orders", Some(&shop::order_body(1)));
    assert_eq!(shop::status(&reply), (503, "unavailable".to_string()), "{}", reply.body);
}

#[test]
fn without_nats_local_work_goes_on_remote_calls_fail_fast_and_everything_heals_when_it_returns() {
    let mut nats = Nats::single();
    let a = host(&nats, "calm-a", &["user-service"]);
    let b = host(&nats, "calm-b", &["order-service", "hello"]);
    wait_remote_link(&b, "order-service", USERS_API, &["calm-a"]);
    let user = shop::create_user(&a, "Edsger", "edsger@example.com");
    let user_id = user["id"].as_u64().unwrap();
    assert_eq!(b.send("POST", "/api/v1/orders", Some(&shop::order_body(user_id))).status, 201);
    assert_eq!(b.get("/health/ready").status, 200, "{}", b.get("/health/ready").body);

    nats.servers[0].kill();
    eventually(Duration::from_secs(5), "readiness to say NATS is gone", || {
        let ready = b.get("/health/ready");
        ready.status == 503 && ready.body.contains("not connected to the NATS servers")
    });
    // Local routes and local data keep working.
    assert_eq!(b.get("/hello/").status, 200);
    assert_eq!(b.get("/api/v1/orders?user_id=1").status, 200);
    assert_eq!(a.get(&format!("/api/v1/users/{user_id}")).status, 200);
    // A remote import answers "unavailable" at once, not after a timeout.
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let reply = b.send("POST", "/api/v1/orders", Some(&shop::order_body(user_id)));
        took.push(started.elapsed());
        assert_eq!(shop::status(&reply), (503, "unavailable".to_string()), "{}", reply.body);
    }
    took.sort();
    assert!(took[2] < Duration::from_millis(100), "remote calls answered unavailable after {took:?}");

    nats.servers[0].start();
    eventually(Duration::from_secs(20), "remote calls to work again", || {
        b.send("POST", "/api/v1/orders", Some(&shop::order_body(user_id))).status == 201
    });
    eventually(Duration::from_secs(10), "readiness to recover", || b.get("/health/ready").status == 200);
}

#[test]
fn a_replica_killed_under_a_stream_of_orders_costs_at_most_the_breakers_detection_window() {
    let nats = Nats::single();
    let mut a = host(&nats, "twin-a", &["user-service"]);
    let b = host(&nats, "twin-b", &["order-service"]);
    let c = host(&nats, "twin-c", &["user-service"]);
    wait_remote_link(&b, "order-service", USERS_API, &["twin-a", "twin-c"]);
    // Each replica keeps its own users here (shared storage is the NATS backend's job): the
    // same user is created on both, so either can validate it.
    let user_id = shop::create_user(&a, "Barbara", "barbara@example.com")["id"].as_u64().unwrap();
    assert_eq!(shop::create_user(&c, "Barbara", "barbara@example.com")["id"].as_u64().unwrap(), user_id);

    let (mut ok, mut failed) = (0, 0);
    let started = Instant::now();
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(4) {
        if killed_at.is_none() && started.elapsed() > Duration::from_secs(1) {
            a.kill();
            killed_at = Some(Instant::now());
        }
        match b.send("POST", "/api/v1/orders", Some(&shop::order_body(user_id))).status {
            201 => ok += 1,
            _ => failed += 1,
        }
    }
    eprintln!("orders while a replica was killed: {ok} succeeded, {failed} failed");
    assert!(ok > 50, "{ok} orders succeeded");
    // Calls in flight on the killed host fail; the queue group sends the rest to C at once.
    assert!(failed <= 5, "{failed} orders failed ({ok} succeeded)");
    eventually(Duration::from_secs(5), "the killed host to leave the directory", || {
        let cluster = b.admin_get("/_trellis/cluster").json();
        cluster["hosts"].as_array().unwrap().iter().all(|h| h["host"] != "twin-a")
    });
    let gone = killed_at.unwrap().elapsed();
    assert!(gone < Duration::from_secs(4), "the killed host left the directory after {gone:?}");
    wait_remote_link(&b, "order-service", USERS_API, &["twin-c"]);
}

#[test]
fn a_host_stopped_cleanly_leaves_the_directory_at_once_across_a_three_node_nats_cluster() {
    let nats = Nats::cluster(3);
    assert_eq!(nats.urls().split(',').count(), 3);
    // A long heartbeat: leaving must not wait for the entry to expire.
    let config = "[cluster]\nheartbeat = 3000\n";
    let args = |id: &'static str| ["--cluster".to_string(), nats.urls(), "--host-id".to_string(), id.to_string()];
    let a = Host::start_with_args(&["user-service"], config, &args("calm-leaver").each_ref().map(String::as_str));
    let b = Host::start_with_args(&["order-service"], config, &args("stayer").each_ref().map(String::as_str));
    wait_remote_link(&b, "order-service", USERS_API, &["calm-leaver"]);

    let stopped = Instant::now();
    a.signal("TERM");
    eventually(Duration::from_secs(5), "the stopped host to leave", || !link(&b, "order-service", USERS_API).resolved);
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(3), "left after {took:?}, not at once");
    assert!(a.log_when(|log| log.contains("left the cluster")).contains("left the cluster"));
}

#[test]
fn function_types_are_checked_across_hosts_and_errors_and_faults_cross_them_as_they_are() {
    let nats = Nats::single();
    let liar = host(&nats, "liar", &["testing/provider-mismatch"]);
    let b = host(&nats, "caller", &["testing/consumer"]);
    eventually(Duration::from_secs(10), "the mismatch to be reported", || {
        link(&b, "consumer", GREET).reason.is_some_and(|why| why.contains("on other hosts: type mismatch"))
    });
    let why = link(&b, "consumer", GREET).reason.unwrap();
    assert!(why.contains("'provider-mismatch'") && why.contains("`greet`"), "{why}");
    drop(liar);

    let honest = host(&nats, "honest", &["testing/provider"]);
    wait_remote_link(&b, "consumer", GREET, &["honest"]);
    let greeting = b.get("/consumer/greet/Ada");
    assert_eq!((greeting.status, greeting.body.as_str()), (200, "Hello, Ada!"));
    // A business error comes back as the provider returned it.
    assert_eq!(b.get("/consumer/greet").status, 422);
    // A trap on the other host is a fault here: unavailable, counted by the link's breaker.
    let trapped = b.get("/consumer/misbehave/trap");
    assert_eq!(trapped.status, 503, "{}", trapped.body);
    assert!(honest.log_when(|log| log.contains("asked to trap")).contains("asked to trap"));
    let breaker = support::breaker(&b, "consumer", GREET);
    assert!(breaker.failures >= 1, "{breaker:?}");
}

#[test]
fn a_host_id_or_nats_url_that_cannot_work_stops_serve_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (components, data) = (dir.path().join("components"), dir.path().join("data"));
    std::fs::create_dir(&components).unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
        args.extend(["--components", components.to_str().unwrap(), "--data", data.to_str().unwrap()]);
        args.extend(extra);
        support::trellis(&args)
    };
    let (ok, _, err) = serve(&["--cluster", "nats://127.0.0.1:4222", "--host-id", "no spaces"]);
    assert!(!ok && err.contains("host_id \"no spaces\"") && err.contains("letters, digits"), "{err}");
    let (ok, _, err) = serve(&["--cluster", "nats://127.0.0.1:4222,nats://127.0.0.1:notaport"]);
    assert!(!ok && err.contains("invalid NATS server URL \"nats://127.0.0.1:notaport\""), "{err}");
}
