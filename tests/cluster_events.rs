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
    // The notification service's consumer exists once a first event reaches it.
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
