//! Several systems loaded in alternated rounds at each concurrency level, who goes first
//! rotating, so that the drift of a shared machine hits them alike; each result is the
//! median round, with the server's CPU time per request.

use std::fmt::Write as _;
use std::time::Duration;

use super::systems::Server;
use super::wrk::{self, Load};

/// One system under load: its server and the URL wrk loads.
pub struct Target<'a> {
    pub server: &'a Server,
    pub url: String,
}

/// `[system][level]`: the median of `rounds` alternated runs of `duration` each.
pub fn alternate(
    targets: &[Target],
    levels: &[u32],
    rounds: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Vec<Load>>> {
    for target in targets {
        wrk::run(&target.url, 16, Duration::from_secs(1), None)?; // warm-up
    }
    let mut runs: Vec<Vec<Vec<Load>>> = vec![vec![Vec::new(); levels.len()]; targets.len()];
    for round in 0..rounds {
        for (level, connections) in levels.iter().enumerate() {
            for k in 0..targets.len() {
                let system = (k + round + level) % targets.len();
                runs[system][level].push(measured(&targets[system], *connections, duration)?);
            }
        }
    }
    Ok(runs.into_iter().map(|levels| levels.into_iter().map(median_load).collect()).collect())
}

/// The table of `loads` (`[system][level]`, as [`alternate`] returns them): a row per level
/// and system, named by `names`.
pub fn table(names: &[&str], levels: &[u32], loads: &[Vec<Load>]) -> String {
    let mut out = String::from(
        "| connections | system | requests/s | p50 | p99 | server CPU per request | failures |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (level, connections) in levels.iter().enumerate() {
        for (system, name) in names.iter().enumerate() {
            let l = loads[system][level];
            let _ = writeln!(
                out,
                "| {connections} | {name} | {:.0} | {:.3} ms | {:.3} ms | {:.1} µs | {} |",
                l.rps, l.p50_ms, l.p99_ms, l.server_cpu_us, l.failures
            );
        }
    }
    out
}

/// A load run that also measures the server's CPU time per request: on a machine whose cores
/// the load generator shares, this is what bounds throughput.
fn measured(target: &Target, connections: u32, duration: Duration) -> anyhow::Result<Load> {
    let before = target.server.cpu_time()?;
    let mut load = wrk::run(&target.url, connections, duration, None)?;
    let spent = target.server.cpu_time()? - before;
    load.server_cpu_us = spent.as_secs_f64() * 1e6 / load.requests.max(1) as f64;
    Ok(load)
}

/// The median round of several runs, by requests per second.
fn median_load(mut loads: Vec<Load>) -> Load {
    loads.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    loads[loads.len() / 2]
}
