//! Runs wrk against a URL and reads its report: successful requests per second and latency
//! percentiles. Only 2xx/3xx answers count as successes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// One load run's results.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// Successful responses per second.
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub failures: u64,
    /// All requests answered, failed ones included.
    pub requests: u64,
    /// The server's CPU time (user + system) per request, in µs, when the caller measured it.
    pub server_cpu_us: f64,
}

/// Runs `wrk` with `connections` connections for `duration`, with an optional Lua script.
pub fn run(url: &str, connections: u32, duration: Duration, script: Option<&Path>) -> anyhow::Result<Load> {
    let threads = connections.clamp(1, 2);
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .arg("--timeout")
        .arg("10s");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().context("cannot run wrk (run bench/tools.sh)")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    parse(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

fn parse(text: &str) -> anyhow::Result<Load> {
    let mut load = Load::default();
    let (mut requests, mut seconds) = (0u64, 0f64);
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => load.p50_ms = millis(value)?,
            ["99%", value] => load.p99_ms = millis(value)?,
            [count, "requests", "in", time, ..] => {
                requests = count.parse()?;
                seconds = millis(time.trim_end_matches(','))? / 1000.0;
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => load.failures += count.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                load.failures += rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    if seconds <= 0.0 {
        bail!("no request count in the report");
    }
    load.requests = requests;
    load.rps = requests.saturating_sub(load.failures) as f64 / seconds;
    Ok(load)
}

/// "123.45us", "1.20ms", "2.00s", "1.00m" in milliseconds.
fn millis(value: &str) -> anyhow::Result<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" | "" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown unit {other:?}"),
    })
}
