//! Events across the hosts of a cluster, driven as users would: real `nats-server`, real
//! `trellis serve --cluster` hosts running the shop services with shared storage, and HTTP.
//! In cluster mode `wasi:messaging` runs on one JetStream stream, with one durable consumer per
//! subscribing component shared by its replicas.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::nats::Nats;
use support::{Host, eventually, link, shop};

/// A host of the cluster `shop` over `nats`, its components' data shared in JetStream.
fn host(nats: &Nats, id: &str, components: &[&str]) -> Host {
    let config = "[cluster]\nname = \"shop\"\nheartbeat = 300\n\n[storage]\nbackend = \"nats\"\n";
    Host::start_with_args(components, config, &["--cluster", &nats.urls(), "--host-id", id])
}

fn notifications(host: &Host, user_id: u64) -> Vec<Value> {
    let reply = host.get(&format!("/api/v1/users/{user_id}/notifications?page_size=100"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["items"].as_array().unwrap().clone()
}

/// The events stream of the cluster `shop`.
const EVENTS: &str = "trellis-shop-events";

/// Waits until the subscriber `name` has its consumer, and every host's publishers know of it
/// (they ask JetStream which topics are wanted at most once a second).
fn wait_for_consumer(nats: &Nats, name: &str) {
    eventually(Duration::from_secs(10), &format!("the consumer {name}"), || nats.has_consumer(EVENTS, name));
    std::thread::sleep(Duration::from_millis(1200));
}

/// Messages the notification service acknowledged on `host`.
fn acknowledged(host: &Host) -> f64 {
    let series = "trellis_message_deliveries_total{subscriber=\"notification-service\",result=\"acknowledged\"}";
    let metrics = host.get("/metrics").body;
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn an_order_event_published_on_one_host_is_delivered_once_per_subscribing_component_across_the_cluster() {
    let nats = Nats::single();
    let a = host(&nats, "events-a", &["user-service", "notification-service"]);
    let b = host(&nats, "events-b", &["order-service"]);
    let c = host(&nats, "events-c", &["notification-service"]);
    eventually(Duration::from_secs(10), "the order service to link the user service on host A", || {
        link(&b, "order-service", "shop:users/api@0.1.0").remote_hosts.is_some_and(|h| h == ["events-a"])
    });
    wait_for_consumer(&nats, "notification-service");
    // A first event reaches it (the consumer exists once a replica pulls from it).
    let first = shop::create_user(&a, "First", "first@example.com")["id"].as_u64().unwrap();
    eventually(Duration::from_secs(10), "a first notification", || !notifications(&a, first).is_empty());
    let before = acknowledged(&a) + acknowledged(&c);

    // Published on host A (users.created) and on host B (orders.created): each delivered once
    // to the notification service, whichever of its replicas on A and C takes it.
    let user = shop::create_user(&a, "Ada", "ada@example.com")["id"].as_u64().unwrap();
    let order = shop::create_order(&b, user)["id"].as_u64().unwrap();
    eventually(Duration::from_secs(5), "both notifications", || notifications(&c, user).len() == 2);
    std::thread::sleep(Duration::from_millis(1500)); // room for a second delivery, which must not come
    let found = notifications(&a, user);
    let topics: Vec<&str> = found.iter().map(|n| n["topic"].as_str().unwrap()).collect();
    assert_eq!(topics, ["users.created", "orders.created"], "{found:?}");
    assert_eq!(acknowledged(&a) + acknowledged(&c) - before, 2.0, "each message delivered once across the cluster");

    // The saga across hosts: the user deleted on host A, the order service on host B cancels
    // the order, and that cancellation becomes a notification too.
    assert_eq!(a.send("DELETE", &format!("/api/v1/users/{user}"), None).status, 204);
    eventually(Duration::from_secs(5), "the order cancelled by the saga", || {
        b.get(&format!("/api/v1/orders/{order}")).json()["status"] == "cancelled"
    });
    eventually(Duration::from_secs(5), "the cancellation's notification", || {
        notifications(&a, user).iter().any(|n| n["topic"] == "orders.status-changed")
    });
}

/// A host of the cluster `shop` over `nats` serving the `events` test component as `worker`,
/// its data shared, with quick retries.
fn worker(nats: &Nats, id: &str) -> Host {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("components")).unwrap();
    std::fs::copy(support::component("testing/events"), dir.path().join("components/worker.wasm")).unwrap();
    let config = "[cluster]\nname = \"shop\"\nheartbeat = 300\n\n[storage]\nbackend = \"nats\"\n\n\
                  [messaging]\nmax_deliveries = 3\nretry_backoff = 100\n";
    std::fs::write(dir.path().join("trellis.toml"), config).unwrap();
    Host::start_in_with_args(dir, &["--cluster", &nats.urls(), "--host-id", id])
}

#[test]
fn replicas_share_one_consumer_in_publish_order_with_retries_and_one_dead_letter() {
    let nats = Nats::single();
    let (a, b) = (worker(&nats, "jobs-a"), worker(&nats, "jobs-b"));
    wait_for_consumer(&nats, "worker");

    // Published through both hosts, taken by whichever replica is free, one at a time.
    for (n, data) in ["one", "trap", "two", "three", "four"].iter().enumerate() {
        let via = if n % 2 == 0 { &a } else { &b };
        let sent = support::send(
            http::Request::post(format!("{}/worker/publish/test.jobs", via.public))
                .body(data.as_bytes().to_vec())
                .unwrap(),
        );
        assert_eq!(sent.status, 204, "{}", sent.body);
    }
    let received = || {
        let reply = a.get("/worker/received");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    eventually(Duration::from_secs(15), "every message but the trapping one, in publish order", || {
        let data: Vec<String> = received()["received"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data"].as_str().unwrap().to_string())
            .collect();
        data == ["one", "two", "three", "four"]
    });

    // The trapping one was tried max_deliveries times and dead-lettered on one host.
    let dead: Vec<Value> = [&a, &b]
        .iter()
        .flat_map(|h| h.admin_get("/_trellis/messaging").json()["dead_letters"].as_array().unwrap().clone())
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["topic"].as_str(), dead[0]["deliveries"].as_u64()), (Some("test.jobs"), Some(3)));
    assert!(dead[0]["error"].as_str().unwrap().contains("trap"), "{}", dead[0]);
    let mut deliveries: Vec<i64> =
        received()["deliveries"].as_object().unwrap().values().map(|n| n.as_i64().unwrap()).collect();
    deliveries.sort_unstable();
    assert_eq!(deliveries, [1, 1, 1, 1, 3], "each message delivered once across both replicas, the trap three times");
}
