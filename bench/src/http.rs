//! `make bench`: Trellis side by side with `wasmtime serve` and a plain hyper server, on the
//! same machine in one run, alternating the systems so drift hits them alike. Writes
//! `bench/results/RESULTS.md` and `bench/results/http.svg`.
//!
//! 1. HTTP into the same `hello` component (and the same body from hyper), at several
//!    concurrency levels: successful requests per second, p50 and p99 latency.
//! 2. HTTP into the same WASI 0.3 `hello-p3` component: Trellis, `wasmtime serve`, hyper.
//! 3. The shop services end to end: `GET /api/v1/users/{id}`, `POST /api/v1/orders`.
//! 4. The cost of a call between components and of the breaker (the `calls` benchmark).
//! 5. Start-up of 20 components with a cold and a warm compile cache; file drop to answer.
//! 6. Resident memory with the shop loaded, idle and under load.

#[path = "chart.rs"]
mod chart;
#[path = "rounds.rs"]
mod rounds;
#[allow(dead_code)]
#[path = "systems.rs"]
mod systems;
#[path = "wasi3.rs"]
mod wasi3;
#[path = "wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rounds::Target;
use systems::Server;

/// Connections per load run.
const CONCURRENCY: [u32; 3] = [1, 16, 64];
/// Rounds per system and level; the median is reported.
const ROUNDS: usize = 3;
/// Components in the start-up measurement.
const STARTUP_COMPONENTS: usize = 20;
/// What hello answers; the hyper baseline answers the same.
const HELLO_BODY: &str = "Hello from a WebAssembly component!\n";

fn seconds() -> Duration {
    let secs = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    Duration::from_secs(secs)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

struct Paths {
    root: PathBuf,
    trellis: PathBuf,
    wasmtime: PathBuf,
    baseline: PathBuf,
    calls: PathBuf,
    work: tempfile::TempDir,
}

impl Paths {
    fn dist(&self, name: &str) -> PathBuf {
        self.root.join("dist").join(format!("{name}.wasm"))
    }

    fn folder(&self, name: &str, components: &[&str]) -> anyhow::Result<PathBuf> {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(dir.join("components"))?;
        for c in components {
            std::fs::copy(self.dist(c), dir.join("components").join(format!("{c}.wasm")))?;
        }
        Ok(dir)
    }
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let release = root.join("target/release");
    let paths = Paths {
        trellis: release.join("trellis"),
        baseline: release.join("baseline"),
        calls: release.join("calls"),
        wasmtime: root.join("bench/work/tools/bin/wasmtime"),
        work: tempfile::tempdir()?,
        root,
    };
    for needed in [&paths.trellis, &paths.wasmtime, &paths.baseline, &paths.dist("hello")] {
        anyhow::ensure!(needed.exists(), "{} is missing: run `make bench`", needed.display());
    }
    let mut report = String::new();
    writeln!(report, "# Benchmark results\n\n{}\n", machine())?;
    writeln!(
        report,
        "Command: `make bench` (each load run {} s, median of {ROUNDS} rounds, systems alternated).\n",
        seconds().as_secs()
    )?;

    // The in-process call measurement goes first, before the load runs and the fsync-heavy
    // order writes leave the machine busy with write-back.
    let calls = calls(&paths)?;
    let http = http_comparison(&paths)?;
    report.push_str(&http.table);
    chart::throughput(&paths.root.join("bench/results/http.svg"), &CONCURRENCY, &http.series())?;
    report.push_str("\n![requests per second](http.svg)\n\n");
    report.push_str(&wasi3::comparison(&paths.root, &paths.wasmtime, &paths.baseline, seconds())?);
    report.push_str(&services(&paths)?);
    report.push_str(&calls);
    report.push_str(&startup(&paths)?);
    report.push_str(&memory(&paths)?);
    let out = paths.root.join("bench/results/RESULTS.md");
    std::fs::write(&out, &report)?;
    println!("{report}\nwritten to {}", out.display());
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kib| kib / 1024 / 1024);
    let date = std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output();
    let date = date.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    format!("Machine: {cpu}, {cores} cores, {memory} GiB. Date: {date}. wrk on the same machine (loopback).")
}

struct HttpResults {
    table: String,
    /// Per system, per concurrency level.
    rps: [[f64; CONCURRENCY.len()]; SYSTEMS.len()],
}

const SYSTEMS: [&str; 4] = ["Trellis", "wasmtime serve", "hyper (no wasm)", "Trellis, access log on"];

impl HttpResults {
    fn series(&self) -> Vec<(&'static str, Vec<f64>)> {
        SYSTEMS.iter().zip(self.rps.iter()).map(|(name, rps)| (*name, rps.to_vec())).collect()
    }
}

fn http_comparison(paths: &Paths) -> anyhow::Result<HttpResults> {
    let dir = paths.folder("hello", &["hello"])?;
    let trellis = systems::trellis(&paths.trellis, &dir.join("components"), &dir.join("data"), None)?;
    let wasmtime = systems::wasmtime_serve(&paths.wasmtime, &paths.dist("hello"))?;
    let hyper = systems::hyper_baseline(&paths.baseline, HELLO_BODY)?;
    let logging_dir = paths.folder("hello-logging", &["hello"])?;
    let logging = systems::trellis_logging(&paths.trellis, &logging_dir.join("components"), &logging_dir.join("data"))?;
    let targets = [
        Target { server: &trellis, url: format!("{}/hello/", trellis.base) },
        Target { server: &wasmtime, url: format!("{}/", wasmtime.base) },
        Target { server: &hyper, url: format!("{}/", hyper.base) },
        Target { server: &logging, url: format!("{}/hello/", logging.base) },
    ];
    let loads = rounds::alternate(&targets, &CONCURRENCY, ROUNDS, seconds())?;
    let mut table = String::from("## HTTP into a component: `hello`\n\n");
    table.push_str(&rounds::table(&SYSTEMS, &CONCURRENCY, &loads));
    let rps: [[f64; CONCURRENCY.len()]; SYSTEMS.len()] =
        std::array::from_fn(|system| std::array::from_fn(|level| loads[system][level].rps));
    table.push_str(
        "\nTrellis runs with `RUST_LOG=warn` (no access log) in the comparison; \"access log on\" is its\n\
         default level, formatting and writing one log line per request.\n\n\
         | connections | Trellis / wasmtime serve | Trellis / hyper | access log on / hyper |\n|---|---|---|---|\n",
    );
    for (level, connections) in CONCURRENCY.iter().enumerate() {
        writeln!(
            table,
            "| {connections} | {:.2} | {:.2} | {:.2} |",
            rps[0][level] / rps[1][level],
            rps[0][level] / rps[2][level],
            rps[3][level] / rps[2][level]
        )?;
    }
    Ok(HttpResults { table, rps })
}

fn services(paths: &Paths) -> anyhow::Result<String> {
    let dir = paths.folder("shop", &["user-service", "order-service", "gateway"])?;
    let shop = systems::trellis(&paths.trellis, &dir.join("components"), &dir.join("data"), None)?;
    let user = create_user(&shop, r#"{"name": "Bench", "email": "bench@example.com"}"#);
    anyhow::ensure!(user == Some(201), "could not create the benchmark user ({user:?})");
    let script = paths.work.path().join("order.lua");
    std::fs::write(
        &script,
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user_id": 1, "items": [{"product_id": 1, "product_name": "Widget", "quantity": 2, "price": 9.5}], "shipping_address": "1 Main St"}'
"#,
    )?;
    let mut out = String::from("\n## The shop services end to end (Trellis)\n\n");
    out.push_str("| request | connections | requests/s | p50 | p99 | failures |\n|---|---|---|---|---|---|\n");
    for connections in [1, 16] {
        let get = wrk::run(&format!("{}/api/v1/users/1", shop.base), connections, seconds(), None)?;
        writeln!(
            out,
            "| `GET /api/v1/users/1` | {connections} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            get.rps, get.p50_ms, get.p99_ms, get.failures
        )?;
        let post = wrk::run(&format!("{}/api/v1/orders", shop.base), connections, seconds(), Some(&script))?;
        writeln!(
            out,
            "| `POST /api/v1/orders` (one call to the user service, durable writes) | {connections} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            post.rps, post.p50_ms, post.p99_ms, post.failures
        )?;
    }
    Ok(out)
}

fn create_user(shop: &Server, json: &str) -> Option<u16> {
    systems::status("POST", &format!("{}/api/v1/users", shop.base), Some(json))
}

fn calls(paths: &Paths) -> anyhow::Result<String> {
    let output = std::process::Command::new(&paths.calls)
        .current_dir(&paths.root)
        .output()
        .context("cannot run the calls benchmark")?;
    anyhow::ensure!(output.status.success(), "calls benchmark failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(format!("\n## Calls between components (in-process, median)\n\n{}", String::from_utf8_lossy(&output.stdout)))
}

fn startup(paths: &Paths) -> anyhow::Result<String> {
    let dir = paths.folder("startup", &[])?;
    let components = dir.join("components");
    for i in 0..STARTUP_COMPONENTS {
        systems::unique_copy(
            &paths.dist("hello"),
            &components.join(format!("hello-{i:02}.wasm")),
            &format!("copy {i}"),
        )?;
    }
    let all_answer = |server: &Server| -> anyhow::Result<()> {
        for i in 0..STARTUP_COMPONENTS {
            systems::wait_until_answering(&format!("{}/hello-{i:02}/", server.base))?;
        }
        Ok(())
    };
    let timed_start = || -> anyhow::Result<Duration> {
        let started = Instant::now();
        let server = systems::trellis(&paths.trellis, &components, &dir.join("data"), None)?;
        all_answer(&server)?;
        Ok(started.elapsed())
    };
    let cold = timed_start()?;
    let warm = median((0..3).map(|_| timed_start().map(|d| d.as_secs_f64())).collect::<anyhow::Result<Vec<_>>>()?);

    let server = systems::trellis(&paths.trellis, &components, &dir.join("data"), None)?;
    all_answer(&server)?;
    let mut drops = Vec::new();
    for i in 0..5 {
        let name = format!("dropped-{i}");
        let started = Instant::now();
        systems::unique_copy(&paths.dist("hello"), &components.join(format!("{name}.wasm")), &name)?;
        systems::wait_until_answering(&format!("{}/{name}/", server.base))?;
        drops.push(started.elapsed().as_secs_f64());
    }
    let mut out = String::from("\n## Start-up and live drop-in (Trellis)\n\n| measure | time |\n|---|---|\n");
    writeln!(
        out,
        "| {STARTUP_COMPONENTS} components answering, cold compile cache (each a distinct file) | {:.0} ms |",
        cold.as_secs_f64() * 1000.0
    )?;
    writeln!(
        out,
        "| {STARTUP_COMPONENTS} components answering, warm compile cache (median of 3) | {:.0} ms |",
        warm * 1000.0
    )?;
    writeln!(
        out,
        "| file dropped in (atomic rename) to first 200 answer, new component (median of 5) | {:.0} ms |",
        median(drops) * 1000.0
    )?;
    Ok(out)
}

fn memory(paths: &Paths) -> anyhow::Result<String> {
    let dir = paths.folder("memory", &["user-service", "order-service", "gateway", "hello"])?;
    let shop = systems::trellis(&paths.trellis, &dir.join("components"), &dir.join("data"), None)?;
    create_user(&shop, r#"{"name": "Mem", "email": "mem@example.com"}"#);
    std::thread::sleep(Duration::from_millis(500));
    let pid = shop.pid();
    let idle = systems::rss_mib(pid);
    let url = format!("{}/api/v1/users/1", shop.base);
    let sampler = std::thread::spawn(move || {
        let until = Instant::now() + seconds();
        let mut peak = 0;
        while Instant::now() < until {
            peak = peak.max(systems::rss_mib(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    wrk::run(&url, 64, seconds(), None)?;
    let loaded = sampler.join().unwrap_or(0);
    let mut out = String::from("\n## Memory (Trellis, resident set)\n\n| state | RSS |\n|---|---|\n");
    writeln!(out, "| idle, shop services and hello loaded | {idle} MiB |")?;
    writeln!(out, "| under load (64 connections on `GET /api/v1/users/1`), peak | {loaded} MiB |")?;
    Ok(out)
}
