//! The wasmtime engine every component runs on: pooling allocation, epoch interruption driven
//! by a ticker thread, and the on-disk compile cache in the data folder. Per-Store limits
//! and deadlines are the [`super::store`] module's.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use wasmtime::{Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A running guest checks its deadline and yields to other
/// tasks at each tick: 5 ms keeps a busy guest from holding a worker thread for long while
/// costing nothing measurable.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Host frames (WASI, forwarding, hyper) on top of the wasm stack on each fiber.
const ASYNC_STACK_HEADROOM: usize = 1024 * 1024;

/// Instances (and so Stores) that may exist at once across all components. Each reserves
/// virtual address space only; 1,000 is wasmtime's default and far above what two cores serve.
const POOL_INSTANCES: u32 = 1000;

/// What one component instance may take of the shared pool, so that no component can take
/// it from the others: generous for real components (CPython embedded uses a handful of
/// each), small next to the pool's totals.
const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
const MEMORIES_PER_COMPONENT: u32 = 8;
const TABLES_PER_COMPONENT: u32 = 32;

/// The engine plus the ticker that drives its epochs. The ticker runs for as long as any
/// clone of the engine exists, every Store's included: a guest still running (say, spinning
/// while the host shuts down) keeps getting the ticks that let it be interrupted, so it can
/// never hold a thread forever.
pub struct Runtime {
    pub engine: Engine,
}

impl Runtime {
    /// Builds the engine for `settings`: the pool sized for the largest memory and table any
    /// component may have (per-component limits are lower or equal), the wasm stack limit
    /// (engine-wide in wasmtime 48); `cache_dir` holds compiled code.
    pub fn new(settings: &crate::config::Config, cache_dir: &Path) -> anyhow::Result<Self> {
        let (max_memory, max_stack) = (settings.max_memory_bytes(), settings.limits.max_wasm_stack_kib * 1024);
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Calls between components enter another Store from inside a host function; wasmtime 48
        // only allows that without the component-model-async event loop, which nothing here uses.
        config.concurrency_support(false);
        config.epoch_interruption(true);
        config.max_wasm_stack(max_stack);
        // The fiber stack a call runs on must hold the wasm stack plus the host's own frames.
        config.async_stack_size(max_stack + ASYNC_STACK_HEADROOM);

        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            // What `limits.max_table_elements` allows is what the pool makes room for.
            .table_elements(settings.max_table_elements())
            .max_memory_size(max_memory);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        std::fs::create_dir_all(cache_dir).with_context(|| format!("cannot create {}", cache_dir.display()))?;
        let cache_dir = cache_dir.canonicalize()?;
        let mut cache = CacheConfig::new();
        cache.with_directory(&cache_dir);
        config.cache(Some(Cache::new(cache).map_err(anyhow::Error::from).context("cannot set up the compile cache")?));

        let engine = Engine::new(&config).map_err(anyhow::Error::from).context("cannot create the wasmtime engine")?;
        let weak = engine.weak();
        std::thread::Builder::new().name("trellis-epoch".into()).spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })?;
        Ok(Self { engine })
    }
}
