//! What one loaded component is: its compiled code pre-instantiated once, what discovery
//! found in it, its links to providers and its routes, its pool of warm instances behind a
//! bulkhead (`pool`), how guest code is run on them (`invoke`), how its exports answer
//! links (`callee`), how a WASI 0.3 component answers several requests per instance
//! (`concurrent`), and how it receives messages (`deliver`). Reading and checking its file is `validate`. Which components are
//! loaded and how they link is the registry's job; serving requests is the HTTP layer's.

mod callee;
mod concurrent;
mod deliver;
mod invoke;
mod pool;
mod validate;

pub(crate) use callee::ExportCallee;
pub(crate) use concurrent::{ConcurrentHttp, Unanswered};
pub use pool::Warm;
pub(crate) use validate::{FileStamp, compile};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wasmtime::component::{Component, ComponentExportIndex, InstancePre};
use wasmtime_wasi_http::p2::bindings::ProxyIndices;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::capabilities::keyvalue::Namespace;
use crate::capabilities::logging::GuestLog;
use crate::capabilities::messaging::{Broker, TopicPattern};
use crate::capabilities::outbound::Origin;
use crate::config::{Limits, mib};
use crate::discovery::{Description, WasiHttp};
use crate::http::router::Route;
use crate::linking::{Link, ProviderId};
use crate::runtime::HostState;
use pool::{Bulkhead, InstancePool, Recipe};

/// Exports by interface name, each with its functions' export indices.
type ExportIndex = HashMap<String, (ComponentExportIndex, HashMap<String, ComponentExportIndex>)>;

/// Numbers each load, so that two versions loaded under one name are told apart.
static LOADS: AtomicU64 = AtomicU64::new(1);

/// A component that passed validation, compilation and linking.
pub struct LoadedComponent {
    pub name: Arc<str>,
    /// This load of it, as links see it.
    pub id: ProviderId,
    pub path: PathBuf,
    /// The file's size and modification time when loaded, to notice a new version.
    pub stamp: FileStamp,
    /// SHA-256 of the file's bytes.
    pub digest: String,
    pub loaded_at: SystemTime,
    pub description: Description,
    /// Its imports from other components, one link each.
    pub links: Vec<Arc<Link>>,
    pub routes: Vec<Route>,
    /// The topics it receives messages on (empty unless it exports `incoming-handler`).
    pub subscriptions: Vec<TopicPattern>,
    /// Its OpenAPI document (from its `trellis:http/openapi` export), if it has one.
    pub openapi: Option<serde_json::Value>,
    /// Its limits: the global ones with its own overrides from the config file.
    pub limits: Limits,
    exports: ExportIndex,
    pre: InstancePre<HostState>,
    http: Option<Http>,
    receiver: Option<deliver::Receiver>,
    /// What its instances' Stores are made from.
    recipe: Arc<Recipe>,
    pool: InstancePool,
    bulkhead: Bulkhead,
}

/// How a component answers HTTP.
pub(crate) enum Http {
    /// WASI 0.2: each request takes an instance from the pool, through the handler's indices.
    V0_2(ProxyIndices),
    /// WASI 0.3: instances of their own, each answering several requests at once.
    V0_3(ConcurrentHttp),
}

/// What the loader hands over to make a [`LoadedComponent`].
pub(crate) struct Parts {
    pub(crate) name: Arc<str>,
    pub(crate) path: PathBuf,
    pub(crate) stamp: FileStamp,
    pub(crate) digest: String,
    pub(crate) description: Description,
    pub(crate) links: Vec<Arc<Link>>,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) namespace: Namespace,
    pub(crate) outbound: Arc<[Origin]>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) limits: Limits,
}

impl LoadedComponent {
    /// Drops warm instances idle for longer than `limits.idle_instance_timeout`, all but one.
    pub fn trim_idle(&self) {
        self.pool.trim(self.limits.idle_instance_timeout);
        if let Some(Http::V0_3(http)) = &self.http {
            http.trim(self.limits.idle_instance_timeout);
        }
    }

    pub(crate) fn new(parts: Parts) -> wasmtime::Result<Self> {
        let exports = export_index(parts.pre.component(), &parts.description);
        let id = ProviderId { name: parts.name.clone(), version: LOADS.fetch_add(1, Ordering::Relaxed), remote: false };
        let recipe = Arc::new(Recipe {
            name: parts.name.clone(),
            limits: parts.limits.clone(),
            namespace: parts.namespace,
            outbound: parts.outbound,
            log: GuestLog::new(parts.name.clone(), parts.limits.guest_log_lines_per_second),
            broker: parts.broker,
        });
        let receiver = match parts.description.receives_messages() {
            true => Some(deliver::Receiver::new(&parts.pre)?),
            false => None,
        };
        let http = match parts.description.http() {
            None => None,
            Some(WasiHttp::V0_2) => Some(Http::V0_2(ProxyIndices::new(&parts.pre)?)),
            Some(WasiHttp::V0_3) => {
                Some(Http::V0_3(ConcurrentHttp::new(recipe.clone(), ServicePre::new(parts.pre.clone())?)))
            }
        };
        Ok(Self {
            name: parts.name,
            id,
            path: parts.path,
            stamp: parts.stamp,
            digest: parts.digest,
            loaded_at: SystemTime::now(),
            description: parts.description,
            links: parts.links,
            routes: Vec::new(),
            subscriptions: Vec::new(),
            openapi: None,
            exports,
            pool: InstancePool::new(
                parts.limits.instance_reuse,
                parts.limits.max_idle_instances,
                mib(parts.limits.max_idle_instance_mib),
            ),
            bulkhead: Bulkhead::new(parts.limits.max_instances, parts.limits.max_queue),
            limits: parts.limits,
            pre: parts.pre,
            http,
            receiver,
            recipe,
        })
    }

    pub fn serves_http(&self) -> bool {
        self.http.is_some()
    }

    pub(crate) fn http(&self) -> Option<&Http> {
        self.http.as_ref()
    }

    /// The component's version as its exports name it: the highest version among the
    /// interfaces it exports for other components, if any carries one.
    pub fn version(&self) -> Option<String> {
        let exported = self
            .description
            .exports
            .iter()
            .filter(|e| !e.name.is_host_provided() && !e.name.base.starts_with("trellis:"));
        exported.filter_map(|e| e.name.version.clone()).max().map(|v| v.to_string())
    }

    /// The export index of one function of one exported interface.
    pub fn export_function(&self, interface: &str, function: &str) -> Option<ComponentExportIndex> {
        self.exports.get(interface).and_then(|(_, funcs)| funcs.get(function)).copied()
    }

    pub fn idle_instances(&self) -> usize {
        self.pool.idle()
    }

    /// Whether every import is linked.
    pub fn is_ready(&self) -> bool {
        self.links.iter().all(|l| l.target().is_some())
    }

    /// The imports of this component that no provider serves, with the reason for each.
    pub fn unresolved(&self) -> Vec<(String, String)> {
        self.links.iter().filter_map(|l| Some((l.interface.full_name.clone(), l.unresolved_reason()?))).collect()
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
