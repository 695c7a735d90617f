//! Events between components over `wasi:messaging`, driven over HTTP with the real shop
//! services and the `events` test component: durable publishing, delivery to every
//! subscriber, retries and dead letters, replay, removal and return, request-reply.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::shop::{create_order, create_user};
use support::{Host, Reply, eventually};

/// Picking up a dropped or removed file: generous, since the machine may be busy compiling.
const PICKUP: Duration = Duration::from_secs(20);
/// Deliveries that have nothing in their way take milliseconds; this is for a busy machine.
const DELIVERY: Duration = Duration::from_secs(10);

/// A host serving copies of built components under the names given, with `config`.
fn host(components: &[(&str, &str)], config: &str) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("components");
    std::fs::create_dir(&folder).unwrap();
    for (component, name) in components {
        std::fs::copy(support::component(component), folder.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(dir.path().join("trellis.toml"), config).unwrap();
    Host::start_in(dir)
}

/// Publishes `data` on `topic` through the `events` component named `via`.
fn publish(host: &Host, via: &str, topic: &str, data: &str) -> Reply {
    post(host, &format!("/{via}/publish/{topic}"), data, None)
}

fn post(host: &Host, path: &str, body: &str, correlation_id: Option<&str>) -> Reply {
    let mut request = http::Request::builder().method("POST").uri(format!("{}{path}", host.public));
    if let Some(id) = correlation_id {
        request = request.header("x-correlation-id", id);
    }
    support::send(request.body(body.as_bytes().to_vec()).unwrap())
}

/// What the `events` component named `name` acknowledged, in order, and its deliveries.
fn received(host: &Host, name: &str) -> (Vec<Value>, Value) {
    let reply = host.get(&format!("/{name}/received"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    (json["received"].as_array().unwrap().clone(), json["deliveries"].clone())
}

fn data_received(host: &Host, name: &str) -> Vec<String> {
    received(host, name).0.iter().map(|r| r["data"].as_str().unwrap().to_string()).collect()
}

fn notifications(host: &Host, user_id: u64) -> Vec<Value> {
    let reply = host.get(&format!("/api/v1/users/{user_id}/notifications?page_size=100"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["items"].as_array().unwrap().clone()
}

fn messaging(host: &Host) -> Value {
    let reply = host.admin_get("/_trellis/messaging");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

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

#[test]
fn a_wasi_0_3_component_speaks_upstreams_async_messaging_text() {
    let config = "[messaging]\nmax_deliveries = 2\nretry_backoff = 100\n";
    let host = host(&[("testing/events", "events"), ("testing/p3-events", "p3-events")], config);
    // Its awaited send answers once the message is stored, and a WASI 0.2 subscriber gets it.
    assert_eq!(post(&host, "/p3-events/publish/test.direct", "hello", Some("trace-p3")).status, 204);
    // Its async handler receives, and publishes from inside it under the delivery's correlation id.
    assert_eq!(post(&host, "/events/publish/p3.one", "hi", Some("trace-two")).status, 204);
    eventually(DELIVERY, "both messages at the WASI 0.2 subscriber", || {
        data_received(&host, "events") == ["hello", "p3:hi"]
    });
    let (received, _) = received(&host, "events");
    assert_eq!((&received[0]["topic"], &received[0]["correlation_id"]), (&json!("test.direct"), &json!("trace-p3")));
    assert_eq!((&received[1]["topic"], &received[1]["correlation_id"]), (&json!("test.from-p3"), &json!("trace-two")));

    // Request-reply both ways: it asks a WASI 0.2 answerer, and answers one with its awaited reply.
    let asked = post(&host, "/p3-events/request/test.question?timeout_ms=5000", "ping", None);
    assert_eq!((asked.status, asked.json()["replies"].clone()), (200, json!(["re:ping"])), "{}", asked.body);
    let answered = post(&host, "/events/request/p3.ask.anything?timeout_ms=5000", "pong", None);
    assert_eq!((answered.status, answered.json()["replies"].clone()), (200, json!(["re:pong"])), "{}", answered.body);
    let none = post(&host, "/p3-events/request/nobody.listens", "hi", None);
    assert_eq!(none.status, 503, "{}", none.body);
    assert!(none.body.contains("no component subscribes to topic"), "{}", none.body);
    let unknown = post(&host, "/p3-events/connect/kafka", "", None);
    assert_eq!(unknown.status, 503);
    assert!(unknown.body.contains("no messaging client named \\\"kafka\\\""), "{}", unknown.body);

    // An error its async handler answers is retried, then dead-lettered, as for any subscriber.
    assert_eq!(publish(&host, "events", "p3.broken", "fail").status, 204);
    eventually(DELIVERY, "the failing message to be dead-lettered", || {
        !messaging(&host)["dead_letters"].as_array().unwrap().is_empty()
    });
    let dead = &messaging(&host)["dead_letters"][0];
    assert_eq!((dead["subscriber"].as_str(), dead["deliveries"].as_u64()), (Some("p3-events"), Some(2)), "{dead}");
    assert!(dead["error"].as_str().unwrap().contains("told to fail on p3.broken"), "{dead}");
}

#[test]
fn an_event_is_stored_with_its_change_so_a_request_cut_after_its_write_still_announces_it() {
    let shop = [("testing/user-service-crash", "user-service"), ("notification-service", "notification-service")];
    let mut host = host(&shop, "");
    let ada = json!({ "name": "Ada", "email": "ada@example.com" });
    let cut = host.send("POST", "/api/v1/users?crash=after-claim", Some(&ada));
    assert_eq!(cut.status, 500, "the crash point stopped it after its write, before anything else: {}", cut.body);
    // A write refused (the email is taken) sends nothing.
    let taken = host.send("POST", "/api/v1/users", Some(&json!({ "name": "Ada two", "email": "ada@example.com" })));
    assert_eq!(taken.status, 409, "{}", taken.body);
    let topics = messaging(&host)["topics"].clone();
    assert_eq!(topics, json!([{ "topic": "users.created", "published": 1 }]), "only the stored write's event counts");
    // Killed at once: the user and the event announcing it were stored together, or neither.
    host.kill();
    let dir = std::mem::replace(&mut host.dir, tempfile::tempdir().unwrap());
    let host = Host::start_in(dir);
    assert_eq!(host.get("/api/v1/users/1").json()["name"], "Ada", "the write was acknowledged to the component");
    eventually(DELIVERY, "the user's creation to become a notification", || {
        notifications(&host, 1).iter().any(|n| n["topic"] == "users.created")
    });
    let created = |n: &Value| n["topic"] == "users.created";
    assert_eq!(notifications(&host, 1).iter().filter(|n| created(n)).count(), 1, "{:?}", notifications(&host, 1));
    assert!(notifications(&host, 2).is_empty(), "the refused sign-up announced nothing");
}
