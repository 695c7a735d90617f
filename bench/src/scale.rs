//! The scale section of `make bench` (alone: `make bench-scale`): one host per size, each
//! loaded through its HTTP API with 1,000, 100,000 or 1,000,000 orders spread over 10,000
//! users, then the p50 and p99 latency of every listing a shop serves at each size, timed in
//! turn across the hosts so that the shared machine's drift hits every size alike. One user
//! has exactly 100 orders at every size. Also: the write rate while loading, the bytes stored
//! per order, and the largest host's resident memory 10 s after the run. Writes `bench/results/SCALE.md` and
//! `bench/results/scale.svg`.
//!
//! `SCALE_SIZES=1000,100000` runs a shorter ladder.

// Shared with the other benchmarks, each of which uses a part.
#[allow(dead_code)]
#[path = "chart.rs"]
mod chart;
#[allow(dead_code)]
#[path = "systems.rs"]
mod systems;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

const USERS: u64 = 10_000;
/// Connections loading orders.
const LOADERS: usize = 32;
/// Requests timed per listing and size.
const SAMPLES: usize = 1000;
const PAGE_SIZE: u64 = 20;

/// The path of a timed request, given the number of orders stored.
type PathAt = Box<dyn Fn(u64) -> String>;

fn sizes() -> Vec<u64> {
    let text = std::env::var("SCALE_SIZES").unwrap_or_else(|_| "1000,100000,1000000".into());
    text.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One request; its status and body.
fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<String>) -> anyhow::Result<(u16, String)> {
    let request = http::Request::builder().method(method).uri(url).header("content-type", "application/json");
    let mut reply = agent.run(request.body(body.unwrap_or_default())?)?;
    Ok((reply.status().as_u16(), reply.body_mut().with_config().limit(u64::MAX).read_to_string()?))
}

fn order(user: u64) -> String {
    format!(
        r#"{{"user_id":{user},"shipping_address":"12 Rue de la Paix, Paris","items":[{{"product_id":1,"product_name":"Widget","quantity":3,"price":19.99}},{{"product_id":"prod-2","product_name":"Gadget","quantity":1,"price":5.5}}]}}"#
    )
}

/// POSTs `count` of `body(n)` from [`LOADERS`] connections; every answer must be 201.
fn load(base: &str, path: &str, count: u64, body: impl Fn(u64) -> String + Sync) -> anyhow::Result<Duration> {
    let (next, failed, first) = (AtomicU64::new(0), AtomicU64::new(0), std::sync::Mutex::new(None));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..LOADERS {
            s.spawn(|| {
                let agent = agent();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return;
                    }
                    let answer = send(&agent, "POST", &format!("{base}{path}"), Some(body(n)));
                    if !matches!(answer, Ok((201, _))) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first.lock().unwrap().get_or_insert_with(|| format!("{answer:?}"));
                    }
                }
            });
        }
    });
    let failed = failed.load(Ordering::Relaxed);
    anyhow::ensure!(failed == 0, "{failed} of {count} POSTs failed, the first: {:?}", first.lock().unwrap());
    Ok(started.elapsed())
}

/// p50 and p99 in milliseconds of each of `urls[host][request]`, GET [`SAMPLES`] times over
/// one connection per host, the requests and the hosts taken in turn so that the machine's
/// drift hits every size alike.
fn time(agent: &ureq::Agent, urls: &[Vec<String>]) -> anyhow::Result<Vec<Vec<(f64, f64)>>> {
    let mut samples: Vec<Vec<Vec<f64>>> =
        urls.iter().map(|host| vec![Vec::with_capacity(SAMPLES); host.len()]).collect();
    for _ in 0..SAMPLES {
        for request in 0..urls[0].len() {
            for (host, samples) in urls.iter().zip(&mut samples) {
                let url = &host[request];
                let started = Instant::now();
                let (status, body) = send(agent, "GET", url, None)?;
                anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
                samples[request].push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let percentiles = |mut s: Vec<f64>| {
        s.sort_by(f64::total_cmp);
        (s[SAMPLES / 2], s[SAMPLES * 99 / 100])
    };
    Ok(samples.into_iter().map(|host| host.into_iter().map(percentiles).collect()).collect())
}

/// A host of its own, loaded to one size.
struct Shop {
    server: systems::Server,
    data: std::path::PathBuf,
    size: u64,
    /// Orders written per second while loading it.
    rate: f64,
    _work: tempfile::TempDir,
}

/// Starts a host on fresh storage and loads it through HTTP: the users, the measured user
/// with exactly 100 orders, then orders spread over the users up to `size`.
fn shop(root: &Path, size: u64) -> anyhow::Result<Shop> {
    let work = tempfile::tempdir()?;
    let shop = ["user-service", "order-service", "gateway"];
    let server = systems::trellis_shop(root, &root.join("dist"), &shop, work.path())?;
    let (base, data) = (server.base.clone(), work.path().join("data"));
    let signups = |n: u64| format!(r#"{{"name":"User {n}","email":"user{n}@example.com"}}"#);
    load(&base, "/api/v1/users", USERS, signups)?;
    load(&base, "/api/v1/users", 1, |_| r#"{"name":"Measured","email":"measured@example.com"}"#.into())?;
    load(&base, "/api/v1/orders", 100, |_| order(MEASURED))?;
    let more = size.saturating_sub(100);
    let took = load(&base, "/api/v1/orders", more, |n| order(n % USERS + 1))?;
    println!("loaded {size} orders");
    Ok(Shop { server, data, size, rate: more as f64 / took.as_secs_f64().max(1e-9), _work: work })
}

/// The user who has exactly 100 orders at every size: the one signed up after the others.
const MEASURED: u64 = USERS + 1;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let requests: [(&str, PathAt); 8] = [
        ("orders, first page", Box::new(|_| format!("/api/v1/orders?page=1&page_size={PAGE_SIZE}"))),
        (
            "orders, middle page",
            Box::new(|n| format!("/api/v1/orders?page={}&page_size={PAGE_SIZE}", n / PAGE_SIZE / 2 + 1)),
        ),
        (
            "orders, last page",
            Box::new(|n| format!("/api/v1/orders?page={}&page_size={PAGE_SIZE}", n.div_ceil(PAGE_SIZE))),
        ),
        (
            "pending, middle page",
            Box::new(|n| format!("/api/v1/orders?status=pending&page={}&page_size={PAGE_SIZE}", n / PAGE_SIZE / 2 + 1)),
        ),
        ("a user's 100 orders", Box::new(|_| format!("/api/v1/orders/user/{MEASURED}"))),
        ("a user's profile", Box::new(|_| format!("/api/v1/users/{MEASURED}/profile"))),
        ("dashboard", Box::new(|_| "/api/v1/dashboard".into())),
        ("one order", Box::new(|n| format!("/api/v1/orders/{}", n / 2))),
    ];
    // One host per size, all kept running, so that every size is timed in the same minutes.
    let shops: Vec<Shop> = sizes().into_iter().map(|size| shop(&root, size)).collect::<Result<_, _>>()?;
    // Let the disk settle after the writes, as a shop between bursts would.
    std::thread::sleep(Duration::from_secs(5));
    let urls: Vec<Vec<String>> = shops
        .iter()
        .map(|shop| requests.iter().map(|(_, path)| format!("{}{}", shop.server.base, path(shop.size))).collect())
        .collect();
    let timed = time(&agent(), &urls)?;
    let results: Vec<(u64, Vec<(f64, f64)>)> = shops.iter().map(|shop| shop.size).zip(timed).collect();
    let rates: Vec<(u64, f64)> = shops.iter().map(|shop| (shop.size, shop.rate)).collect();
    std::thread::sleep(Duration::from_secs(10));
    let largest = shops.last().context("no size to measure")?;
    let (rss, stored) = (systems::rss_mib(largest.server.pid()), largest.size);
    let bytes = std::fs::metadata(largest.data.join("store.redb"))?.len();
    drop(shops);

    let mut out = String::from("# Scale: the shop at a thousand and at a million orders\n\n");
    writeln!(
        out,
        "Command: `make bench-scale` (part of `make bench`). Orders loaded through `POST /api/v1/orders` from {LOADERS} connections over {USERS} users; one host per size, all running; each request timed {SAMPLES} times per size, 5 s after loading, the requests and the sizes in turn (so that the machine's drift hits every size alike); pages of {PAGE_SIZE}.\n"
    )?;
    write!(out, "| request |")?;
    for (size, _) in &results {
        write!(out, " p50 / p99 at {size} (ms) |")?;
    }
    writeln!(out, " p50, p99 at the largest / at the smallest |")?;
    writeln!(out, "|---|{}---|", "---|".repeat(results.len()))?;
    for (i, (name, _)) in requests.iter().enumerate() {
        write!(out, "| {name} |")?;
        for (_, row) in &results {
            write!(out, " {:.2} / {:.2} |", row[i].0, row[i].1)?;
        }
        let (first, last) = (results[0].1[i], results[results.len() - 1].1[i]);
        writeln!(out, " {:.2}x, {:.2}x |", last.0 / first.0, last.1 / first.1)?;
    }
    writeln!(out, "\n| while loading up to | orders written per second |\n|---|---|")?;
    for (size, rate) in &rates {
        writeln!(out, "| {size} | {rate:.0} |")?;
    }
    writeln!(
        out,
        "\nStored: {bytes} bytes for {stored} orders and {} users ({:.0} bytes per order, indexes and figures included). Resident memory of the host with {stored} orders 10 s after the run: {rss} MiB.",
        USERS + 1,
        bytes as f64 / stored as f64
    )?;
    writeln!(out, "\n![p50 latency by size](scale.svg)")?;
    let groups: Vec<String> = requests.iter().map(|(name, _)| name.to_string()).collect();
    let labels: Vec<String> = results.iter().map(|(size, _)| format!("{size} orders")).collect();
    let series: Vec<(&str, Vec<f64>)> = results
        .iter()
        .zip(&labels)
        .map(|((_, row), label)| (label.as_str(), row.iter().map(|r| r.0).collect()))
        .collect();
    chart::bars(
        &root.join("bench/results/scale.svg"),
        "The shop's requests by number of orders: p50 latency",
        "ms",
        &groups,
        &series,
    )?;
    std::fs::write(root.join("bench/results/SCALE.md"), &out)?;
    println!("{out}");
    Ok(())
}
