//! One loaded component: its compiled code pre-instantiated once, what discovery found in it,
//! its links to providers, and its pool of warm instances. Deciding which components are
//! loaded and how they link is the registry's job; running requests is the server's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use wasmtime::Store;
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyIndices};

use crate::config::Limits;
use crate::discovery::Description;
use crate::keyvalue::Namespace;
use crate::link::Link;
use crate::metrics::{ComponentLabels, METRICS};
use crate::registry::FileStamp;
use crate::router::Route;
use crate::state::{CallContext, HostState, new_store};

/// An instance ready to run, with the Store it lives in.
pub struct Warm {
    pub store: Store<HostState>,
    pub instance: Instance,
    /// Its place in the component's bulkhead while busy; released when it goes idle or dies.
    slot: Option<OwnedSemaphorePermit>,
    /// Its `wasi:http` bindings, looked up (and type-checked) once per instance.
    proxy: Option<Arc<Proxy>>,
    _alive: Alive,
}

/// Counts an instance in `trellis_instances_alive` for as long as it exists.
struct Alive(ComponentLabels);

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

/// Why no instance could be had.
#[derive(Debug, thiserror::Error)]
pub enum Checkout {
    /// The bulkhead is full and so is its queue, or the wait outlasted the deadline.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Failed(wasmtime::Error),
}

/// Exports by interface name, each with its functions' export indices.
pub type ExportIndex = HashMap<String, (ComponentExportIndex, HashMap<String, ComponentExportIndex>)>;

/// A component that passed validation, compilation and linking.
pub struct LoadedComponent {
    pub name: Arc<str>,
    pub path: PathBuf,
    /// The file's size and modification time when loaded, to notice a new version.
    pub stamp: FileStamp,
    /// A fingerprint of the file's bytes, to tell versions of one component apart.
    pub digest: String,
    pub loaded_at: SystemTime,
    pub description: Description,
    /// Its imports from other components, one link each.
    pub links: Vec<Arc<Link>>,
    pub routes: Vec<Route>,
    pub exports: ExportIndex,
    /// Its limits: the global ones with its own overrides from the config file.
    pub limits: Limits,
    pre: InstancePre<HostState>,
    proxy: Option<ProxyIndices>,
    namespace: Namespace,
    pool: InstancePool,
    bulkhead: Bulkhead,
}

/// At most `max_instances` busy instances; at most `max_queue` callers waiting for one.
struct Bulkhead {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Counts a waiting caller for as long as it waits, however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Idle instances that finished their last request or call cleanly.
struct InstancePool {
    reuse: bool,
    max_idle: usize,
    idle: Mutex<Vec<Warm>>,
}

/// What the loader hands over to make a [`LoadedComponent`].
pub struct Parts {
    pub name: Arc<str>,
    pub path: PathBuf,
    pub stamp: FileStamp,
    pub digest: String,
    pub description: Description,
    pub links: Vec<Arc<Link>>,
    pub pre: InstancePre<HostState>,
    pub namespace: Namespace,
    pub limits: Limits,
}

impl LoadedComponent {
    pub fn new(parts: Parts) -> wasmtime::Result<Self> {
        let proxy = if parts.description.serves_http() { Some(ProxyIndices::new(&parts.pre)?) } else { None };
        let exports = export_index(parts.pre.component(), &parts.description);
        Ok(Self {
            name: parts.name,
            path: parts.path,
            stamp: parts.stamp,
            digest: parts.digest,
            loaded_at: SystemTime::now(),
            description: parts.description,
            links: parts.links,
            routes: Vec::new(),
            exports,
            pool: InstancePool {
                reuse: parts.limits.instance_reuse,
                max_idle: parts.limits.max_idle_instances,
                idle: Mutex::new(Vec::new()),
            },
            bulkhead: Bulkhead {
                slots: Arc::new(Semaphore::new(parts.limits.max_instances)),
                waiting: AtomicUsize::new(0),
            },
            limits: parts.limits,
            pre: parts.pre,
            proxy,
            namespace: parts.namespace,
        })
    }

    pub fn serves_http(&self) -> bool {
        self.proxy.is_some()
    }

    /// An instance for one request or call, once the bulkhead has room: a warm one if any is
    /// idle, else a fresh one.
    pub async fn checkout(&self, call: CallContext) -> Result<Warm, Checkout> {
        let slot = self.slot(&call).await?;
        let idle = self.pool.idle.lock().unwrap().pop();
        if let Some(mut warm) = idle {
            let state = warm.store.data_mut();
            state.call = call;
            state.limiter.exceeded = false;
            warm.store.set_epoch_deadline(1);
            warm.slot = Some(slot);
            return Ok(warm);
        }
        let state = HostState::new(self.name.clone(), &self.limits, self.namespace.clone(), call);
        let mut store = new_store(self.pre.engine(), state);
        let started = std::time::Instant::now();
        let instance = self.pre.instantiate_async(&mut store).await.map_err(Checkout::Failed)?;
        let labels = ComponentLabels { component: self.name.to_string() };
        METRICS.instantiation_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        Ok(Warm { store, instance, slot: Some(slot), proxy: None, _alive: Alive::new(&self.name) })
    }

    /// A place in the bulkhead: at once if one is free, after a wait (bounded by the
    /// deadline) if the queue has room, and otherwise not at all.
    async fn slot(&self, call: &CallContext) -> Result<OwnedSemaphorePermit, Checkout> {
        if let Ok(slot) = self.bulkhead.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let busy = |why: &str| {
            Checkout::Busy(format!(
                "component '{}' is busy: {why} ({} instances busy)",
                self.name, self.limits.max_instances
            ))
        };
        if self.bulkhead.waiting.fetch_add(1, Ordering::Relaxed) >= self.limits.max_queue {
            self.bulkhead.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy("its queue is full"));
        }
        let _waiting = Waiting(&self.bulkhead.waiting);
        match tokio::time::timeout_at(call.deadline.into(), self.bulkhead.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(busy("no instance freed up before the deadline")),
        }
    }

    /// Returns an instance that finished cleanly. A trapped instance must never come back here:
    /// callers drop it instead.
    pub fn checkin(&self, mut warm: Warm) {
        warm.slot = None;
        if !self.pool.reuse {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap();
        if idle.len() < self.pool.max_idle {
            idle.push(warm);
        }
    }

    /// The `wasi:http` bindings of an instance of this component.
    pub fn proxy(&self, warm: &mut Warm) -> wasmtime::Result<Arc<Proxy>> {
        if let Some(proxy) = &warm.proxy {
            return Ok(proxy.clone());
        }
        let indices = self
            .proxy
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("component '{}' does not serve HTTP", self.name))?;
        let proxy = Arc::new(indices.load(&mut warm.store, &warm.instance)?);
        warm.proxy = Some(proxy.clone());
        Ok(proxy)
    }

    /// The export index of one function of one exported interface.
    pub fn export_function(&self, interface: &str, function: &str) -> Option<ComponentExportIndex> {
        self.exports.get(interface).and_then(|(_, funcs)| funcs.get(function)).copied()
    }

    pub fn idle_instances(&self) -> usize {
        self.pool.idle.lock().unwrap().len()
    }
}

fn export_index(component: &Component, description: &Description) -> ExportIndex {
    let mut index = HashMap::new();
    for export in &description.exports {
        let Some(interface) = component.get_export_index(None, &export.full_name) else { continue };
        let funcs = export
            .functions
            .iter()
            .filter_map(|f| Some((f.name.clone(), component.get_export_index(Some(&interface), &f.name)?)))
            .collect();
        index.insert(export.full_name.clone(), (interface, funcs));
    }
    index
}
