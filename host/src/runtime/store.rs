//! What each Store carries: its WASI contexts, its memory limiter, the capabilities granted
//! to its component, and the context of the unit of work it is serving (deadline, nesting
//! depth, correlation id). One Store per instance; the component's pool decides when Stores
//! are made and thrown away.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::fault::DeadlineExceeded;
use crate::capabilities::keyvalue::{self, Held, KeyValueView, Namespace};
use crate::capabilities::logging::{self, GuestLog, LoggingView};
use crate::capabilities::messaging::{self, Broker, MessagingView, OutboxView, Sender, resources::Message};
use crate::capabilities::outbound::{Origin, Outbound};
use crate::config::{Limits, mib};
use crate::discovery::Description;

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

/// Denies growth past the component's limits, counted over the whole instance (all its
/// linear memories together, all its tables together: a component of several core instances
/// gets the limit once, not once per memory), and remembers a denied memory growth so the
/// resulting trap can be reported as out of memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    max_memory: usize,
    max_table_elements: usize,
    /// Bytes of every linear memory of the instance.
    memory_used: usize,
    /// Elements of every table of the instance.
    table_used: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_sub(current).saturating_add(desired);
        let allowed = total <= self.max_memory;
        if allowed {
            self.memory_used = total;
        }
        self.exceeded |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_used.saturating_sub(current).saturating_add(desired);
        let allowed = total <= self.max_table_elements;
        if allowed {
            self.table_used = total;
        }
        Ok(allowed)
    }
}

/// The data of one Store.
pub struct HostState {
    pub call: CallContext,
    pub(crate) limiter: MemoryLimiter,
    kv: Namespace,
    kv_held: Held,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    log: GuestLog,
    component: Arc<str>,
    broker: Arc<dyn Broker>,
}

impl HostState {
    pub(crate) fn new(
        component: Arc<str>,
        limits: &Limits,
        kv: Namespace,
        outbound: Arc<[Origin]>,
        log: GuestLog,
        broker: Arc<dyn Broker>,
        call: CallContext,
    ) -> Self {
        // No files, environment, arguments or sockets: only what is granted elsewhere.
        let wasi = WasiCtx::builder().stdout(log.stream("stdout")).stderr(log.stream("stderr")).build();
        let outbound = Outbound::new(component.clone(), outbound, call.deadline, limits.max_outbound_response_bytes);
        // Everything a guest makes the host hold for it lives in this table, up to a count.
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_host_resources);
        Self {
            call,
            limiter: MemoryLimiter {
                max_memory: mib(limits.memory_mib),
                max_table_elements: limits.max_table_elements,
                ..MemoryLimiter::default()
            },
            kv,
            kv_held: Held::new(mib(limits.max_host_mib)),
            table,
            wasi,
            http: WasiHttpCtx::new(),
            outbound,
            log,
            component,
            broker,
        }
    }

    /// Sets the Store up for its next unit of work.
    pub(crate) fn begin(&mut self, call: CallContext) {
        self.outbound.deadline = call.deadline;
        self.call = call;
        self.limiter.exceeded = false;
    }

    /// Sets the Store up for one more request next to those it may be serving already (WASI
    /// 0.3): the guest traps only past the latest deadline of them all, and its log lines
    /// carry the correlation id of the latest request.
    pub(crate) fn begin_concurrent(&mut self, call: CallContext) {
        let deadline = call.deadline.max(self.call.deadline);
        self.begin(CallContext { deadline, ..call });
    }

    /// Bytes of linear memory the instance holds now.
    pub(crate) fn memory_used(&self) -> usize {
        self.limiter.memory_used
    }

    /// Whether the last failure came from denying memory growth.
    pub(crate) fn ran_out_of_memory(&self) -> bool {
        self.limiter.exceeded
    }

    fn keyvalue(&mut self) -> KeyValueView<'_> {
        KeyValueView { namespace: &self.kv, table: &mut self.table, held: &mut self.kv_held }
    }

    fn logging(&mut self) -> LoggingView<'_> {
        LoggingView { log: &self.log, correlation_id: &self.call.correlation_id }
    }

    fn sender(&self) -> Sender {
        Sender {
            component: self.component.clone(),
            correlation_id: self.call.correlation_id.clone(),
            depth: self.call.depth,
        }
    }

    fn messaging(&mut self) -> MessagingView<'_> {
        let sender = self.sender();
        let time_left = self.call.deadline.saturating_duration_since(Instant::now());
        MessagingView { broker: &self.broker, table: &mut self.table, sender, time_left }
    }

    fn outbox(&mut self) -> OutboxView<'_> {
        let sender = self.sender();
        let kv = KeyValueView { namespace: &self.kv, table: &mut self.table, held: &mut self.kv_held };
        OutboxView { kv, broker: &self.broker, sender }
    }

    /// Gives the guest a message delivered to it.
    pub(crate) fn hold(&mut self, message: Message) -> wasmtime::Result<Resource<Message>> {
        Ok(self.table.push(message)?)
    }
}

/// Makes a Store for one instance, with its limiter and deadline enforcement installed.
pub(crate) fn new_store(engine: &wasmtime::Engine, state: HostState) -> Store<HostState> {
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

/// Everything the host provides to every component: WASI, `wasi:http`, and the host's own
/// capabilities; WASI 0.3's too on the concurrent engine (a WASI 0.3 component's standard
/// library still imports some of 0.2's). Imports from other components are the linking
/// module's to add. `description` is the component's: how it types what it imports.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>, description: &Description) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    if linker.engine().get_concurrency_support() {
        wasmtime_wasi::p3::add_to_linker(linker)?;
        wasmtime_wasi_http::p3::add_to_linker(linker)?;
    }
    keyvalue::add_to_linker(linker, HostState::keyvalue)?;
    messaging::add_to_linker(linker, HostState::messaging, HostState::outbox, &|interface, function| {
        description.awaits(interface, function)
    })?;
    logging::add_to_linker(linker, HostState::logging)
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_counts_every_memory_of_the_instance_together() {
        let mut limiter = MemoryLimiter { max_memory: 100, max_table_elements: 10, ..MemoryLimiter::default() };
        assert!(limiter.memory_growing(0, 60, None).unwrap(), "a first memory of 60");
        assert!(!limiter.memory_growing(0, 60, None).unwrap(), "a second of 60 would make 120");
        assert!(limiter.exceeded);
        assert!(limiter.memory_growing(0, 40, None).unwrap(), "40 more fits exactly");
        assert!(!limiter.memory_growing(60, 61, None).unwrap(), "and then nothing grows");
        assert!(limiter.table_growing(0, 6, None).unwrap());
        assert!(!limiter.table_growing(0, 6, None).unwrap(), "tables are counted together too");
    }
}
