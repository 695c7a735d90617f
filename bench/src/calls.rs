//! The cost of one call between components, measured in-process on the real components:
//!
//! - **forwarded**: `consumer` calls `greet` on `provider` through Trellis (breaker, warm
//!   callee instance in its own Store, dynamic values), timed from inside the guest: the
//!   difference between `greet-times(1 + N)` and `greet-times(1)`, divided by N.
//! - **direct**: the host calls the same `greet` export on a warm provider instance.
//! - **breaker**: one permit taken and its outcome recorded.
//!
//! Each figure is the median of many rounds. Run with `make bench-calls`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trellis::Storage;
use trellis::breaker::{Breaker, BreakerConfig, Clock, Outcome, SystemClock};
use trellis::config::Config;
use trellis::{Bus, CallContext, Engines, Registry, Shared};
use wasmtime::component::Val;

/// Calls per timed round: enough that timer resolution does not matter.
const CALLS: u32 = 2_000;
/// Timed rounds; the median is reported.
const ROUNDS: usize = 51;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn context() -> CallContext {
    CallContext { deadline: Instant::now() + Duration::from_secs(60), depth: 0, correlation_id: Arc::from("bench") }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/testing");
    let work = tempfile::tempdir()?;
    let components = work.path().join("components");
    std::fs::create_dir(&components)?;
    for name in ["consumer", "provider"] {
        let source = dist.join(format!("{name}.wasm"));
        anyhow::ensure!(source.is_file(), "{} is missing: run `make components`", source.display());
        std::fs::copy(&source, components.join(format!("{name}.wasm")))?;
    }
    let config = Config::default();
    let engines = Engines::new(&config, &work.path().join("cache"))?;
    let storage = Storage::open(&work.path().join("store.redb"), 64 * 1024 * 1024)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let bus = Bus::open(storage.clone(), config.clone(), clock.clone())?;
    let shared = Arc::new(Shared { engines, config, storage, clock, bus, cluster: None });
    let registry = Registry::new(shared);
    registry.rescan(&components).await?;
    let snapshot = registry.snapshot();
    let (consumer, provider) = (&snapshot.components["consumer"], &snapshot.components["provider"]);

    // Forwarded: timed from inside the guest, on one warm consumer instance.
    let repeat = consumer.export_function("test:consumer/repeat@0.1.0", "greet-times").expect("repeat export");
    let forwarded = consumer
        .invoke(context(), async |warm| {
            let func = warm.instance.get_func(&mut warm.store, repeat).expect("greet-times");
            let mut run = async |n: u32| -> wasmtime::Result<Duration> {
                let mut results = [Val::U32(0)];
                warm.store.data_mut().call = context();
                let started = Instant::now();
                func.call_async(&mut warm.store, &[Val::U32(n)], &mut results).await?;
                let elapsed = started.elapsed();
                wasmtime::ensure!(results[0] == Val::U32(n), "only {:?} of {n} calls succeeded", results[0]);
                Ok(elapsed)
            };
            run(CALLS).await?; // warm-up: callee instance, caches
            let mut forwarded = Vec::new();
            for _ in 0..ROUNDS {
                let base = run(1).await?;
                let many = run(CALLS + 1).await?;
                forwarded.push((many.saturating_sub(base)).as_secs_f64() * 1e6 / f64::from(CALLS));
            }
            Ok(forwarded)
        })
        .await?;

    // Direct: the host calls the provider's export on one warm instance.
    let greet = provider.export_function("test:greet/api@1.2.0", "greet").expect("greet export");
    let direct = provider
        .invoke(context(), async |warm| {
            let func = warm.instance.get_func(&mut warm.store, greet).expect("greet");
            let params = [Val::String("bench".into())];
            let mut direct = Vec::new();
            for _ in 0..ROUNDS {
                let started = Instant::now();
                for _ in 0..CALLS {
                    let mut results = [Val::Bool(false)];
                    func.call_async(&mut warm.store, &params, &mut results).await?;
                }
                direct.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS));
            }
            Ok(direct)
        })
        .await?;

    // The breaker alone.
    let breaker = Breaker::new(BreakerConfig::default(), Arc::new(SystemClock));
    let mut breaker_ns = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..100_000 {
            breaker.try_acquire().expect("closed").record(Outcome::Success);
        }
        breaker_ns.push(started.elapsed().as_secs_f64() * 1e9 / 100_000.0);
    }

    let (forwarded, direct, breaker_ns) = (median(forwarded), median(direct), median(breaker_ns));
    println!("| measure | median |");
    println!("|---|---|");
    println!("| forwarded call, guest to guest through Trellis (warm callee) | {forwarded:.2} µs |");
    println!("| direct call from the host into the same export | {direct:.2} µs |");
    println!("| forwarding overhead (forwarded - direct) | {:.2} µs |", forwarded - direct);
    println!("| breaker: acquire + record | {breaker_ns:.0} ns |");
    Ok(())
}
