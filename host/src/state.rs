//! What each Store carries: its WASI contexts, its memory limiter, and the context of the
//! call it is serving (deadline, nesting depth, correlation id). One Store per instance;
//! the pool and the linker decide when Stores are made and thrown away.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::{Limits, mib};
use crate::keyvalue::Namespace;

/// Why a call or request ran out of time; returned from the epoch callback so that the
/// trap it causes can be told apart from any other.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineExceeded;

/// The context of the unit of work a Store is serving, set anew for each request or call.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// When the work must be done; the epoch callback traps the guest past it.
    pub deadline: Instant,
    /// 0 for an HTTP request, 1 for a call it makes into another component, and so on.
    pub depth: u32,
    /// Ties every log line and nested call of one request together.
    pub correlation_id: Arc<str>,
}

/// Denies memory growth past the component's limit, and remembers that it did so the
/// resulting trap can be reported as out of memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_memory: usize,
    max_table_elements: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory;
        self.exceeded |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

/// The data of one Store.
pub struct HostState {
    pub component: Arc<str>,
    pub call: CallContext,
    pub limiter: MemoryLimiter,
    pub kv: Namespace,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
}

impl HostState {
    pub fn new(component: Arc<str>, limits: &Limits, kv: Namespace, call: CallContext) -> Self {
        let wasi = WasiCtx::builder().inherit_stdout().inherit_stderr().build();
        Self {
            component,
            call,
            limiter: MemoryLimiter {
                max_memory: mib(limits.memory_mib),
                max_table_elements: limits.max_table_elements,
                exceeded: false,
            },
            kv,
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
        }
    }

    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// Makes a Store for one instance, with its limiter and deadline enforcement installed.
pub fn new_store(engine: &wasmtime::Engine, state: HostState) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // Every tick the running guest checks its deadline: past it, the guest traps with
    // `DeadlineExceeded`; before it, the guest yields so other requests get the thread.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().call.deadline {
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}
