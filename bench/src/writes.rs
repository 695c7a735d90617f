//! The shop's write path in `make bench` (alone: `make bench-writes`): `POST /api/v1/orders`
//! (and `GET /api/v1/users/1`) through today's shop services, through the same services as
//! they were before they kept indexes (`bench/previous.sh` builds those from git, served by
//! today's host), and through the seeds' FastAPI stack (`bench/seeds/`), side by side: rounds
//! alternate between the three, each on fresh storage with 100 users, and the table shows the
//! medians. Orders go to users spread over the 100, as a shop's would. Writes
//! `bench/results/WRITES.md`.

#[allow(dead_code)]
#[path = "systems.rs"]
mod systems;
#[allow(dead_code)]
#[path = "wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// The commit whose services are "before": the last one before the services kept indexes.
const PREVIOUS: &str = "fc18f86";
const ROUNDS: usize = 3;
const USERS: u32 = 100;

fn seconds() -> Duration {
    Duration::from_secs(std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10))
}

/// What serves the shop in a round.
enum System {
    /// `trellis serve` over the user and order services of this dist folder.
    Trellis(PathBuf),
    /// The seeds' FastAPI services.
    Seeds,
}

/// One round's measurements: `POST /api/v1/orders` at each number of connections, then
/// `GET /api/v1/users/1` at 16.
fn round(root: &Path, system: &System, script: &Path, connections: &[u32]) -> anyhow::Result<Vec<wrk::Load>> {
    let work = tempfile::tempdir()?;
    let servers = match system {
        System::Trellis(dist) => {
            vec![systems::trellis_shop(root, dist, &["user-service", "order-service"], work.path())?]
        }
        System::Seeds => {
            let (users, orders) = systems::seeds(root)?;
            vec![users, orders]
        }
    };
    let (users, orders) = (&servers[0].base, &servers[servers.len() - 1].base);
    for n in 1..=USERS {
        let user = format!(r#"{{"name":"User {n}","email":"user{n}@example.com"}}"#);
        let status = systems::status("POST", &format!("{users}/api/v1/users"), Some(&user));
        anyhow::ensure!(status == Some(201), "could not create user {n}: {status:?}");
    }
    let url = format!("{orders}/api/v1/orders");
    wrk::run(&url, 16, Duration::from_secs(2), Some(script))?; // warm-up
    let mut loads: Vec<wrk::Load> =
        connections.iter().map(|&c| wrk::run(&url, c, seconds(), Some(script))).collect::<Result<_, _>>()?;
    loads.push(wrk::run(&format!("{users}/api/v1/users/1"), 16, seconds(), None)?);
    Ok(loads)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let built = std::process::Command::new(root.join("bench/previous.sh")).arg(PREVIOUS).status()?;
    anyhow::ensure!(built.success(), "cannot build the previous services");
    let builds: [(&str, System); 3] = [
        (
            "Trellis, services before indexes (`fc18f86`)",
            System::Trellis(root.join(format!("bench/work/previous/{PREVIOUS}/dist"))),
        ),
        ("Trellis, today's services", System::Trellis(root.join("dist"))),
        ("the seeds' FastAPI stack", System::Seeds),
    ];
    let work = tempfile::tempdir()?;
    let script = work.path().join("order.lua");
    std::fs::write(
        &script,
        format!(
            r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local user = math.random(1, {USERS})
  return wrk.format(nil, nil, nil, '{{"user_id": ' .. user .. ', "items": [{{"product_id": 1, "product_name": "Widget", "quantity": 2, "price": 9.5}}], "shipping_address": "1 Main St"}}')
end
"#
        ),
    )?;
    let connections = [16, 64];
    let mut runs: Vec<Vec<Vec<wrk::Load>>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for r in 0..ROUNDS {
        for (i, (name, system)) in builds.iter().enumerate() {
            let loads = round(&root, system, &script, &connections)?;
            let failures: u64 = loads.iter().map(|l| l.failures).sum();
            anyhow::ensure!(failures == 0, "{name}: {failures} failed requests in round {}", r + 1);
            println!("round {}: {name}: {:?}", r + 1, loads.iter().map(|l| l.rps.round()).collect::<Vec<_>>());
            runs[i].push(loads);
        }
    }

    let mut out = String::from("# The write path: today's services, the services before indexes, the seeds' stack\n\n");
    writeln!(
        out,
        "Command: `make bench-writes` (part of `make bench`). wrk for {} s per run against each system in turn, {ROUNDS} alternated rounds, each on fresh storage with {USERS} users; medians. `POST /api/v1/orders` sends orders spread over the {USERS} users. Trellis fsyncs every order before answering; the seeds' stack keeps everything in memory.\n",
        seconds().as_secs()
    )?;
    out.push_str("| request | connections | system | requests/s | p50 | p99 | Trellis today / this |\n|---|---|---|---|---|---|---|\n");
    let median_of = |i: usize, c: usize, f: fn(&wrk::Load) -> f64| median(runs[i].iter().map(|r| f(&r[c])).collect());
    let rows = connections.iter().map(|c| ("`POST /api/v1/orders`", *c)).chain([("`GET /api/v1/users/1`", 16)]);
    for (c, (request, connections)) in rows.enumerate() {
        let today = median_of(1, c, |l| l.rps);
        for (i, (name, _)) in builds.iter().enumerate() {
            let rps = median_of(i, c, |l| l.rps);
            let (p50, p99) = (median_of(i, c, |l| l.p50_ms), median_of(i, c, |l| l.p99_ms));
            let ratio = if i == 1 { String::new() } else { format!("{:.2}x", today / rps) };
            writeln!(out, "| {request} | {connections} | {name} | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {ratio} |")?;
        }
    }
    std::fs::write(root.join("bench/results/WRITES.md"), &out)?;
    print!("{out}");
    Ok(())
}
