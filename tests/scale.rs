//! Cost that does not grow with the data: the shop loaded through its HTTP API with 20,000
//! orders over 200 users answers every listing correctly (pages, totals, filters, a user's
//! orders complete and in order) from its indexes, and streams all of a user's 20,000 orders
//! while the order service may use only 16 MiB of memory.

mod support;

use serde_json::{Value, json};
use support::Host;
use support::shop::{create_user, order_body};

/// Sends `requests` from 8 threads over kept-alive connections; every answer must be `want`.
fn load(host: &Host, want: u16, requests: Vec<(&'static str, String, Value)>) {
    let chunk = requests.len().div_ceil(8).max(1);
    std::thread::scope(|s| {
        for part in requests.chunks(chunk) {
            let base = host.public.clone();
            s.spawn(move || {
                let agent = support::agent();
                for (method, path, body) in part {
                    let request = http::Request::builder()
                        .method(*method)
                        .uri(format!("{base}{path}"))
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .unwrap();
                    let mut reply = agent.run(request).unwrap();
                    let status = reply.status().as_u16();
                    let text = reply.body_mut().read_to_string().unwrap_or_default();
                    assert_eq!(status, want, "{method} {path}: {text}");
                }
            });
        }
    });
}

fn ids(page: &Value) -> Vec<u64> {
    page["items"].as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect()
}

#[test]
fn twenty_thousand_orders_list_page_by_page_from_their_indexes_and_stream_whole() {
    let config = "[components.order-service]\nmemory_mib = 16\n";
    let host = Host::start_with(&["user-service", "order-service", "gateway"], config);
    for i in 1..=200 {
        create_user(&host, &format!("User {i}"), &format!("user{i}@example.com"));
    }
    // Each user orders 100 times, interleaved with the others.
    let orders = (0..20_000u64).map(|n| ("POST", "/api/v1/orders".to_string(), order_body(n % 200 + 1))).collect();
    load(&host, 201, orders);
    let confirm = |id: u64| ("PUT", format!("/api/v1/orders/{id}"), json!({ "status": "confirmed" }));
    load(&host, 200, (1..=2_000).map(|k| confirm(k * 10)).collect());

    let page = |query: &str| host.get(&format!("/api/v1/orders?{query}")).json();
    let first = page("page=1&page_size=100");
    assert_eq!((ids(&first), first["total"].as_u64()), ((1..=100).collect(), Some(20_000)));
    assert_eq!(ids(&page("page=100&page_size=100")), (9_901..=10_000).collect::<Vec<_>>(), "a middle page");
    assert_eq!(ids(&page("page=200&page_size=100")), (19_901..=20_000).collect::<Vec<_>>(), "the last page");
    assert!(ids(&page("page=201&page_size=100")).is_empty(), "past the end");

    let confirmed = page("status=confirmed&page=3&page_size=100");
    assert_eq!(confirmed["total"], 2_000);
    assert_eq!(ids(&confirmed), (201..=300).map(|k| k * 10).collect::<Vec<_>>());
    let pending = page("status=pending&page=180&page_size=100");
    assert_eq!(pending["total"], 18_000);
    assert_eq!(ids(&pending).len(), 100);
    assert!(ids(&pending).iter().all(|id| id % 10 != 0) && ids(&pending).last() == Some(&19_999));

    // Orders were created concurrently, so user 7's ids are whatever its requests drew.
    let all_of_seven = host.get("/api/v1/orders/user/7").json();
    let listed: Vec<u64> = all_of_seven.as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(listed.len(), 100, "complete");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert!(all_of_seven.as_array().unwrap().iter().all(|o| o["user_id"] == 7), "only user 7's");
    let of_seven = page("user_id=7&page=2&page_size=50");
    assert_eq!(of_seven["total"], 100);
    assert_eq!(ids(&of_seven), listed[50..].to_vec());
    let dashboard = host.get("/api/v1/dashboard").json();
    assert_eq!(
        (dashboard["total_orders"].as_u64(), dashboard["pending_orders"].as_u64()),
        (Some(20_000), Some(18_000))
    );
    let each = order_body(1)["items"]
        .as_array()
        .unwrap()
        .iter()
        .fold(0.0, |sum, i| sum + i["quantity"].as_f64().unwrap() * i["price"].as_f64().unwrap());
    assert!((dashboard["total_revenue"].as_f64().unwrap() - 20_000.0 * each).abs() < 1e-3, "{dashboard}");
    let profile = host.get("/api/v1/users/7/profile").json();
    assert_eq!((profile["total_orders"].as_u64(), profile["orders"].as_array().map(Vec::len)), (Some(100), Some(100)));

    // One user with 20,000 orders, streamed whole by an order service limited to 16 MiB.
    let big = create_user(&host, "Big Spender", "big@example.com")["id"].as_u64().unwrap();
    load(&host, 201, (0..20_000).map(|_| ("POST", "/api/v1/orders".to_string(), order_body(big))).collect());
    let reply = host.get(&format!("/api/v1/orders/user/{big}"));
    assert_eq!(reply.status, 200);
    let streamed: Vec<Value> = serde_json::from_str(&reply.body).expect("one complete JSON array");
    assert_eq!(streamed.len(), 20_000);
    assert!(streamed.windows(2).all(|w| w[0]["id"].as_u64() < w[1]["id"].as_u64()), "oldest first");
    // Ids now pass 32,768: pages are found across index groups too.
    let deep = page("page=1700&page_size=20");
    assert_eq!((ids(&deep), deep["total"].as_u64()), ((33_981..=34_000).collect(), Some(40_000)));
    let theirs: Vec<u64> = streamed.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    let deep = page(&format!("user_id={big}&page=900&page_size=20"));
    assert_eq!((ids(&deep), deep["total"].as_u64()), (theirs[17_980..18_000].to_vec(), Some(20_000)));
    let profile = host.get(&format!("/api/v1/users/{big}/profile")).json();
    assert_eq!(
        (profile["total_orders"].as_u64(), profile["orders"].as_array().map(Vec::len)),
        (Some(20_000), Some(100))
    );
}
