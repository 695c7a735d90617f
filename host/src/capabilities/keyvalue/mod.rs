//! `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) and our `trellis:keyvalue` (ordered,
//! sequences) for every component: the capability ([`Namespace`], one per component, named
//! after it), its view on a Store ([`KeyValueView`]), the WIT implementation on that view
//! (`host`), and the redb backend (`redb_backend`) with the writes it applies (`changes`), its
//! group commit (`group`), its sequences (`reserved`) and its errors (`error`). The bucket
//! identifiers a component opens are its own to choose.

pub(crate) mod changes;
mod error;
mod group;
mod host;
mod redb_backend;
mod reserved;
pub(crate) mod resources;

pub(crate) use changes::Quota;
pub(crate) use changes::{Op, Scope, Written};
pub(crate) use error::StorageError;
pub use redb_backend::Storage;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::capabilities::bindings::{atomics, batch, ordered, sequences, store};
use crate::ops::metrics::{METRICS, StorageLabels};

/// One component's part of the storage: what its Stores carry.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    storage: Storage,
    name: Arc<str>,
    quota: Quota,
}

impl Namespace {
    pub(crate) fn new(storage: Storage, name: Arc<str>, quota: Quota) -> Self {
        Self { storage, name, quota }
    }

    /// Runs a read inline: a redb read transaction takes microseconds and never waits on the
    /// disk for long, so a trip to another thread would cost more than it saves.
    fn read<R>(
        &self,
        operation: &'static str,
        bucket: &str,
        op: impl FnOnce(&Storage, Scope) -> Result<R, StorageError>,
    ) -> Result<R, store::Error> {
        let result = op(&self.storage, Scope { namespace: &self.name, bucket, quota: self.quota })
            .map_err(|e| store::Error::Other(e.to_string()));
        self.count(operation, result.is_ok());
        result
    }

    /// Runs a write (its ops all or none): queued for the next commit, and awaited without
    /// holding a thread until the commit holding it is fsynced.
    async fn write(&self, operation: &'static str, bucket: &str, ops: Vec<Op>) -> Result<Written, store::Error> {
        let scope = Scope { namespace: &self.name, bucket, quota: self.quota };
        let result = self.storage.write_async(scope, ops).await.map_err(|e| store::Error::Other(e.to_string()));
        self.count(operation, result.is_ok());
        result
    }

    /// The next number of a sequence: from memory when its block has one left, else after
    /// a durable reservation on the blocking pool.
    async fn next_in_sequence(&self, bucket: String, key: String) -> Result<u64, store::Error> {
        let scope = Scope { namespace: &self.name, bucket: &bucket, quota: self.quota };
        if let Some(n) = self.storage.next_reserved(scope, &key) {
            self.count("sequence-next", true);
            return Ok(n);
        }
        // Reserving waits for a commit while holding the sequence's lock: a thread's job.
        let (storage, namespace, quota) = (self.storage.clone(), self.name.clone(), self.quota);
        let reserved = tokio::task::spawn_blocking(move || {
            storage.next_reserving(Scope { namespace: &namespace, bucket: &bucket, quota }, &key)
        })
        .await;
        let result = match reserved {
            Ok(result) => result.map_err(|e| store::Error::Other(e.to_string())),
            Err(e) => Err(store::Error::Other(format!("storage task failed: {e}"))),
        };
        self.count("sequence-next", result.is_ok());
        result
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
