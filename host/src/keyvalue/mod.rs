//! The host side of `wasi:keyvalue@0.2.0-draft2` (store, atomics, batch) for every component.
//! Each component gets its own namespace named after it; the bucket identifiers it opens are
//! its own to choose. Reads run inline; writes run on the blocking pool because each one waits
//! for an fsync.

mod db;

pub use db::{Scope, Storage, StorageError, Swap};

use std::sync::Arc;

use wasmtime::component::Resource;

use crate::bindings::{atomics, batch, store};
use crate::metrics::{METRICS, StorageLabels};
use crate::state::HostState;

/// A bucket a component opened.
#[derive(Debug)]
pub struct Bucket {
    name: String,
}

/// A compare-and-swap handle: the key and the value it held when the handle was made.
#[derive(Debug)]
pub struct Cas {
    bucket: String,
    key: String,
    current: Option<Vec<u8>>,
}

/// One component's view of the storage.
#[derive(Debug, Clone)]
pub struct Namespace {
    storage: Storage,
    name: Arc<str>,
}

impl Namespace {
    pub fn new(storage: Storage, name: Arc<str>) -> Self {
        Self { storage, name }
    }

    /// Runs a read inline: a redb read transaction takes microseconds and never waits on the
    /// disk for long, so a trip to another thread would cost more than it saves.
    fn read<R>(
        &self,
        operation: &'static str,
        bucket: &str,
        op: impl FnOnce(&Storage, Scope) -> Result<R, StorageError>,
    ) -> Result<R, store::Error> {
        let result =
            op(&self.storage, Scope { namespace: &self.name, bucket }).map_err(|e| store::Error::Other(e.to_string()));
        self.count(operation, result.is_ok());
        result
    }

    /// Runs a write on the blocking pool: each one waits for the fsync of the commit holding it.
    async fn write<R: Send + 'static>(
        &self,
        operation: &'static str,
        bucket: String,
        op: impl FnOnce(&Storage, Scope) -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, store::Error> {
        let (storage, namespace) = (self.storage.clone(), self.name.clone());
        let joined =
            tokio::task::spawn_blocking(move || op(&storage, Scope { namespace: &namespace, bucket: &bucket }))
                .await
                .map_err(|e| store::Error::Other(format!("storage task failed: {e}")));
        let result = joined.and_then(|r| r.map_err(|e| store::Error::Other(e.to_string())));
        self.count(operation, result.is_ok());
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

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

impl HostState {
    fn bucket_name(&mut self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table().get(bucket)?.name.clone())
    }
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        Ok(Ok(self.table().push(Bucket { name: identifier })?))
    }
}

impl store::HostBucket for HostState {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.read("get", &name, |s, scope| s.get(scope, &key)))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write("set", name, move |s, scope| s.set_many(scope, vec![(key, value)])).await)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write("delete", name, move |s, scope| s.delete_many(scope, vec![key])).await)
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.read("exists", &name, |s, scope| Ok(s.get(scope, &key)?.is_some())))
    }

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<String>) -> Answer<store::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        let page = self.kv.read("list-keys", &name, |s, scope| s.list_keys(scope, cursor.as_deref()));
        Ok(page.map(|(keys, cursor)| store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table().delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> Answer<i64> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write("increment", name, move |s, scope| s.increment(scope, key, delta)).await)
    }

    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { bucket, key, current } = self.table().delete(cas)?;
        let (bucket_for_retry, key_for_retry) = (bucket.clone(), key.clone());
        let swapped =
            self.kv.write("swap", bucket, move |s, scope| s.compare_and_swap(scope, key, current, value)).await;
        Ok(match swapped {
            Ok(Swap::Done) => Ok(()),
            Ok(Swap::Changed(now)) => {
                let retry = self.table().push(Cas { bucket: bucket_for_retry, key: key_for_retry, current: now })?;
                Err(atomics::CasError::CasFailed(retry))
            }
            Err(e) => Err(atomics::CasError::StoreError(e)),
        })
    }
}

impl atomics::HostCas for HostState {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Resource<Cas>> {
        let name = self.bucket_name(&bucket)?;
        let (bucket_name, key_name) = (name.clone(), key.clone());
        match self.kv.read("cas-new", &name, |s, scope| s.get(scope, &key)) {
            Ok(current) => Ok(Ok(self.table().push(Cas { bucket: bucket_name, key: key_name, current })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Answer<Option<Vec<u8>>> {
        Ok(Ok(self.table().get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table().delete(cas)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let name = self.bucket_name(&bucket)?;
        let found = self.kv.read("get-many", &name, |s, scope| {
            let values = s.get_many(scope, &keys)?;
            Ok(keys.into_iter().zip(values).map(|(k, v)| v.map(|v| (k, v))).collect())
        });
        Ok(found)
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write("set-many", name, move |s, scope| s.set_many(scope, key_values)).await)
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.kv.write("delete-many", name, move |s, scope| s.delete_many(scope, keys)).await)
    }
}

/// Registers the three interfaces in a component's linker.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    store::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    atomics::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    batch::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
}
