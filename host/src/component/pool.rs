//! A component's instances: warm ones kept idle for reuse, and the bulkhead that bounds how
//! many are busy at once and how many callers may wait for one. Making and running
//! instances is `invoke`'s job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime::component::Instance;
use wasmtime_wasi_http::p2::bindings::Proxy;

use crate::ops::metrics::{ComponentLabels, METRICS};
use crate::runtime::HostState;

/// An instance ready to run, with the Store it lives in.
pub struct Warm {
    pub store: Store<HostState>,
    pub instance: Instance,
    /// Its place in the component's bulkhead while busy; released when it goes idle or dies.
    pub(super) slot: Option<OwnedSemaphorePermit>,
    /// Its `wasi:http` bindings, looked up (and type-checked) once per instance.
    pub(super) proxy: Option<Arc<Proxy>>,
    pub(super) _alive: Alive,
}

/// Counts an instance in `trellis_instances_alive` for as long as it exists.
pub(super) struct Alive(ComponentLabels);

impl Alive {
    pub(super) fn new(component: &str) -> Self {
        let labels = ComponentLabels { component: component.to_string() };
        METRICS.instances_alive.get_or_create(&labels).inc();
        Self(labels)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        METRICS.instances_alive.get_or_create(&self.0).dec();
    }
}

/// Idle instances that finished their last request or call cleanly.
pub(super) struct InstancePool {
    reuse: bool,
    max_idle: usize,
    idle: Mutex<Vec<Warm>>,
}

impl InstancePool {
    pub(super) fn new(reuse: bool, max_idle: usize) -> Self {
        Self { reuse, max_idle, idle: Mutex::new(Vec::new()) }
    }

    pub(super) fn take(&self) -> Option<Warm> {
        self.idle.lock().unwrap().pop()
    }

    /// Keeps an instance that finished cleanly, if reuse is on and there is room.
    pub(super) fn put(&self, mut warm: Warm) {
        warm.slot = None;
        if !self.reuse {
            return;
        }
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < self.max_idle {
            idle.push(warm);
        }
    }

    pub(super) fn idle(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

/// At most `max_instances` busy instances; at most `max_queue` callers waiting for one.
pub(super) struct Bulkhead {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_instances: usize,
    max_queue: usize,
}

/// Counts a waiting caller for as long as it waits, however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bulkhead {
    pub(super) fn new(max_instances: usize, max_queue: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max_instances)), waiting: AtomicUsize::new(0), max_instances, max_queue }
    }

    /// A place: at once if one is free, after a wait (bounded by `deadline`) if the queue has
    /// room, and otherwise not at all, with the reason.
    pub(super) async fn enter(&self, deadline: std::time::Instant) -> Result<OwnedSemaphorePermit, String> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let busy = |why: &str| format!("{why} ({} instances busy)", self.max_instances);
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy("its queue is full"));
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout_at(deadline.into(), self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(busy("no instance freed up before the deadline")),
        }
    }
}
