//! Events through the interfaces beyond the plain bus: upstream's `async func` text of
//! `wasi:messaging` served to a WASI 0.3 component, and `trellis:messaging/outbox`, which
//! stores a change and the events announcing it together.

mod support;

use serde_json::{Value, json};
use support::events::{DELIVERY, data_received, host, messaging, notifications, post, publish, received};
use support::{Host, eventually};

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
