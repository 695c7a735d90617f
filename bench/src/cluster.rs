//! A call to a component on another host, against a bare NATS request/reply of the same
//! payload, measured side by side in one run (`make bench-cluster`, also in `make bench`).
//!
//! One `nats-server` (installed by `tools/nats-server.sh`); two Trellis registries in this
//! process, each joined to the cluster as its own host: one runs `provider`, the other
//! `consumer`, whose `test:greet/api` import therefore links to the provider on the other host.
//!
//! - **remote call**: timed from inside the consumer, as `make bench-calls` times a local one:
//!   `greet-times(1 + N)` minus `greet-times(1)`, over N. Each call goes through the link's
//!   breaker, is encoded in WAVE, crosses NATS to the other host, runs on a warm provider
//!   instance there and comes back.
//! - **bare NATS**: an async-nats requester and responder in the same process, over the same
//!   server, sending the same bytes (`greet("bench")`, answered `ok("Hello, bench!")`) one
//!   request at a time.
//!
//! Then `POST /api/v1/orders` at 16 connections (wrk) with the order and user services on one
//! host, and on two hosts of a cluster (`trellis serve` processes, the order service on one,
//! the user service it validates users with on the other): what crossing hosts costs a request.
//!
//! Then the storage: the user service on a host keeping its data in the embedded redb, and on
//! a host keeping it in JetStream key-value (`[storage] backend = "nats"`), one connection at
//! a time: `GET /api/v1/users/1` is one key read, `POST /api/v1/users` a sequence draw and one
//! conditional write of three keys (the user, its email's index entry expected absent, the
//! total). The difference between the two hosts is the storage's.
//!
//! Rounds alternate; medians. Writes `bench/results/CLUSTER.md`.

#[allow(dead_code)]
#[path = "systems.rs"]
mod systems;
#[allow(dead_code)]
#[path = "wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use trellis::breaker::{Clock, SystemClock};
use trellis::cluster::Cluster;
use trellis::config::Config;
use trellis::{Bus, CallContext, Engines, Registry, Shared, Storage};
use wasmtime::component::Val;

/// Calls per timed round.
const CALLS: u32 = 1_000;
const ROUNDS: usize = 15;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn context() -> CallContext {
    CallContext { deadline: Instant::now() + Duration::from_secs(600), depth: 0, correlation_id: Arc::from("bench") }
}

/// A registry serving `component` as host `id` of the cluster over `nats`.
async fn host(work: &Path, id: &str, component: &str, nats: &str) -> anyhow::Result<Arc<Registry>> {
    let dir = work.join(id);
    let components = dir.join("components");
    std::fs::create_dir_all(&components)?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../dist/testing/{component}.wasm"));
    anyhow::ensure!(source.is_file(), "{} is missing: run `make components`", source.display());
    std::fs::copy(&source, components.join(format!("{component}.wasm")))?;
    let mut config = Config::default();
    config.cluster.nats = vec![nats.to_string()];
    config.cluster.host_id = Some(id.to_string());
    let cluster = Cluster::join(&config.cluster, "127.0.0.1:1".to_string()).await?;
    let engines = Engines::new(&config, &dir.join("cache"))?;
    let storage = Storage::open(&dir.join("store.redb"), 16 * 1024 * 1024)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let bus = Bus::open(storage.clone(), config.clone(), clock.clone())?;
    let shared = Shared { engines, config, storage, clock, bus, cluster: Some(cluster.clone()) };
    let registry = Arc::new(Registry::new(Arc::new(shared)));
    registry.rescan(&components).await?;
    let (mut changes, relinked) = (cluster.changes(), registry.clone());
    changes.mark_changed();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            relinked.relink().await;
        }
    });
    Ok(registry)
}

/// Microseconds per call from inside the consumer, one round.
async fn remote_round(consumer: &Registry) -> anyhow::Result<f64> {
    let snapshot = consumer.snapshot();
    let consumer = &snapshot.components["consumer"];
    let repeat = consumer.export_function("test:consumer/repeat@0.1.0", "greet-times").expect("repeat export");
    let per_call = consumer
        .invoke(context(), async |warm| {
            let func = warm.instance.get_func(&mut warm.store, repeat).expect("greet-times");
            let mut run = async |n: u32| -> wasmtime::Result<Duration> {
                let mut results = [Val::U32(0)];
                warm.store.data_mut().call = context();
                let started = Instant::now();
                func.call_async(&mut warm.store, &[Val::U32(n)], &mut results).await?;
                wasmtime::ensure!(results[0] == Val::U32(n), "only {:?} of {n} remote calls succeeded", results[0]);
                Ok(started.elapsed())
            };
            let base = run(1).await?;
            let many = run(CALLS + 1).await?;
            Ok(many.saturating_sub(base).as_secs_f64() * 1e6 / f64::from(CALLS))
        })
        .await?;
    Ok(per_call)
}

/// Microseconds per bare NATS request/reply with the same bytes, one round.
async fn bare_round(client: &async_nats::Client) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..CALLS {
        let reply = client.request("bench.bare", "greet(\"bench\")".into()).await?;
        anyhow::ensure!(reply.payload.starts_with(b"ok("), "unexpected reply {:?}", reply.payload);
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS))
}

const USERS: u32 = 100;

/// Orders per second at 16 connections through the order service, with the user service on
/// the same host (`split` false) or on another host of the cluster over `nats`.
fn orders_round(root: &Path, split: bool, nats: &str, script: &Path) -> anyhow::Result<wrk::Load> {
    let work = tempfile::tempdir()?;
    let bin = root.join("target/release/trellis");
    let host = |id: &str, names: &[&str]| -> anyhow::Result<systems::Server> {
        let dir = work.path().join(id);
        let components = dir.join("components");
        std::fs::create_dir_all(&components)?;
        for name in names {
            std::fs::copy(root.join(format!("dist/{name}.wasm")), components.join(format!("{name}.wasm")))?;
        }
        let config = dir.join("trellis.toml");
        let cluster = format!(
            "[cluster]\nname = \"orders-{}\"\nnats = [\"{nats}\"]\nhost_id = \"{id}\"\n",
            work.path().display().to_string().replace(['/', '.'], "")
        );
        std::fs::write(&config, if split { cluster } else { String::new() })?;
        systems::trellis(&bin, &components, &dir.join("data"), Some(&config))
    };
    let servers = match split {
        true => vec![host("users", &["user-service"])?, host("orders", &["order-service"])?],
        false => vec![host("shop", &["user-service", "order-service"])?],
    };
    let (users, orders) = (&servers[0].base, &servers[servers.len() - 1].base);
    for n in 1..=USERS {
        let user = format!(r#"{{"name":"User {n}","email":"user{n}@example.com"}}"#);
        let status = systems::status("POST", &format!("{users}/api/v1/users"), Some(&user));
        anyhow::ensure!(status == Some(201), "could not create user {n}: {status:?}");
    }
    let url = format!("{orders}/api/v1/orders");
    let order = r#"{"user_id": 1, "items": [{"product_id": 1, "product_name": "W", "quantity": 1, "price": 1.0}], "shipping_address": "x"}"#;
    post_until(&url, order, &[201], "the order service never reached the user service")?;
    wrk::run(&url, 16, Duration::from_secs(2), Some(script))?; // warm-up
    let load = wrk::run(&url, 16, Duration::from_secs(10), Some(script))?;
    anyhow::ensure!(load.failures == 0, "{} failed orders (split: {split})", load.failures);
    Ok(load)
}

/// The p50 latency in ms of `GET /api/v1/users/1` and of `POST /api/v1/users`, one connection,
/// on a host keeping the user service's data in `backend` ("redb" or "nats", over `nats`).
fn storage_round(root: &Path, backend: &str, nats: &str, script: &Path) -> anyhow::Result<(f64, f64)> {
    let work = tempfile::tempdir()?;
    let components = work.path().join("components");
    std::fs::create_dir_all(&components)?;
    std::fs::copy(root.join("dist/user-service.wasm"), components.join("user-service.wasm"))?;
    let config = work.path().join("trellis.toml");
    let cluster = format!(
        "[storage]\nbackend = \"nats\"\n[cluster]\nname = \"kv-{}\"\nnats = [\"{nats}\"]\n",
        work.path().display().to_string().replace(['/', '.'], "")
    );
    std::fs::write(&config, if backend == "nats" { cluster } else { String::new() })?;
    let server =
        systems::trellis(&root.join("target/release/trellis"), &components, &work.path().join("data"), Some(&config))?;
    let users = format!("{}/api/v1/users", server.base);
    // The host serves before it is connected to NATS: the first write waits for that.
    let ada = r#"{"name":"Ada","email":"ada@example.com"}"#;
    post_until(&users, ada, &[201, 409], &format!("could not create the user on {backend}"))?;
    let get = wrk::run(&format!("{users}/1"), 1, Duration::from_secs(5), None)?;
    let post = wrk::run(&users, 1, Duration::from_secs(5), Some(script))?;
    anyhow::ensure!(get.failures == 0 && post.failures == 0, "failed requests on {backend}");
    Ok((get.p50_ms, post.p50_ms))
}

/// POSTs `body` to `url` until it answers one of `statuses`, for up to 30 s.
fn post_until(url: &str, body: &str, statuses: &[u16], failure: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let status = systems::status("POST", url, Some(body));
        if status.is_some_and(|s| statuses.contains(&s)) {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "{failure}: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The wrk script creating users, each with an email of its own.
fn user_script(path: &Path) -> anyhow::Result<()> {
    let script = "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, nil, nil, '{\"name\": \"U\", \"email\": \"u' .. n .. '@example.com\"}')\nend\n";
    Ok(std::fs::write(path, script)?)
}

/// The wrk script posting orders for users spread over the first [`USERS`].
fn order_script(path: &Path) -> anyhow::Result<()> {
    let body = r#"'{"user_id": ' .. user .. ', "items": [{"product_id": 1, "product_name": "Widget", "quantity": 2, "price": 9.5}], "shipping_address": "1 Main St"}'"#;
    let script = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nrequest = function()\n  local user = math.random(1, {USERS})\n  return wrk.format(nil, nil, nil, {body})\nend\n"
    );
    Ok(std::fs::write(path, script)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir()?;
    let store = work.path().join("nats");
    std::fs::create_dir_all(&store)?;
    let (_nats, url) = systems::nats_jetstream(&root, &store)?;
    let _provider = host(work.path(), "bench-provider", "provider", &url).await?;
    let consumer = host(work.path(), "bench-consumer", "consumer", &url).await?;
    let started = Instant::now();
    loop {
        let snapshot = consumer.snapshot();
        let greet =
            snapshot.components["consumer"].links.iter().find(|l| l.interface.full_name == "test:greet/api@1.1.0");
        let linked = greet.is_some_and(|l| l.target().is_some());
        if linked {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the consumer never linked to the provider");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let responder = async_nats::connect(&url).await?;
    let mut requests = responder.subscribe("bench.bare").await?;
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(reply, "ok(\"Hello, bench!\")".into()).await;
            }
        }
    });
    let requester = async_nats::connect(&url).await?;
    requester.flush().await?;

    remote_round(&consumer).await?; // warm-up: instances, connections, caches
    bare_round(&requester).await?;
    let (mut remote, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        remote.push(remote_round(&consumer).await?);
        bare.push(bare_round(&requester).await?);
    }
    let (remote, bare) = (median(remote), median(bare));
    let mut out = String::new();
    writeln!(out, "# A call to a component on another host\n")?;
    writeln!(out, "`make bench-cluster`: medians of {ROUNDS} alternated rounds of {CALLS} sequential calls, one")?;
    writeln!(out, "`nats-server` on loopback, both sides in one process (see `bench/src/cluster.rs`).\n")?;
    writeln!(out, "| measure | median round trip |")?;
    writeln!(out, "|---|---|")?;
    writeln!(out, "| bare NATS request/reply, same payload | {bare:.1} µs |")?;
    writeln!(out, "| Trellis remote call, guest to guest across hosts | {remote:.1} µs |")?;
    writeln!(out, "| Trellis's share on top of the bare round trip | {:+.0}% |", (remote / bare - 1.0) * 100.0)?;

    let script = work.path().join("order.lua");
    order_script(&script)?;
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        one.push(tokio::task::block_in_place(|| orders_round(&root, false, &url, &script))?);
        two.push(tokio::task::block_in_place(|| orders_round(&root, true, &url, &script))?);
    }
    let rps = |loads: &[wrk::Load]| median(loads.iter().map(|l| l.rps).collect());
    let p50 = |loads: &[wrk::Load]| median(loads.iter().map(|l| l.p50_ms).collect());
    writeln!(out, "\n`POST /api/v1/orders`, 16 connections, medians of 3 alternated rounds of 10 s (wrk):\n")?;
    writeln!(out, "| where the user service runs | orders/s | p50 |")?;
    writeln!(out, "|---|---|---|")?;
    writeln!(out, "| on the order service's host | {:.0} | {:.2} ms |", rps(&one), p50(&one))?;
    writeln!(out, "| on another host of the cluster | {:.0} | {:.2} ms |", rps(&two), p50(&two))?;

    let script = work.path().join("user.lua");
    user_script(&script)?;
    let (mut redb, mut jetstream) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        redb.push(tokio::task::block_in_place(|| storage_round(&root, "redb", &url, &script))?);
        jetstream.push(tokio::task::block_in_place(|| storage_round(&root, "nats", &url, &script))?);
    }
    let get = |rounds: &[(f64, f64)]| median(rounds.iter().map(|r| r.0).collect());
    let post = |rounds: &[(f64, f64)]| median(rounds.iter().map(|r| r.1).collect());
    writeln!(
        out,
        "\nThe user service's storage, one connection, p50 per request, medians of 3 alternated rounds of 5 s:\n"
    )?;
    writeln!(out, "| request | redb (embedded) | JetStream KV (`backend = \"nats\"`, one server) |")?;
    writeln!(out, "|---|---|---|")?;
    writeln!(out, "| `GET /api/v1/users/1` (one read) | {:.3} ms | {:.3} ms |", get(&redb), get(&jetstream))?;
    writeln!(
        out,
        "| `POST /api/v1/users` (one conditional write of 3 keys) | {:.3} ms | {:.3} ms |",
        post(&redb),
        post(&jetstream)
    )?;
    print!("{out}");
    std::fs::write(root.join("bench/results/CLUSTER.md"), out)?;
    Ok(())
}
