//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) and our `trellis:keyvalue` (ordered,
//! sequences) for every component: the capability ([`Namespace`], one per component, named
//! after it), its view on a Store ([`KeyValueView`]), the WIT implementation on that view
//! (`host`), the embedded redb backend (`redb_backend`) with the writes it applies
//! (`changes`) within each component's quota (`quota`), what a group's writes changed until
//! it is stored (`pending`), its table's key (`entry_key`), its group commit (`group`), how
//! groups become durable through a journal and reach redb (`durable`, `journal`), its
//! sequences (`reserved`) and its errors (`error`), and the cluster's backend on JetStream
//! key-value (`jetstream`), which applies the same writes with the same meaning. The bucket
//! identifiers a component opens are its own to choose.

pub(crate) mod changes;
mod durable;
mod entry_key;
mod error;
mod group;
mod host;
mod jetstream;
mod journal;
mod pending;
mod quota;
mod redb_backend;
mod reserved;
pub(crate) mod resources;

pub(crate) use changes::{Linked, Op, Scope, Written};
pub(crate) use error::StorageError;
pub(crate) use host::{ops_of, write_answer};
pub(crate) use jetstream::{SharedStorage, replicated_stream, safe_name};
pub(crate) use quota::Quota;
pub use redb_backend::Storage;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::capabilities::bindings::{atomics, batch, ordered, sequences, store};
use crate::ops::metrics::{METRICS, StorageLabels};

/// One component's part of the storage: what its Stores carry.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    backend: Backend,
    name: Arc<str>,
    quota: Quota,
}

/// Where a namespace's data lives.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// The embedded database: one host's own.
    Local(Storage),
    /// JetStream key-value buckets, shared by every host of the cluster.
    Shared(SharedStorage),
}

impl Namespace {
    pub(crate) fn new(backend: Backend, name: Arc<str>, quota: Quota) -> Self {
        Self { backend, name, quota }
    }

    fn scope<'a>(&'a self, bucket: &'a str) -> Scope<'a> {
        Scope { namespace: &self.name, bucket, quota: self.quota }
    }

    /// What `key` holds. Embedded, the read runs inline: a redb read transaction takes
    /// microseconds and never waits on the disk for long, so a trip to another thread would
    /// cost more than it saves.
    async fn get(&self, operation: &'static str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, store::Error> {
        let found = match &self.backend {
            Backend::Local(storage) => storage.get(self.scope(bucket), key),
            Backend::Shared(shared) => shared.get(&self.name, self.quota, bucket, key).await,
        };
        self.counted(operation, found)
    }

    async fn get_many(&self, bucket: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, store::Error> {
        let found = match &self.backend {
            Backend::Local(storage) => storage.get_many(self.scope(bucket), keys),
            Backend::Shared(shared) => shared.get_many(&self.name, self.quota, bucket, keys).await,
        };
        self.counted("get-many", found)
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), store::Error> {
        let found = match &self.backend {
            Backend::Local(storage) => storage.list_keys(self.scope(bucket), cursor),
            Backend::Shared(shared) => shared.list_keys(&self.name, self.quota, bucket, cursor).await,
        };
        self.counted("list-keys", found)
    }

    /// Entries by prefix in key order: `page` is (prefix, after, skip, limit).
    async fn scan(
        &self,
        bucket: &str,
        page: (&str, Option<&str>, usize, usize),
    ) -> Result<Vec<(String, Vec<u8>)>, store::Error> {
        let found = match &self.backend {
            Backend::Local(storage) => storage.scan(self.scope(bucket), page.0, page.1, page.2, page.3),
            Backend::Shared(shared) => shared.scan(&self.name, self.quota, bucket, page).await,
        };
        self.counted("scan", found)
    }

    /// Runs a write (its ops all or none). Embedded, it is queued for the next commit and
    /// awaited without holding a thread until the commit holding it is fsynced.
    pub(crate) async fn write(
        &self,
        operation: &'static str,
        bucket: &str,
        ops: Vec<Op>,
    ) -> Result<Written, store::Error> {
        let written = match &self.backend {
            Backend::Local(storage) => storage.write_async(self.scope(bucket), ops).await,
            Backend::Shared(shared) => shared.write(&self.name, self.quota, bucket, ops).await,
        };
        self.counted(operation, written)
    }

    /// Runs a write, and `linked` (a write in the host's own scope of the same database) with
    /// it: both or neither. Only the bus stages such writes, and only when its log is in this
    /// host's database, which a cluster's shared storage never is.
    pub(crate) async fn write_with(&self, bucket: &str, ops: Vec<Op>, linked: Linked) -> Result<Written, store::Error> {
        let written = match &self.backend {
            Backend::Local(storage) => storage.write_linked(self.scope(bucket), ops, linked).await,
            Backend::Shared(_) => Err(StorageError::Database("a linked write needs the host's own database".into())),
        };
        self.counted("write-and-send", written)
    }

    /// The next number of a sequence: from memory when its block has one left, else after
    /// a durable reservation.
    async fn next_in_sequence(&self, bucket: String, key: String) -> Result<u64, store::Error> {
        let storage = match &self.backend {
            Backend::Local(storage) => storage,
            Backend::Shared(shared) => {
                let next = shared.next_in_sequence(&self.name, self.quota, &bucket, &key).await;
                return self.counted("sequence-next", next);
            }
        };
        if let Some(n) = storage.next_reserved(self.scope(&bucket), &key) {
            self.count("sequence-next", true);
            return Ok(n);
        }
        // Reserving waits for a commit while holding the sequence's lock: a thread's job.
        let (storage, namespace, quota) = (storage.clone(), self.name.clone(), self.quota);
        let reserved = tokio::task::spawn_blocking(move || {
            storage.next_reserving(Scope { namespace: &namespace, bucket: &bucket, quota }, &key)
        })
        .await;
        let next = reserved.unwrap_or_else(|e| Err(StorageError::Database(format!("storage task failed: {e}"))));
        self.counted("sequence-next", next)
    }

    fn counted<T>(&self, operation: &'static str, result: Result<T, StorageError>) -> Result<T, store::Error> {
        self.count(operation, result.is_ok());
        result.map_err(|e| store::Error::Other(e.to_string()))
    }

    fn count(&self, operation: &'static str, ok: bool) {
        let labels = StorageLabels {
            component: self.name.to_string(),
            operation: operation.to_string(),
            result: if ok { "ok" } else { "error" }.to_string(),
        };
        METRICS.storage_operations.get_or_create(&labels).inc();
    }
}

/// What the WIT implementation works on: a component's namespace and its Store's resource
/// table, borrowed from the Store's data for one host call.
pub(crate) struct KeyValueView<'a> {
    pub namespace: &'a Namespace,
    pub table: &'a mut ResourceTable,
    pub held: &'a mut Held,
}

/// The bytes of stored values a Store's compare-and-swap handles hold, within a quota
/// (`limits.max_host_mib`): what a guest can make the host keep on its behalf is bounded.
#[derive(Debug)]
pub(crate) struct Held {
    bytes: usize,
    max: usize,
}

impl Held {
    pub(crate) fn new(max: usize) -> Self {
        Self { bytes: 0, max }
    }

    fn take(&mut self, value: &Option<Vec<u8>>) -> Result<(), store::Error> {
        let len = value.as_ref().map_or(0, Vec::len);
        if self.bytes + len > self.max {
            return Err(store::Error::Other(format!(
                "host quota exceeded: compare-and-swap handles would hold {} bytes, over limits.max_host_mib ({} bytes)",
                self.bytes + len,
                self.max
            )));
        }
        self.bytes += len;
        Ok(())
    }

    fn release(&mut self, value: &Option<Vec<u8>>) {
        self.bytes -= value.as_ref().map_or(0, Vec::len);
    }
}

/// Names the view type for wasmtime's generated `add_to_linker` functions.
struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// Registers the five interfaces in a linker whose Store data gives a [`KeyValueView`].
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, KeyValue>(linker, view)?;
    atomics::add_to_linker::<T, KeyValue>(linker, view)?;
    batch::add_to_linker::<T, KeyValue>(linker, view)?;
    ordered::add_to_linker::<T, KeyValue>(linker, view)?;
    sequences::add_to_linker::<T, KeyValue>(linker, view)
}
