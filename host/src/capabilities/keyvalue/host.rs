//! The WIT implementation of `wasi:keyvalue` (store, atomics, batch) and of our
//! `trellis:keyvalue` (ordered, sequences) on [`KeyValueView`]: resources in the Store's table, reads
//! inline, writes through the namespace.

use wasmtime::component::Resource;

use super::changes::{Op, Written};
use super::resources::{Bucket, Cas};
use super::{KeyValueView, store};
use crate::capabilities::bindings::{atomics, batch, ordered, sequences};

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

impl KeyValueView<'_> {
    pub(crate) fn bucket_name(&mut self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        Ok(Ok(self.table.push(Bucket { name: identifier })?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.namespace.get("get", &name, &key).await)
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.namespace.write("set", &name, vec![Op::Set(key, value)]).await.map(drop))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.namespace.write("delete", &name, vec![Op::Delete(key)]).await.map(drop))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.namespace.get("exists", &name, &key).await.map(|value| value.is_some()))
    }

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<String>) -> Answer<store::KeyResponse> {
        let name = self.bucket_name(&bucket)?;
        let page = self.namespace.list_keys(&name, cursor.as_deref()).await;
        Ok(page.map(|(keys, cursor)| store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> Answer<i64> {
        let name = self.bucket_name(&bucket)?;
        let written = self.namespace.write("increment", &name, vec![Op::Increment(key, delta)]).await;
        Ok(written.map(|written| match written {
            Written::Done(counts) => counts[0],
            Written::Changed(..) => unreachable!("an increment expects nothing"),
        }))
    }

    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { bucket, key, current } = self.table.delete(cas)?;
        self.held.release(&current);
        let ops = vec![Op::Expect(key.clone(), current), Op::Set(key.clone(), value)];
        let swapped = self.namespace.write("swap", &bucket, ops).await;
        Ok(match swapped {
            Ok(Written::Done(_)) => Ok(()),
            Ok(Written::Changed(_, now)) => match self.held.take(&now) {
                Ok(()) => {
                    let retry = self.table.push(Cas { bucket, key, current: now })?;
                    Err(atomics::CasError::CasFailed(retry))
                }
                Err(quota) => Err(atomics::CasError::StoreError(quota)),
            },
            Err(e) => Err(atomics::CasError::StoreError(e)),
        })
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Resource<Cas>> {
        let name = self.bucket_name(&bucket)?;
        let current = match self.namespace.get("cas-new", &name, &key).await {
            Ok(current) => current,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(quota) = self.held.take(&current) {
            return Ok(Err(quota));
        }
        Ok(Ok(self.table.push(Cas { bucket: name, key, current })?))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Answer<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        let cas = self.table.delete(cas)?;
        self.held.release(&cas.current);
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let name = self.bucket_name(&bucket)?;
        let found = self.namespace.get_many(&name, &keys).await;
        Ok(found.map(|values| keys.into_iter().zip(values).map(|(k, v)| v.map(|v| (k, v))).collect()))
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        let ops = key_values.into_iter().map(|(key, value)| Op::Set(key, value)).collect();
        Ok(self.namespace.write("set-many", &name, ops).await.map(drop))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.namespace.write("delete-many", &name, keys.into_iter().map(Op::Delete).collect()).await.map(drop))
    }
}

impl ordered::Host for KeyValueView<'_> {
    async fn scan(
        &mut self,
        bucket: Resource<Bucket>,
        prefix: String,
        after: Option<String>,
        skip: u32,
        limit: u32,
    ) -> Answer<Vec<ordered::Entry>> {
        let name = self.bucket_name(&bucket)?;
        let found = self.namespace.scan(&name, (&prefix, after.as_deref(), skip as usize, limit as usize)).await;
        Ok(found.map(|entries| entries.into_iter().map(|(key, value)| ordered::Entry { key, value }).collect()))
    }

    async fn write(
        &mut self,
        bucket: Resource<Bucket>,
        ops: Vec<ordered::Op>,
    ) -> wasmtime::Result<Result<Vec<i64>, ordered::WriteError>> {
        let name = self.bucket_name(&bucket)?;
        Ok(write_answer(self.namespace.write("write", &name, ops_of(ops)).await))
    }
}

/// `trellis:keyvalue/ordered`'s ops as the storage's.
pub(crate) fn ops_of(ops: Vec<ordered::Op>) -> Vec<Op> {
    let op = |op| match op {
        ordered::Op::Set(entry) => Op::Set(entry.key, entry.value),
        ordered::Op::Delete(key) => Op::Delete(key),
        ordered::Op::Increment((key, delta)) => Op::Increment(key, delta),
        ordered::Op::Expect((key, value)) => Op::Expect(key, value),
    };
    ops.into_iter().map(op).collect()
}

/// What `trellis:keyvalue/ordered.write` answers for a write that ended so.
pub(crate) fn write_answer(written: Result<Written, store::Error>) -> Result<Vec<i64>, ordered::WriteError> {
    match written {
        Ok(Written::Done(counts)) => Ok(counts),
        Ok(Written::Changed(key, now)) => Err(ordered::WriteError::Changed((key, now))),
        Err(e) => Err(ordered::WriteError::Store(e)),
    }
}

impl sequences::Host for KeyValueView<'_> {
    async fn next(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<u64> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.namespace.next_in_sequence(name, key).await)
    }
}
