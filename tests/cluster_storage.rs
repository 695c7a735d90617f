//! Shared storage in cluster mode (`[storage] backend = "nats"`), driven as users would: real
//! `nats-server` processes, real `trellis serve --cluster` hosts running the user service
//! against JetStream key-value, and HTTP.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::nats::Nats;
use support::{Host, eventually, shop};

/// The JetStream stream holding the user service's data in the cluster `shop`.
const USERS_STREAM: &str = "KV_trellis-shop-kv-user-service";

/// A host of the cluster `shop` over `nats` whose components keep their data in JetStream.
fn host(nats: &Nats, id: &str, components: &[&str]) -> Host {
    let config = "[cluster]\nname = \"shop\"\nheartbeat = 300\n\n[storage]\nbackend = \"nats\"\n";
    Host::start_with_args(components, config, &["--cluster", &nats.urls(), "--host-id", id])
}

#[test]
fn replicas_on_two_hosts_share_their_data_ids_and_unique_emails() {
    let nats = Nats::single();
    let a = host(&nats, "kv-a", &["user-service"]);
    let b = host(&nats, "kv-b", &["user-service"]);

    // Written on one host, read on the other: one bucket, whichever replica answers.
    let ada = shop::create_user(&a, "Ada", "ada@example.com");
    let read = b.get(&format!("/api/v1/users/{}", ada["id"]));
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()["email"], "ada@example.com");

    // Ids drawn on both hosts from one counter never meet.
    let mut ids = BTreeSet::from([ada["id"].as_u64().unwrap()]);
    for n in 0..10 {
        let host = if n % 2 == 0 { &a } else { &b };
        let user = shop::create_user(host, "User", &format!("user{n}@example.com"));
        assert!(ids.insert(user["id"].as_u64().unwrap()), "id {} given twice", user["id"]);
    }

    // The same email raced from both hosts at once: one wins, the others are told why.
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let url = if n % 2 == 0 { a.public.clone() } else { b.public.clone() };
            let statuses = statuses.clone();
            std::thread::spawn(move || {
                let body = serde_json::json!({ "name": "Twin", "email": "twin@example.com" });
                let reply = support::request("POST", &format!("{url}/api/v1/users"), Some(&body));
                statuses.lock().unwrap().push(reply.status);
            })
        })
        .collect();
    racers.into_iter().for_each(|r| r.join().unwrap());
    let mut statuses = statuses.lock().unwrap().clone();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);

    // Listing reads the shared bucket in key order, with the shared total.
    let listed = b.get("/api/v1/users?page_size=100").json();
    assert_eq!(listed["total"], 12, "{listed}");
    let listed: Vec<u64> = listed["items"].as_array().unwrap().iter().map(|u| u["id"].as_u64().unwrap()).collect();
    assert_eq!(listed.len(), 12);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "in id order: {listed:?}");

    // A deletion on one host is seen by the other.
    assert_eq!(b.send("DELETE", &format!("/api/v1/users/{}", ada["id"]), None).status, 204);
    assert_eq!(a.get(&format!("/api/v1/users/{}", ada["id"])).status, 404);
    let metrics = a.get("/metrics").body;
    assert!(
        metrics.lines().any(|l| l.starts_with("trellis_storage_operations_total{")
            && l.contains("component=\"user-service\"")
            && l.contains("result=\"ok\"")),
        "{metrics}"
    );
}

#[test]
fn killing_the_storage_leader_loses_no_acknowledged_write() {
    let mut nats = Nats::cluster(3);
    let a = host(&nats, "leader-a", &["user-service"]);
    // A new NATS cluster elects its JetStream leaders first; the first write waits for that (a
    // try that timed out may still have been stored: then the next one is a conflict).
    eventually(Duration::from_secs(60), "the cluster's storage to take a first write", || {
        let body = serde_json::json!({ "name": "First", "email": "first@example.com" });
        matches!(a.send("POST", "/api/v1/users", Some(&body)).status, 201 | 409)
    });
    let before: Vec<(u64, String)> = (0..10)
        .map(|n| {
            let email = format!("before{n}@example.com");
            (shop::create_user(&a, "Before", &email)["id"].as_u64().unwrap(), email)
        })
        .collect();
    let leader = nats.stream_leader(USERS_STREAM).expect("the users' stream has a leader");

    // A steady stream of writes, each acknowledged one remembered.
    let (stop, acknowledged, refused) =
        (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(0)));
    let writer = {
        let (url, stop, acknowledged, refused) =
            (a.public.clone(), stop.clone(), acknowledged.clone(), refused.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let email = format!("during{n}@example.com");
                let body = serde_json::json!({ "name": "During", "email": email });
                let reply = support::request("POST", &format!("{url}/api/v1/users"), Some(&body));
                match reply.status {
                    201 => {
                        acknowledged.lock().unwrap().push((reply.json()["id"].as_u64().unwrap(), email, Instant::now()))
                    }
                    _ => *refused.lock().unwrap() += 1,
                }
            }
        })
    };
    eventually(Duration::from_secs(10), "writes before the kill", || acknowledged.lock().unwrap().len() >= 5);
    let server = nats.servers.iter_mut().find(|s| s.name == leader).unwrap();
    server.kill();
    let killed = Instant::now();

    eventually(Duration::from_secs(30), "writes to resume under a new leader", || {
        acknowledged.lock().unwrap().iter().filter(|(_, _, at)| *at > killed + Duration::from_millis(100)).count() >= 5
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let new_leader = nats.stream_leader(USERS_STREAM).expect("a new leader");
    assert_ne!(new_leader, leader);

    let during: Vec<(u64, String)> =
        acknowledged.lock().unwrap().iter().map(|(id, email, _)| (*id, email.clone())).collect();
    eprintln!(
        "{} writes acknowledged around the kill, {} refused while the leader was elected",
        during.len(),
        refused.lock().unwrap()
    );
    for (id, email) in before.iter().chain(&during) {
        let reply = a.get(&format!("/api/v1/users/{id}"));
        assert_eq!(reply.status, 200, "acknowledged user {id} is lost: {}", reply.body);
        assert_eq!(reply.json()["email"], email.as_str());
    }
}

#[test]
fn the_nats_backend_without_a_cluster_is_refused_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("components")).unwrap();
    std::fs::write(dir.path().join("trellis.toml"), "[storage]\nbackend = \"nats\"\n").unwrap();
    let (ok, _, err) = support::trellis(&[
        "serve",
        "--config",
        dir.path().join("trellis.toml").to_str().unwrap(),
        "--components",
        dir.path().join("components").to_str().unwrap(),
        "--data",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("backend = \"nats\" needs a cluster"), "{err}");
}
