//! Events between components over `wasi:messaging`, driven over HTTP with the real shop
//! services and the `events` test component: durable publishing, delivery to every
//! subscriber, retries and dead letters, replay, removal and return, request-reply.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::events::{DELIVERY, PICKUP, data_received, host, messaging, notifications, post, publish, received};
use support::eventually;
use support::shop::{create_order, create_user};

const SHOP: &[(&str, &str)] = &[
    ("user-service", "user-service"),
    ("order-service", "order-service"),
    ("notification-service", "notification-service"),
];

#[test]
fn a_new_order_becomes_a_notification_within_a_second() {
    let host = host(SHOP, "");
    let user = create_user(&host, "Ada", "ada@example.org");
    let user_id = user["id"].as_u64().unwrap();
    let order = create_order(&host, user_id);
    let placed = Instant::now();
    let mut found = None;
    while found.is_none() && placed.elapsed() < Duration::from_secs(1) {
        found = notifications(&host, user_id).into_iter().find(|n| n["topic"] == "orders.created");
    }
    let notification = found.expect("a notification of the new order within a second");
    let id = order["id"].as_u64().unwrap();
    assert!(notification["text"].as_str().unwrap().contains(&format!("order {id}")), "{notification}");
    for field in ["id", "topic", "message_id", "text", "created_at"] {
        assert!(!notification[field].is_null(), "{field} missing in {notification}");
    }
    let all = notifications(&host, user_id);
    assert_eq!(all[0]["topic"], "users.created", "oldest first: {all:?}");
    let status = messaging(&host);
    let topics: Vec<&str> = status["topics"].as_array().unwrap().iter().map(|t| t["topic"].as_str().unwrap()).collect();
    assert!(topics.contains(&"orders.created") && topics.contains(&"users.created"), "{status}");
}

#[test]
fn deleting_a_user_cancels_their_open_orders_and_nothing_else() {
    let host = host(SHOP, "");
    let ada = create_user(&host, "Ada", "ada@example.org")["id"].as_u64().unwrap();
    let bob = create_user(&host, "Bob", "bob@example.org")["id"].as_u64().unwrap();
    let pending = create_order(&host, ada)["id"].as_u64().unwrap();
    let confirmed = create_order(&host, ada)["id"].as_u64().unwrap();
    let shipped = create_order(&host, ada)["id"].as_u64().unwrap();
    let bobs = create_order(&host, bob)["id"].as_u64().unwrap();
    let set = |id: u64, status: &str| {
        let reply = host.send("PUT", &format!("/api/v1/orders/{id}"), Some(&json!({ "status": status })));
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    set(confirmed, "confirmed");
    set(shipped, "confirmed");
    set(shipped, "shipped");
    assert_eq!(host.send("DELETE", &format!("/api/v1/users/{ada}"), None).status, 204);

    let status_of = |id: u64| host.get(&format!("/api/v1/orders/{id}")).json()["status"].as_str().unwrap().to_string();
    eventually(DELIVERY, "the deleted user's open orders to be cancelled", || {
        status_of(pending) == "cancelled" && status_of(confirmed) == "cancelled"
    });
    assert_eq!(status_of(shipped), "shipped", "a shipped order is not open");
    assert_eq!(status_of(bobs), "pending", "another user's order is untouched");
    eventually(DELIVERY, "a notification per cancellation", || {
        let texts: Vec<String> = notifications(&host, ada)
            .iter()
            .filter(|n| n["topic"] == "orders.status-changed")
            .map(|n| n["text"].as_str().unwrap().to_string())
            .collect();
        [pending, confirmed].iter().all(|id| texts.iter().any(|t| t.contains(&format!("order {id} is now cancelled"))))
    });
}

#[test]
fn acknowledged_messages_survive_kill_9_and_a_running_handler_is_redelivered() {
    let host = host(&[("testing/events", "events")], "");
    let before: Vec<String> = (1..=20).map(|i| format!("before-{i}")).collect();
    for data in &before {
        assert_eq!(publish(&host, "events", "test.stream", data).status, 204);
    }
    assert_eq!(publish(&host, "events", "test.stream", "sleep:3000").status, 204);
    let after: Vec<String> = (1..=5).map(|i| format!("after-{i}")).collect();
    for data in &after {
        assert_eq!(publish(&host, "events", "test.stream", data).status, 204);
    }
    // The slow message is under way once its delivery is counted (durably, first thing).
    eventually(DELIVERY, "the slow message's handler to be running", || {
        data_received(&host, "events").len() == before.len()
            && received(&host, "events").1.as_object().unwrap().len() > before.len()
    });
    let mut host = host;
    host.kill();
    let host = host.restart();
    let expected: Vec<String> = before.iter().cloned().chain(["sleep:3000".into()]).chain(after.clone()).collect();
    let started = Instant::now();
    while data_received(&host, "events") != expected {
        let (received, deliveries) = received(&host, "events");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "every acknowledged message after the restart: {received:?} {deliveries}\n{}",
            messaging(&host)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (received, deliveries) = received(&host, "events");
    let slow = received.iter().find(|r| r["data"] == "sleep:3000").unwrap();
    let slow_id = slow["id"].as_str().unwrap();
    assert_eq!(deliveries[slow_id], 2, "the message whose handler the crash interrupted is delivered again");
    let once =
        received.iter().filter(|r| r["data"] != "sleep:3000").all(|r| deliveries[r["id"].as_str().unwrap()] == 1);
    assert!(once, "the others were delivered once: {deliveries}");
}

#[test]
fn a_trapping_subscriber_is_retried_with_backoff_dead_lettered_and_replayed_once_fixed() {
    let config = "[messaging]\nmax_deliveries = 3\nretry_backoff = 300\n";
    let host = host(&[("testing/events", "events")], config);
    let sent = Instant::now();
    assert_eq!(publish(&host, "events", "test.jobs", "trap").status, 204);
    eventually(DELIVERY, "the trapping message to be dead-lettered", || {
        !messaging(&host)["dead_letters"].as_array().unwrap().is_empty()
    });
    // Two waits of 300 then 600 ms, each times a jitter of at least 0.5.
    assert!(sent.elapsed() >= Duration::from_millis(450), "retried after {:?}", sent.elapsed());
    let status = messaging(&host);
    let dead = &status["dead_letters"][0];
    assert_eq!((dead["subscriber"].as_str(), dead["topic"].as_str()), (Some("events"), Some("test.jobs")));
    assert_eq!(dead["deliveries"], 3);
    assert!(dead["error"].as_str().unwrap().contains("trap"), "{dead}");
    let id = dead["id"].as_u64().unwrap();
    assert_eq!(received(&host, "events").1[id.to_string()], 3, "delivered exactly max_deliveries times");
    // Later messages are not held up by the dead one.
    assert_eq!(publish(&host, "events", "test.jobs", "next").status, 204);
    eventually(DELIVERY, "the next message", || data_received(&host, "events") == ["next"]);

    let target = host.components_dir().join("events.wasm");
    let temporary = host.components_dir().join(".events.wasm.part");
    std::fs::copy(support::component("testing/events-fixed"), &temporary).unwrap();
    std::fs::rename(&temporary, &target).unwrap();
    let fixed_digest = {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(&target).unwrap().read_to_end(&mut bytes).unwrap();
        bytes.len()
    };
    assert!(fixed_digest > 0);
    eventually(PICKUP, "the fixed successor to be loaded", || {
        host.log().matches("component loaded component=events").count() >= 2
    });
    let replay = host.admin_send("POST", "/_trellis/messaging/replay", Some(&json!({ "subscriber": "events" })));
    assert_eq!(replay.status, 202, "{}", replay.body);
    assert_eq!(replay.json()["replaying"], 1);
    eventually(DELIVERY, "the replayed message to be acknowledged", || {
        data_received(&host, "events") == ["next", "trap"]
    });
    eventually(DELIVERY, "the dead letter to be let go", || {
        messaging(&host)["dead_letters"].as_array().unwrap().is_empty()
    });
}

#[test]
fn a_removed_subscriber_resumes_where_it_stopped_when_put_back() {
    let config = "[components.publisher]\nsubscribe = [\"elsewhere.>\"]\n";
    let host = host(&[("testing/events", "publisher"), ("testing/events", "listener")], config);
    assert_eq!(publish(&host, "publisher", "test.a", "a").status, 204);
    eventually(DELIVERY, "the first message", || data_received(&host, "listener") == ["a"]);
    let listener = host.components_dir().join("listener.wasm");
    let kept = host.dir.path().join("listener.wasm.kept");
    std::fs::rename(&listener, &kept).unwrap();
    eventually(PICKUP, "the listener to be removed", || host.get("/listener/received").status == 404);
    let status = messaging(&host);
    assert!(status["subscribers"].as_array().unwrap().iter().all(|s| s["name"] != "listener"), "{status}");
    assert_eq!(publish(&host, "publisher", "test.b", "b").status, 204);
    assert_eq!(publish(&host, "publisher", "test.c", "c").status, 204);
    std::fs::rename(&kept, &listener).unwrap();
    eventually(PICKUP, "the listener to catch up", || {
        host.get("/listener/received").status == 200 && data_received(&host, "listener") == ["a", "b", "c"]
    });
    let deliveries = received(&host, "listener").1;
    assert!(deliveries.as_object().unwrap().values().all(|n| n == 1), "nothing delivered twice: {deliveries}");
    assert!(data_received(&host, "publisher").is_empty(), "the config replaced the publisher's own topics");
}

#[test]
fn a_slow_subscriber_does_not_delay_another() {
    let host = host(&[("testing/events", "fast"), ("testing/events", "slow")], "");
    assert_eq!(host.send("PUT", "/slow/mode", Some(&json!({ "sleep_ms": 2000 }))).status, 204);
    let sent = Instant::now();
    for data in ["one", "two", "three"] {
        assert_eq!(publish(&host, "fast", "test.work", data).status, 204);
    }
    eventually(DELIVERY, "the fast subscriber to get everything", || data_received(&host, "fast").len() == 3);
    let fast = sent.elapsed();
    let slow = data_received(&host, "slow").len();
    assert!(slow < 3, "the slow one is still at it ({slow} done after {fast:?})");
    assert!(fast < Duration::from_secs(4), "the fast one waited for the slow one: {fast:?}");
    let data = host.dir.path().join("data");
    let (ok, out, err) = support::trellis(&["status", "--data", data.to_str().unwrap()]);
    assert!(ok, "{err}");
    let subscribers = out.split("SUBSCRIBER").nth(1).unwrap_or_else(|| panic!("no subscribers table in {out}"));
    let row = |name: &str| {
        subscribers.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {out}")).to_string()
    };
    let lag = |row: String| row.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap();
    assert!(lag(row("slow")) >= 1, "the slow subscriber's lag shows:\n{out}");
    assert_eq!(lag(row("fast")), 0, "{out}");
    eventually(DELIVERY, "the slow subscriber to finish, in order", || {
        data_received(&host, "slow") == ["one", "two", "three"]
    });
    let lag =
        messaging(&host)["subscribers"].as_array().unwrap().iter().map(|s| s["lag"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(lag, 0, "no lag once done");
}

#[test]
fn a_message_carries_its_id_and_the_publishers_correlation_id() {
    let host = host(&[("testing/events", "events")], "");
    assert_eq!(post(&host, "/events/publish/test.traced", "x", Some("trace-me-42")).status, 204);
    eventually(DELIVERY, "the message", || data_received(&host, "events").len() == 1);
    let (received, _) = received(&host, "events");
    assert_eq!(received[0]["correlation_id"], "trace-me-42");
    assert_eq!(received[0]["topic"], "test.traced");
    assert!(received[0]["id"].as_str().unwrap().parse::<u64>().is_ok(), "{}", received[0]);
    eventually(DELIVERY, "the delivery in the log under the same id", || host.log().contains("trace-me-42"));
}

#[test]
fn request_reply_reaches_one_subscriber_and_says_when_there_is_none() {
    let config = "[components.asker]\nsubscribe = [\"elsewhere.>\"]\n";
    let host = host(&[("testing/events", "asker"), ("testing/events", "answerer")], config);
    let reply = post(&host, "/asker/request/test.question?timeout_ms=5000", "hi", None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["replies"], json!(["re:hi"]));
    eventually(DELIVERY, "the answerer to acknowledge the request", || {
        data_received(&host, "answerer").contains(&"hi".to_string())
    });
    let none = post(&host, "/asker/request/nobody.listens", "hi", None);
    assert_eq!(none.status, 503, "{}", none.body);
    assert!(none.body.contains("no component subscribes to topic"), "{}", none.body);
    let unknown = post(&host, "/asker/connect/kafka", "", None);
    assert_eq!(unknown.status, 503);
    assert!(unknown.body.contains("kafka"), "the unknown client is named: {}", unknown.body);
}

#[test]
fn a_bad_subscription_refuses_the_component_naming_the_pattern() {
    let config = "[components.events]\nsubscribe = [\"orders.>.x\"]\n";
    let host = host(&[("testing/events", "events")], config);
    let failed = host.services().failed;
    let failure = failed.iter().find(|f| f.name == "events").expect("events refused");
    assert!(failure.error.contains("orders.>.x"), "{}", failure.error);
}

#[test]
fn retention_lets_old_messages_go_even_when_a_removed_subscriber_has_not_had_them() {
    let config = "[components.publisher]\nsubscribe = [\"elsewhere.>\"]\n[messaging.retention]\nmax_age = 500\n";
    let host = host(&[("testing/events", "publisher"), ("testing/events", "listener")], config);
    assert_eq!(publish(&host, "publisher", "test.a", "a").status, 204);
    eventually(DELIVERY, "the first message", || data_received(&host, "listener") == ["a"]);
    let listener = host.components_dir().join("listener.wasm");
    let kept = host.dir.path().join("listener.wasm.kept");
    std::fs::rename(&listener, &kept).unwrap();
    eventually(PICKUP, "the listener to be removed", || host.get("/listener/received").status == 404);
    assert_eq!(publish(&host, "publisher", "test.b", "b").status, 204);
    // Housekeeping runs every second; the message is past its age after half of one.
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::rename(&kept, &listener).unwrap();
    eventually(PICKUP, "the listener to be back", || host.get("/listener/received").status == 200);
    assert_eq!(publish(&host, "publisher", "test.c", "c").status, 204);
    eventually(DELIVERY, "the message published after", || data_received(&host, "listener") == ["a", "c"]);
}

#[test]
fn a_new_subscriber_starts_with_what_is_published_after_it_appears() {
    let host = host(&[("testing/events", "first")], "");
    assert_eq!(publish(&host, "first", "test.x", "early").status, 204);
    eventually(DELIVERY, "the first subscriber to get it", || data_received(&host, "first") == ["early"]);
    let late = host.components_dir().join("late.wasm");
    let temporary = host.components_dir().join(".late.wasm.part");
    std::fs::copy(support::component("testing/events"), &temporary).unwrap();
    std::fs::rename(&temporary, &late).unwrap();
    eventually(PICKUP, "the late subscriber to be loaded", || host.get("/late/received").status == 200);
    assert_eq!(publish(&host, "first", "test.x", "later").status, 204);
    eventually(DELIVERY, "both to get the later one", || {
        data_received(&host, "first") == ["early", "later"] && data_received(&host, "late") == ["later"]
    });
}
