//! A component's instances: what a new one's Store is made from (`Recipe`), warm ones kept
//! idle for reuse, and the bulkhead that bounds how many are busy at once and how many
//! callers may wait for one. Running instances is `invoke`'s job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime::component::Instance;
use wasmtime_wasi_http::p2::bindings::Proxy;

use crate::capabilities::keyvalue::Namespace;
use crate::capabilities::logging::GuestLog;
use crate::capabilities::messaging::Broker;
use crate::capabilities::outbound::Origin;
use crate::config::Limits;
use crate::ops::metrics::{ComponentLabels, METRICS};
use crate::runtime::{CallContext, HostState, new_store};

/// What every new Store of one component is made from, for its pool and for its WASI 0.3
/// instances alike.
pub(crate) struct Recipe {
    pub(super) name: Arc<str>,
    pub(super) limits: Limits,
    pub(super) namespace: Namespace,
    /// The origins it may send HTTP requests to.
    pub(super) outbound: Arc<[Origin]>,
    /// Where its output goes, at its rate.
    pub(super) log: GuestLog,
    /// Where the messages it sends go.
    pub(super) broker: Arc<dyn Broker>,
}

impl Recipe {
    /// A new Store on `engine`, set up for the work in `call`.
    pub(super) fn store(&self, engine: &wasmtime::Engine, call: CallContext) -> Store<HostState> {
        let (namespace, outbound, log) = (self.namespace.clone(), self.outbound.clone(), self.log.clone());
        let state =
            HostState::new(self.name.clone(), &self.limits, namespace, outbound, log, self.broker.clone(), call);
        new_store(engine, state)
    }

    /// Records an instance made since `started` (its instantiation time), and counts it alive
    /// for as long as the returned guard lives.
    pub(super) fn made(&self, started: Instant) -> Alive {
        let labels = ComponentLabels { component: self.name.to_string() };
        METRICS.instantiation_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        Alive::new(&self.name)
    }
}

/// An instance ready to run, with the Store it lives in.
pub struct Warm {
    pub store: Store<HostState>,
    pub instance: Instance,
    /// Its place in the component's bulkhead while busy; released when it goes idle or dies.
    pub(super) slot: Option<OwnedSemaphorePermit>,
    /// Its `wasi:http` bindings, looked up (and type-checked) once per instance.
    pub(super) proxy: Option<Arc<Proxy>>,
    /// When it last went idle.
    pub(super) idle_since: Instant,
    pub(super) _alive: Alive,
}

/// Counts an instance in `trellis_instances_alive` for as long as it exists.
pub(super) struct Alive(ComponentLabels);

impl Alive {
    fn new(component: &str) -> Self {
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

/// Idle instances that finished their last request or call cleanly and did not grow past
/// `max_idle_bytes`: one large request does not keep its memory resident.
pub(super) struct InstancePool {
    reuse: bool,
    max_idle: usize,
    max_idle_bytes: usize,
    idle: Mutex<Vec<Warm>>,
}

impl InstancePool {
    pub(super) fn new(reuse: bool, max_idle: usize, max_idle_bytes: usize) -> Self {
        Self { reuse, max_idle, max_idle_bytes, idle: Mutex::new(Vec::new()) }
    }

    pub(super) fn take(&self) -> Option<Warm> {
        self.idle.lock().unwrap().pop()
    }

    /// Keeps an instance that finished cleanly, if reuse is on and there is room.
    pub(super) fn put(&self, mut warm: Warm) {
        warm.slot = None;
        if !self.reuse || warm.store.data().memory_used() > self.max_idle_bytes {
            return;
        }
        warm.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < self.max_idle {
            idle.push(warm);
        }
    }

    /// Drops the instances idle for longer than `idle_for`, all but the most recently used:
    /// after a burst of traffic, the instances it needed give their memory back.
    pub(super) fn trim(&self, idle_for: Duration) {
        let stale: Vec<Warm> = {
            let mut idle = self.idle.lock().unwrap();
            // The most recently used is last: `put` pushes, `take` pops.
            let older = idle.len().saturating_sub(1);
            idle.extract_if(..older, |warm| warm.idle_since.elapsed() > idle_for).collect()
        };
        drop(stale);
    }

    pub(super) fn idle(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

/// At most `max_instances` busy instances. Top-level work (requests, load-time exports) may
/// take three quarters of them and wait, at most `max_queue` callers at a time, until the
/// deadline. Nested calls (from another component) never wait: a chain of calls holds its
/// slots while it waits for the next level, so a waiting nested call could wait on slots its
/// own chain (or a chain waiting on it) holds. They take a place at once, first from the
/// quarter top-level work cannot take, or fail fast.
pub(super) struct Bulkhead {
    open: Arc<Semaphore>,
    nested: Arc<Semaphore>,
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
        let reserved = max_instances / 4;
        Self {
            open: Arc::new(Semaphore::new(max_instances - reserved)),
            nested: Arc::new(Semaphore::new(reserved)),
            waiting: AtomicUsize::new(0),
            max_instances,
            max_queue,
        }
    }

    /// A place for top-level work: at once if one is free, after a wait (bounded by
    /// `deadline`) if the queue has room, and otherwise not at all, with the reason.
    pub(super) async fn enter(&self, deadline: std::time::Instant) -> Result<OwnedSemaphorePermit, String> {
        if let Ok(slot) = self.open.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let busy = |why: &str| format!("{why} ({} instances busy)", self.max_instances);
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy("its queue is full"));
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout_at(deadline.into(), self.open.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(busy("no instance freed up before the deadline")),
        }
    }

    /// A place for a nested call, at once or not at all.
    pub(super) fn enter_nested(&self) -> Result<OwnedSemaphorePermit, String> {
        let slot = self.nested.clone().try_acquire_owned().or_else(|_| self.open.clone().try_acquire_owned());
        slot.map_err(|_| {
            format!(
                "all {} instances are busy, and nested calls do not wait (a chain could wait on itself)",
                self.max_instances
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nested_calls_take_the_reserve_and_fail_fast_when_everything_is_busy() {
        let bulkhead = Bulkhead::new(4, 8);
        let soon = Instant::now() + Duration::from_millis(50);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(bulkhead.enter(soon).await.unwrap());
        }
        assert!(bulkhead.enter(soon).await.unwrap_err().contains("before the deadline"), "top level gets 3 of 4");
        held.push(bulkhead.enter_nested().expect("the reserved place"));
        let started = Instant::now();
        assert!(bulkhead.enter_nested().unwrap_err().contains("do not wait"));
        assert!(started.elapsed() < Duration::from_millis(10), "fails at once");
        held.pop();
        held.pop();
        let _slot = bulkhead.enter_nested().expect("a freed place of either kind");
    }

    #[tokio::test]
    async fn a_bulkhead_of_fewer_than_four_keeps_no_reserve() {
        let bulkhead = Bulkhead::new(1, 0);
        let held = bulkhead.enter(Instant::now()).await.unwrap();
        assert!(bulkhead.enter_nested().is_err());
        drop(held);
        let _slot = bulkhead.enter_nested().unwrap();
    }
}
