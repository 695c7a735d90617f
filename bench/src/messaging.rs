//! Messaging in `make bench` (alone: `make bench-messaging`): Trellis's embedded bus side by
//! side with NATS JetStream on the same machine, both keeping every message on disk before
//! acknowledging it (Trellis: redb, fsync per commit; JetStream: file storage with
//! `sync_interval: always`), both delivering to one subscriber that acknowledges.
//!
//! - Durable publish throughput, 16 concurrent publishers: for Trellis, `wrk` posting to a
//!   copy of the `events` test component, which publishes each body (`producer.send`) to
//!   another copy that subscribes; for JetStream, 16
//!   tasks publishing with async-nats and awaiting each acknowledgement.
//! - Publish-to-handler latency at 1,000 messages/s, open loop: each message carries the time
//!   it was sent; the handler (the `events` component's, or an async-nats consumer's) records
//!   how long it took. For Trellis that includes the HTTP request to the publishing component.
//!
//! Rounds alternate between the two; medians. Writes `bench/results/MESSAGING.md`.

#[allow(dead_code)]
#[path = "systems.rs"]
mod systems;
#[allow(dead_code)]
#[path = "wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

const ROUNDS: usize = 3;
const PUBLISHERS: usize = 16;
const RATE: u64 = 1000;

fn seconds() -> Duration {
    Duration::from_secs(std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10))
}

/// One round's figures for one system.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Messages durably published per second by 16 concurrent publishers.
    throughput: f64,
    /// Publish-to-handler latency at [`RATE`] messages/s.
    p50_ms: f64,
    p99_ms: f64,
    /// Messages sent in the latency run that never reached the handler.
    lost: u64,
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize()?;
    let events = root.join("dist/testing/events.wasm");
    anyhow::ensure!(events.is_file(), "{} is missing: run `make components`", events.display());
    let mut trellis_runs = Vec::new();
    let mut nats_runs = Vec::new();
    for round in 0..ROUNDS {
        let trellis_first = round % 2 == 0;
        for k in 0..2 {
            if (k == 0) == trellis_first {
                trellis_runs.push(trellis(&root, &events).await?);
            } else {
                nats_runs.push(jetstream_round(&root).await?);
            }
        }
        eprintln!("round {} of {ROUNDS} done", round + 1);
    }
    let (trellis, nats) = (median(trellis_runs), median(nats_runs));
    let mut out = String::from("# Messaging: Trellis's embedded bus and NATS JetStream\n\n");
    let _ = writeln!(
        out,
        "Measured by `make bench-messaging` ({ROUNDS} alternated rounds, medians; {} s runs) on {}.\n",
        seconds().as_secs(),
        systems_line()
    );
    out.push_str(
        "Both store every message on disk before acknowledging it (Trellis: redb, fsync per commit, \
         concurrent sends sharing commits; JetStream: file storage, `sync_interval: always`), and both \
         deliver to one subscriber that acknowledges each message.\n\n",
    );
    out.push_str("| system | durable publishes/s (16 publishers) | p50 publish-to-handler at 1,000/s | p99 | lost |\n");
    out.push_str("|---|---|---|---|---|\n");
    for (name, f) in [("Trellis (wasi:messaging, embedded)", trellis), ("NATS JetStream 2.15 (async-nats)", nats)] {
        let _ =
            writeln!(out, "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |", f.throughput, f.p50_ms, f.p99_ms, f.lost);
    }
    let _ = writeln!(out, "\nThroughput ratio, Trellis / JetStream: {:.2}.", trellis.throughput / nats.throughput);
    out.push_str(
        "\nTrellis's publishers are HTTP clients of a component that publishes (`wrk` posting to the \
         `events` test component), so its figures include an HTTP request per message; JetStream's are \
         async-nats clients publishing directly.\n",
    );
    print!("{out}");
    let results = root.join("bench/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("MESSAGING.md"), out)?;
    Ok(())
}

fn systems_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    format!("{cpu}, {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()))
}

fn median(mut runs: Vec<Figures>) -> Figures {
    let middle = runs.len() / 2;
    runs.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
    let throughput = runs[middle].throughput;
    runs.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
    Figures { throughput, ..runs[middle] }
}

/// One Trellis round: a fresh host serving the `events` component twice: as `publisher`
/// (subscribing to nothing here) and as `events`, the subscriber.
async fn trellis(root: &Path, events: &Path) -> anyhow::Result<Figures> {
    let work = tempfile::tempdir()?;
    let components = work.path().join("components");
    std::fs::create_dir_all(&components)?;
    std::fs::copy(events, components.join("events.wasm"))?;
    std::fs::copy(events, components.join("publisher.wasm"))?;
    let config = work.path().join("trellis.toml");
    std::fs::write(&config, "[components.publisher]\nsubscribe = [\"elsewhere.>\"]\n")?;
    let bin = root.join("target/release/trellis");
    let server = systems::trellis(&bin, &components, &work.path().join("data"), Some(&config))?;
    let script = work.path().join("publish.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"text/plain\"\nwrk.body = \"x\"\n",
    )?;
    let url = format!("{}/publisher/publish/bench.sink", server.base);
    wrk::run(&url, PUBLISHERS as u32, Duration::from_secs(2), Some(&script))?; // warm-up
    let load = wrk::run(&url, PUBLISHERS as u32, seconds(), Some(&script))?;
    anyhow::ensure!(load.failures == 0, "{} publishes failed", load.failures);

    // Open loop: one message a millisecond, each its own request over kept-alive connections.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}/publisher/publish/bench.latency", server.base);
    let post = move |body: String| {
        let (agent, url) = (agent.clone(), url.clone());
        async move {
            let sent = move || agent.post(&url).content_type("text/plain").send(body).map(|r| r.status() == 204);
            tokio::task::spawn_blocking(sent).await.ok().and_then(Result::ok).unwrap_or(false)
        }
    };
    let sent = open_loop(|_| post(format!("t:{}", now_ns()))).await;
    anyhow::ensure!(post("flush".into()).await, "the flush message was not published");
    let latencies_url = format!("{}/events/latencies", server.base);
    let started = Instant::now();
    let latencies = loop {
        let body = ureq::get(&latencies_url).call()?.body_mut().read_to_string()?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        let found: Vec<f64> = json["latencies_ns"]
            .as_array()
            .context("latencies")?
            .iter()
            .filter_map(|v| v.as_f64())
            .map(|ns| ns / 1e6)
            .collect();
        if found.len() as u64 >= sent || started.elapsed() > Duration::from_secs(30) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(figures(load.rps, latencies, sent))
}

/// One JetStream round: a fresh server, a stream on `bench.>` and a durable consumer.
async fn jetstream_round(root: &Path) -> anyhow::Result<Figures> {
    let store = tempfile::tempdir()?;
    let (_server, url) = systems::nats_jetstream(root, store.path())?;
    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client);
    let stream = js
        .create_stream(stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config { durable_name: Some("handler".into()), ..Default::default() })
        .await?;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let received = Arc::new(AtomicU64::new(0));
    let handler = {
        let (latencies, received) = (latencies.clone(), received.clone());
        let mut messages = consumer.messages().await?;
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let payload = std::str::from_utf8(&message.payload).ok();
                if let Some(sent) = payload.and_then(|p| p.strip_prefix("t:")?.parse::<u128>().ok()) {
                    latencies.lock().unwrap().push(now_ns().saturating_sub(sent) as f64 / 1e6);
                }
                received.fetch_add(1, Ordering::Relaxed);
                let _ = message.ack().await;
            }
        })
    };

    let publish_for = |duration: Duration| {
        let js = js.clone();
        async move {
            let deadline = Instant::now() + duration;
            let mut tasks = Vec::new();
            for _ in 0..PUBLISHERS {
                let js = js.clone();
                tasks.push(tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let ack = js.publish("bench.sink", "x".into()).await?;
                        ack.await?;
                        done += 1;
                    }
                    anyhow::Ok(done)
                }));
            }
            let mut total = 0;
            for task in tasks {
                total += task.await??;
            }
            anyhow::Ok(total)
        }
    };
    publish_for(Duration::from_secs(2)).await?; // warm-up
    let started = Instant::now();
    let published = publish_for(seconds()).await?;
    let throughput = published as f64 / started.elapsed().as_secs_f64();

    latencies.lock().unwrap().clear();
    let sent = open_loop(move |_| {
        let js = js.clone();
        async move {
            let payload = format!("t:{}", now_ns());
            match js.publish("bench.latency", payload.into()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    let started = Instant::now();
    while (latencies.lock().unwrap().len() as u64) < sent && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handler.abort();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(figures(throughput, latencies, sent))
}

/// Sends [`RATE`] messages a second for the run's duration, each in a task of its own, so a
/// slow answer delays no later message; returns how many were acknowledged.
async fn open_loop<F, Fut>(send: F) -> u64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let total = RATE * seconds().as_secs();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        tick.tick().await;
        tasks.push(tokio::spawn(send(n)));
    }
    let mut acknowledged = 0;
    for task in tasks {
        acknowledged += u64::from(task.await.unwrap_or(false));
    }
    acknowledged
}

fn figures(throughput: f64, mut latencies: Vec<f64>, sent: u64) -> Figures {
    latencies.sort_by(f64::total_cmp);
    Figures {
        throughput,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        lost: sent.saturating_sub(latencies.len() as u64),
    }
}
