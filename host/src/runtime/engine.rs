//! The wasmtime engines components run on: one for WASI 0.2 components and one with the
//! component model's async event loop for WASI 0.3 components, both with pooling allocation,
//! epoch interruption driven by one ticker thread, and the on-disk compile cache in the data
//! folder. Per-Store limits and deadlines are the [`super::store`] module's.

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

/// The two engines plus the ticker that drives their epochs. The ticker runs for as long as
/// any clone of either engine exists, every Store's included: a guest still running (say,
/// spinning while the host shuts down) keeps getting the ticks that let it be interrupted,
/// so it can never hold a thread forever.
#[derive(Clone)]
pub struct Engines {
    /// WASI 0.2 components: each call runs to its end on its own fiber. Calls between
    /// components enter another Store from inside a host function, which wasmtime 48 allows
    /// only outside a component-model-async event loop; and without that loop a call costs less.
    pub sync: Engine,
    /// WASI 0.3 components: the component model's async event loop, so one instance can
    /// serve several requests at once.
    pub concurrent: Engine,
}

impl Engines {
    /// Builds both engines for `settings`: the pools sized for the largest memory and table
    /// any component may have (per-component limits are lower or equal), the wasm stack limit
    /// (engine-wide in wasmtime 48); `cache_dir` holds compiled code.
    pub fn new(settings: &crate::config::Config, cache_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(cache_dir).with_context(|| format!("cannot create {}", cache_dir.display()))?;
        let cache_dir = cache_dir.canonicalize()?;
        let engines =
            Self { sync: engine(settings, &cache_dir, false)?, concurrent: engine(settings, &cache_dir, true)? };
        let (sync, concurrent) = (engines.sync.weak(), engines.concurrent.weak());
        std::thread::Builder::new().name("trellis-epoch".into()).spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                let (sync, concurrent) = (sync.upgrade(), concurrent.upgrade());
                if sync.is_none() && concurrent.is_none() {
                    break;
                }
                sync.iter().chain(&concurrent).for_each(Engine::increment_epoch);
            }
        })?;
        Ok(engines)
    }

    /// Engines that read and compile components but never run them (`trellis inspect`): no
    /// pool, no cache, no ticker.
    pub fn for_reading() -> anyhow::Result<Self> {
        let engine = |concurrent: bool| {
            let mut config = Config::new();
            config.wasm_component_model(true).concurrency_support(concurrent).wasm_component_model_async(concurrent);
            Engine::new(&config).map_err(anyhow::Error::from).context("cannot create the wasmtime engine")
        };
        Ok(Self { sync: engine(false)?, concurrent: engine(true)? })
    }

    /// The engine a component is compiled for and runs on.
    pub fn for_component(&self, concurrent: bool) -> &Engine {
        if concurrent { &self.concurrent } else { &self.sync }
    }
}

/// One engine; `concurrent` turns on the component model's async support.
fn engine(settings: &crate::config::Config, cache_dir: &Path, concurrent: bool) -> anyhow::Result<Engine> {
    let (max_memory, max_stack) = (settings.max_memory_bytes(), settings.limits.max_wasm_stack_kib * 1024);
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.concurrency_support(concurrent);
    config.wasm_component_model_async(concurrent);
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

    let mut cache = CacheConfig::new();
    cache.with_directory(cache_dir);
    config.cache(Some(Cache::new(cache).map_err(anyhow::Error::from).context("cannot set up the compile cache")?));
    Engine::new(&config).map_err(anyhow::Error::from).context("cannot create the wasmtime engine")
}

/// Gives the memory a compilation freed back to the operating system. Cranelift allocates
/// tens of MiB while it compiles a component and frees them after; glibc's allocator keeps
/// freed memory for reuse, so a host that compiled its folder once would hold about twice
/// what one started from a warm compile cache holds (61 against 28 MiB with the shop loaded).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heap to the kernel; it touches
    // no memory in use and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes glibc's allocator give every buffer larger than 128 KiB back to the operating system
/// when it is freed. By default glibc raises that threshold to the size of the largest buffer
/// freed so far (up to 32 MiB), and later buffers up to that size then come from its heaps,
/// where they stay resident once freed. Compiling components and reading the storage journal
/// at start-up free buffers of several MiB: with the default, an idle host with the shop
/// loaded kept about 10 MiB more (61 against 50 MiB after compiling, 41 against 35 after a
/// restart), and requests measured no faster.
pub(crate) fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy for later allocations; it is
    // thread-safe and has no preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
