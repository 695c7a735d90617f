//! HTTP into a WASI 0.3 component: the same `hello-p3` served by Trellis and by `wasmtime
//! serve` (its instance reuse settings at their defaults), and the same body from a plain
//! hyper server, in alternated rounds.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::rounds::{self, Target};
use super::systems;

/// Connections per load run.
const LEVELS: [u32; 2] = [16, 64];
/// What `hello-p3` answers; the hyper baseline answers the same.
const BODY: &str = "Hello from a WASI 0.3 component!\n";

/// The section of `RESULTS.md`: Trellis built in `root`, `wasmtime` and `baseline` the
/// other two servers' binaries.
pub fn comparison(root: &Path, wasmtime: &Path, baseline: &Path, duration: Duration) -> anyhow::Result<String> {
    let (dist, work) = (root.join("dist"), tempfile::tempdir()?);
    let trellis = systems::trellis_shop(root, &dist, &["hello-p3"], work.path())?;
    let wasm = dist.join("hello-p3.wasm");
    let wasmtime = systems::wasmtime_serve_wasi3(wasmtime, &wasm)?;
    let hyper = systems::hyper_baseline(baseline, BODY)?;
    let targets = [
        Target { server: &trellis, url: format!("{}/hello-p3/", trellis.base) },
        Target { server: &wasmtime, url: format!("{}/", wasmtime.base) },
        Target { server: &hyper, url: format!("{}/", hyper.base) },
    ];
    let loads = rounds::alternate(&targets, &LEVELS, super::ROUNDS, duration)?;
    let names = ["Trellis", "wasmtime serve", "hyper (no wasm)"];
    let mut out = String::from("## HTTP into a WASI 0.3 component: `hello-p3`\n\n");
    out.push_str(&rounds::table(&names, &LEVELS, &loads));
    out.push_str("\n| connections | Trellis / wasmtime serve | Trellis / hyper |\n|---|---|---|\n");
    for (level, connections) in LEVELS.iter().enumerate() {
        let rps = |system: usize| loads[system][level].rps;
        writeln!(out, "| {connections} | {:.2} | {:.2} |", rps(0) / rps(1), rps(0) / rps(2))?;
    }
    out.push('\n');
    Ok(out)
}
