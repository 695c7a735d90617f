//! The user, order and gateway services end to end, over real HTTP against `trellis serve`
//! with the real components: their routes and errors, the order service's WIT link to the
//! user service, and the gateway's graceful degradation. Durability is `durability.rs`.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::shop::{create_order, create_user, order_body, status};
use support::{Host, Reply};

const SHOP: &[&str] = &["user-service", "order-service", "gateway"];

#[test]
fn users_can_be_created_read_updated_listed_and_deleted() {
    let host = Host::start(&["user-service"]);
    let ada = create_user(&host, "Ada Lovelace", "ada@example.com");
    assert_eq!(ada["id"], 1);
    assert_eq!(ada["name"], "Ada Lovelace");
    assert_eq!(ada["age"], Value::Null);
    assert!(ada["created_at"].as_str().unwrap().ends_with('Z'));

    let unicode = create_user(&host, "Zoë Ångström 李小龍", "zoë@exämple.com");
    assert_eq!(unicode["name"], "Zoë Ångström 李小龍");
    assert_eq!(host.get(&format!("/api/v1/users/{}", unicode["id"])).json()["email"], "zoë@exämple.com");

    let got = host.get("/api/v1/users/1");
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), ada);
    assert_eq!(status(&host.get("/api/v1/users/999")), (404, "not_found".into()));

    let updated = host.send("PUT", "/api/v1/users/1", Some(&json!({ "age": 36 })));
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["age"], 36);
    assert_eq!(updated.json()["name"], "Ada Lovelace", "a partial update keeps the other fields");
    let renamed =
        host.send("PUT", "/api/v1/users/1", Some(&json!({ "name": "Ada King", "email": "ada.king@example.com" })));
    assert_eq!(renamed.json()["email"], "ada.king@example.com");
    create_user(&host, "Someone Else", "ada@example.com"); // the old email was released

    assert_eq!(status(&host.send("PUT", "/api/v1/users/999", Some(&json!({ "age": 1 })))).0, 404);
    let clash = host.send("PUT", "/api/v1/users/1", Some(&json!({ "email": "ada@example.com" })));
    assert_eq!(status(&clash), (409, "conflict".into()));
    assert_eq!(host.send("PUT", "/api/v1/users/1", Some(&json!({ "name": "" }))).status, 422);

    let list = host.get("/api/v1/users").json();
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["id"], 1, "oldest first");

    assert_eq!(host.send("DELETE", "/api/v1/users/1", None).status, 204);
    assert_eq!(host.get("/api/v1/users/1").status, 404);
    assert_eq!(host.send("DELETE", "/api/v1/users/1", None).status, 404);
    assert_eq!(host.get("/api/v1/users").json()["total"], 2);
}

#[test]
fn user_input_is_validated_with_the_right_status() {
    let host = Host::start(&["user-service"]);
    create_user(&host, "Ada", "ada@example.com");
    let post = |body: Value| host.send("POST", "/api/v1/users", Some(&body));

    assert_eq!(post(json!({ "name": "", "email": "x@example.com" })).status, 422);
    assert_eq!(post(json!({ "name": "   ", "email": "x@example.com" })).status, 422);
    for email in [
        "",
        "no-at.example.com",
        "two@@example.com",
        "a@b@example.com",
        "@example.com",
        "x@localhost",
        "x@example.",
        "x@.com",
        "x@a..com",
    ] {
        assert_eq!(post(json!({ "name": "X", "email": email })).status, 422, "{email:?} must be invalid");
    }
    for email in ["x@example.com", "first.last+tag@sub.example.co.uk"] {
        assert_eq!(post(json!({ "name": "X", "email": email })).status, 201, "{email:?} must be valid");
    }
    assert_eq!(status(&post(json!({ "name": "Ada 2", "email": "ada@example.com" }))), (409, "conflict".into()));
    assert_eq!(
        status(&post(json!({ "name": "Ada 3", "email": "ADA@Example.com" }))).0,
        409,
        "emails are unique regardless of case"
    );
    assert_eq!(post(json!({ "name": "Aged", "email": "aged@example.com", "age": -1 })).status, 422);
    assert_eq!(post(json!({ "email": "noname@example.com" })).status, 422);
    let long = post(json!({ "name": "n".repeat(201), "email": "long@example.com" }));
    assert!(long.status == 422 && long.body.contains("at most 200"), "{}", long.body);
    let long_email = format!("{}@example.com", "e".repeat(250));
    assert_eq!(post(json!({ "name": "Long", "email": long_email })).status, 422);

    let url = format!("{}/api/v1/users", host.public);
    let malformed = raw(&url, "POST", "application/json", b"{\"name\": ");
    assert_eq!(status(&malformed), (400, "malformed_json".into()));
    let wrong_type = raw(&url, "POST", "text/plain", br#"{"name":"A","email":"a@example.com"}"#);
    assert_eq!(status(&wrong_type), (400, "unsupported_content_type".into()));

    assert_eq!(status(&host.send("PATCH", "/api/v1/users/1", None)), (405, "method_not_allowed".into()));
    assert_eq!(host.send("DELETE", "/api/v1/users", None).status, 405);
}

#[test]
fn lists_are_paged_oldest_first_with_clamped_sizes() {
    let host = Host::start(&["user-service"]);
    for i in 0..25 {
        create_user(&host, &format!("User {i}"), &format!("user{i}@example.com"));
    }
    let first = host.get("/api/v1/users").json();
    assert_eq!(
        (first["page"].as_u64(), first["page_size"].as_u64(), first["total"].as_u64()),
        (Some(1), Some(20), Some(25))
    );
    assert_eq!(first["items"].as_array().unwrap().len(), 20);
    let second = host.get("/api/v1/users?page=2&page_size=20").json();
    let ids: Vec<u64> = second["items"].as_array().unwrap().iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![21, 22, 23, 24, 25], "newest last");
    let clamped = host.get("/api/v1/users?page_size=1000").json();
    assert_eq!(clamped["page_size"], 100);
    assert_eq!(clamped["items"].as_array().unwrap().len(), 25);
    let past = host.get("/api/v1/users?page=9");
    assert_eq!(past.status, 200);
    assert_eq!(past.json()["items"], json!([]));
    for bad in ["page=0", "page=-1", "page=abc", "page_size=0", "page_size=1.5"] {
        assert_eq!(host.get(&format!("/api/v1/users?{bad}")).status, 400, "{bad}");
    }
}

#[test]
fn an_oversized_body_is_refused_with_413_by_length_or_by_counting() {
    let host = Host::start_with(&["user-service"], "[limits]\nmax_body_bytes = 1024\n");
    let big = format!(r#"{{"name": "{}", "email": "big@example.com"}}"#, "x".repeat(4096));
    let url = format!("{}/api/v1/users", host.public);
    let declared = raw(&url, "POST", "application/json", big.as_bytes());
    assert_eq!(status(&declared), (413, "payload_too_large".into()));
    let chunked = raw_chunked(&host.public, "/api/v1/users", big.as_bytes());
    assert_eq!(chunked.0, 413, "{}", chunked.1);
    assert!(chunked.1.contains("payload_too_large"));
    assert_eq!(host.get("/api/v1/users").json()["total"], 0, "nothing was stored");
    let small = raw_chunked(&host.public, "/api/v1/users", br#"{"name": "Ann", "email": "ann@example.com"}"#);
    assert_eq!(small.0, 201, "a chunked body within the limit is read whole: {}", small.1);

    let host = Host::start(&["user-service"]);
    let huge = vec![b'x'; 3 * 1024 * 1024];
    assert_eq!(
        raw(&format!("{}/api/v1/users", host.public), "POST", "application/json", &huge).status,
        413,
        "default limit 1 MiB"
    );
}

#[test]
fn orders_are_validated_priced_and_moved_through_their_life_cycle() {
    let host = Host::start(&["user-service", "order-service"]);
    let ada = create_user(&host, "Ada", "ada@example.com");
    let order = create_order(&host, ada["id"].as_u64().unwrap());
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total"].as_f64().unwrap(), 3.0 * 19.99 + 5.5);
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert_eq!(order["shipping_address"], "12 Rue de la Paix, Paris");
    assert_eq!(host.get("/api/v1/orders/1").json(), order);
    assert_eq!(host.get("/api/v1/orders/99").status, 404);

    let post = |body: Value| host.send("POST", "/api/v1/orders", Some(&body));
    assert_eq!(post(order_body(999)).status, 422, "unknown user");
    let mut empty = order_body(1);
    empty["items"] = json!([]);
    assert_eq!(post(empty).status, 422);
    let mut zero = order_body(1);
    zero["items"][0]["quantity"] = json!(0);
    assert_eq!(post(zero).status, 422);
    let mut negative = order_body(1);
    negative["items"][0]["price"] = json!(-1.0);
    assert_eq!(post(negative).status, 422);
    let mut many = order_body(1);
    many["items"] = json!(vec![many["items"][0].clone(); 101]);
    let reply = post(many);
    assert!(reply.status == 422 && reply.body.contains("at most 100 items"), "{}", reply.body);
    let mut far = order_body(1);
    far["shipping_address"] = json!("a".repeat(501));
    assert_eq!(post(far).status, 422);
    let mut named = order_body(1);
    named["items"][0]["product_name"] = json!("p".repeat(201));
    assert_eq!(post(named).status, 422);

    let put = |id: u64, s: &str| host.send("PUT", &format!("/api/v1/orders/{id}"), Some(&json!({ "status": s })));
    assert_eq!(status(&put(1, "shipped")), (409, "conflict".into()), "pending cannot skip to shipped");
    assert_eq!(status(&put(1, "lost")).0, 422);
    assert_eq!(put(99, "confirmed").status, 404);
    for next in ["confirmed", "shipped", "delivered"] {
        let reply = put(1, next);
        assert_eq!(reply.status, 200, "{next}: {}", reply.body);
        assert_eq!(reply.json()["status"], next);
    }
    assert_eq!(put(1, "cancelled").status, 409, "delivered cannot be cancelled");
    assert_eq!(host.send("DELETE", "/api/v1/orders/1", None).status, 409);

    let second = create_order(&host, 1);
    let id = second["id"].as_u64().unwrap();
    assert_eq!(host.send("DELETE", &format!("/api/v1/orders/{id}"), None).status, 204);
    assert_eq!(host.get(&format!("/api/v1/orders/{id}")).json()["status"], "cancelled", "a cancelled order remains");
    assert_eq!(host.send("DELETE", "/api/v1/orders/999", None).status, 404);

    assert_eq!(host.send("DELETE", "/api/v1/users/1", None).status, 204);
    assert_eq!(post(order_body(1)).status, 422, "a deleted user cannot order");
}

#[test]
fn orders_can_be_listed_filtered_and_fetched_per_user() {
    let host = Host::start(&["user-service", "order-service"]);
    create_user(&host, "Ada", "ada@example.com");
    create_user(&host, "Grace", "grace@example.com");
    for user in [1, 2, 1, 1] {
        create_order(&host, user);
    }
    host.send("PUT", "/api/v1/orders/1", Some(&json!({ "status": "confirmed" })));
    let all = host.get("/api/v1/orders").json();
    assert_eq!(all["total"], 4);
    let adas = host.get("/api/v1/orders?user_id=1").json();
    assert_eq!(adas["total"], 3);
    let confirmed = host.get("/api/v1/orders?status=confirmed").json();
    assert_eq!((confirmed["total"].as_u64(), confirmed["items"][0]["id"].as_u64()), (Some(1), Some(1)));
    let both = host.get("/api/v1/orders?user_id=1&status=pending&page_size=1&page=2").json();
    assert_eq!((both["total"].as_u64(), both["items"][0]["id"].as_u64()), (Some(2), Some(4)));
    assert_eq!(host.get("/api/v1/orders?status=lost").status, 400);

    let per_user = host.get("/api/v1/orders/user/1").json();
    let ids: Vec<u64> = per_user.as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![1, 3, 4]);
    assert_eq!(host.get("/api/v1/orders/user/77").json(), json!([]));
}

#[test]
fn the_order_service_checks_users_only_through_its_wit_import() {
    let order_service = support::component("order-service");
    let (_, text, _) = support::trellis(&["inspect", order_service.to_str().unwrap()]);
    assert!(text.contains("shop:users/api@0.1.0"), "{text}");
    assert!(!text.contains("wasi:http/outgoing-handler"), "the order service cannot make HTTP requests: {text}");

    let host = Host::start(&["user-service", "order-service"]);
    create_user(&host, "Ada", "ada@example.com");
    create_order(&host, 1);
    let link = support::link(&host, "order-service", "shop:users/api@0.1.0");
    assert_eq!(link.provider.as_deref(), Some("user-service"));
    assert_eq!(link.breaker.unwrap().calls, 1, "the user check was one call through the breaker");
    drop(host);

    let alone = Host::start(&["order-service"]);
    let reply = alone.send("POST", "/api/v1/orders", Some(&order_body(1)));
    assert_eq!(status(&reply), (503, "unavailable".into()));
    assert!(reply.body.contains("shop:users/api"), "{}", reply.body);
    assert_eq!(alone.get("/api/v1/orders").status, 200, "what does not need users still works");
}

#[test]
fn the_gateway_aggregates_and_degrades_when_the_order_service_is_missing() {
    let host = Host::start(SHOP);
    let empty = host.get("/api/v1/dashboard");
    assert_eq!(
        empty.json(),
        json!({ "total_users": 0, "total_orders": 0, "pending_orders": 0, "completed_orders": 0, "total_revenue": 0.0 })
    );
    assert!(!empty.body.contains("-0"), "no negative zero: {}", empty.body);
    for path in ["/api/v1/dashboard", "/api/v1/orders", "/api/v1/users"] {
        assert_eq!(host.get(path).header("x-service-version"), Some("0.1.0"), "{path} names its service's version");
    }
    create_user(&host, "Ada", "ada@example.com");
    create_user(&host, "Grace", "grace@example.com");
    create_order(&host, 1);
    create_order(&host, 1);
    let third = create_order(&host, 2);
    host.send("PUT", "/api/v1/orders/1", Some(&json!({ "status": "confirmed" })));
    host.send("PUT", "/api/v1/orders/1", Some(&json!({ "status": "shipped" })));
    host.send("PUT", "/api/v1/orders/1", Some(&json!({ "status": "delivered" })));
    host.send("DELETE", &format!("/api/v1/orders/{}", third["id"]), None);

    let profile = host.get("/api/v1/users/1/profile");
    assert_eq!(profile.status, 200, "{}", profile.body);
    let profile = profile.json();
    assert_eq!(profile["user"]["name"], "Ada");
    assert_eq!(profile["total_orders"], 2);
    assert_eq!(profile["orders"].as_array().unwrap().len(), 2);
    assert_eq!(host.get("/api/v1/users/42/profile").status, 404);

    let dashboard = host.get("/api/v1/dashboard").json();
    let each_order = 3.0 * 19.99 + 5.5;
    assert_eq!(dashboard["total_users"], 2);
    assert_eq!(dashboard["total_orders"], 3);
    assert_eq!(dashboard["pending_orders"], 1);
    assert_eq!(dashboard["completed_orders"], 1);
    assert!((dashboard["total_revenue"].as_f64().unwrap() - 2.0 * each_order).abs() < 1e-9, "{dashboard}");
    drop(host);

    let host = Host::start(&["user-service", "gateway"]);
    create_user(&host, "Ada", "ada@example.com");
    let degraded = host.get("/api/v1/users/1/profile");
    assert_eq!(degraded.status, 200, "{}", degraded.body);
    let degraded = degraded.json();
    assert_eq!(degraded["user"]["name"], "Ada");
    assert_eq!(degraded["orders"], Value::Null);
    assert!(degraded["degraded"].as_str().unwrap().contains("shop:orders/api"), "{degraded}");
    let dashboard = host.get("/api/v1/dashboard");
    assert_eq!(status(&dashboard), (503, "unavailable".into()));
    assert!(dashboard.body.contains("shop:orders/api"));
}

/// A request with an exact content type and body.
fn raw(url: &str, method: &str, content_type: &str, body: &[u8]) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap();
    support::send(request)
}

/// A POST with a chunked body (no Content-Length), over a plain socket: (status, body).
fn raw_chunked(base: &str, path: &str, body: &[u8]) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(512) {
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream.write_all(chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(30) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
        if response.windows(4).any(|w| w == b"\r\n\r\n") && String::from_utf8_lossy(&response).contains("}}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn the_seeds_example_order_with_a_product_sku_is_accepted_and_echoed_as_given() {
    let host = Host::start(&["user-service", "order-service", "gateway"]);
    create_user(&host, "Ada", "ada@example.com");
    let body = json!({
        "user_id": 1,
        "items": [
            { "product_id": "prod-1", "product_name": "Laptop", "quantity": 1, "price": 999.99 },
            { "product_id": 7, "product_name": "Mouse", "quantity": 2, "price": 25.0 }
        ],
        "shipping_address": "123 Main St, City, Country"
    });
    let reply = host.send("POST", "/api/v1/orders", Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let order = reply.json();
    assert_eq!(order["items"][0]["product_id"], "prod-1", "a SKU stays a string");
    assert_eq!(order["items"][1]["product_id"], 7, "a number stays a number");
    assert_eq!(host.get("/api/v1/orders/1").json()["items"][0]["product_id"], "prod-1");
    let profile = host.get("/api/v1/users/1/profile").json();
    assert_eq!(profile["orders"][0]["items"][0]["product_id"], "prod-1", "through the gateway too");

    for bad in [json!(""), json!(0), json!(-3), json!(1.5), json!(null), json!(["prod-1"])] {
        let mut body = body.clone();
        body["items"][0]["product_id"] = bad.clone();
        let reply = host.send("POST", "/api/v1/orders", Some(&body));
        assert_eq!(status(&reply), (422, "validation_error".into()), "product_id {bad}: {}", reply.body);
    }
}
