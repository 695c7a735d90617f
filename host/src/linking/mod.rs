//! Run-time linking between components: each import of one component from another is a
//! [`Link`] whose functions, defined in the importer's linker, forward every call as dynamic
//! values to the link's current [`Callee`] through the link's circuit breaker (`forward`).
//! What a callee is (a local component's export, or a component on other hosts) is the
//! component and cluster modules' business; which callee a link points at is the registry's.

mod forward;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use wasmtime::component::Val;

use crate::breaker::Breaker;
use crate::config::Limits;
use crate::discovery::Interface;
use crate::runtime::{CallContext, Fault};

/// A future a [`Callee`] answers with.
pub(crate) type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Fault>> + Send + 'a>>;

/// Which loaded version of which component answers a link: a replacement is a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderId {
    pub name: Arc<str>,
    /// Tells apart two loads of the same name.
    pub version: u64,
    /// Whether it runs on other hosts of the cluster (all its replicas there are one provider).
    pub remote: bool,
}

impl ProviderId {
    /// Component `name` as it runs on the other hosts of the cluster.
    pub fn remote(name: &str) -> Self {
        Self { name: name.into(), version: 0, remote: true }
    }
}

/// Whatever answers the calls of a link: an export of a component, wherever it runs.
pub trait Callee: Send + Sync {
    fn provider(&self) -> &ProviderId;

    /// Calls the function at `index` in the import's function list, within `call`'s deadline.
    fn call<'a>(&'a self, index: usize, call: CallContext, params: &'a [Val], results: &'a mut [Val])
    -> CallFuture<'a>;

    /// The other hosts that answer its calls, for a provider that runs elsewhere.
    fn hosts(&self) -> Option<Vec<String>> {
        None
    }
}

/// Where a link currently leads.
pub struct Target {
    pub callee: Arc<dyn Callee>,
    /// The provider's export that serves the import, e.g. `shop:users/api@0.1.2`.
    pub export: String,
    /// Fresh for each provider version: a new version starts with a clean history.
    pub breaker: Arc<Breaker>,
}

/// One importing component's link to one interface.
pub struct Link {
    pub caller: Arc<str>,
    pub interface: Interface,
    target: ArcSwapOption<Target>,
    /// Why there is no target, when there is none.
    unresolved: Mutex<String>,
    /// How deep calls may nest before this link refuses one (`limits.max_call_depth`).
    max_call_depth: u32,
    /// The largest parameters or results a call may carry (`limits.max_call_value_bytes`).
    max_value_bytes: usize,
}

impl Link {
    pub fn new(caller: Arc<str>, interface: Interface, limits: &Limits) -> Arc<Self> {
        let unresolved = Mutex::new(format!("no loaded component provides {}", interface.full_name));
        Arc::new(Self {
            caller,
            interface,
            target: ArcSwapOption::empty(),
            unresolved,
            max_call_depth: limits.max_call_depth,
            max_value_bytes: limits.max_call_value_bytes,
        })
    }

    pub fn target(&self) -> Option<Arc<Target>> {
        self.target.load_full()
    }

    pub fn set_target(&self, target: Target) {
        self.target.store(Some(Arc::new(target)));
    }

    pub fn clear_target(&self, why: String) {
        self.target.store(None);
        *self.unresolved.lock().unwrap() = why;
    }

    pub fn unresolved_reason(&self) -> Option<String> {
        self.target.load().is_none().then(|| self.unresolved.lock().unwrap().clone())
    }

    /// Whether this link currently leads to `provider`.
    pub fn leads_to(&self, provider: &ProviderId) -> bool {
        self.target().is_some_and(|t| t.callee.provider() == provider)
    }
}
