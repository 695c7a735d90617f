//! The cluster's backend behind `wasi:keyvalue` (`[storage] backend = "nats"`): JetStream
//! key-value buckets, one per component namespace, shared by the component's replicas on
//! every host. A bucket is the standard JetStream KV layout (stream `KV_<bucket>`, subjects
//! `$KV.<bucket>.<key>`, one revision kept per key), stored in files, replicated on three
//! servers when the NATS cluster has them, and read through the stream's leader, so a read
//! sees every write acknowledged before it (the caller's own among them). How names become
//! what JetStream allows is `names`; how a write becomes one atomic, revision-checked publish
//! is `write`; listing and scanning is `scan`.
//!
//! What a bucket may hold is the component's quota: key and value sizes are checked here, and
//! the bucket's stream refuses entries over `max_keys` (deleted keys count until JetStream lets
//! their markers go). `max_storage_mib` is not set on the stream: JetStream reserves a stream's
//! byte limit up front, so every component would hold 16 GiB of the servers' storage; bytes
//! are bounded by the NATS account's JetStream limits instead.

mod names;

pub(crate) use names::safe_name;
mod scan;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use super::Quota;
use super::changes::{Op, Written};
use super::error::StorageError;

/// The backend: a connection to NATS and the buckets opened so far.
#[derive(Clone)]
pub(crate) struct SharedStorage(Arc<Inner>);

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    cluster: String,
    buckets: tokio::sync::Mutex<HashMap<String, Arc<Bucket>>>,
}

/// One component's bucket.
struct Bucket {
    stream: stream::Stream,
    /// `$KV.<bucket>.`: what every key's subject starts with.
    prefix: String,
}

/// What a key holds now, and the revision (stream sequence) that put it there: 0 when the key
/// was never written, so that a write expecting it absent can say so.
#[derive(Debug, Clone, Default)]
struct Current {
    value: Option<Vec<u8>>,
    revision: u64,
}

impl std::fmt::Debug for SharedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedStorage({})", self.0.cluster)
    }
}

impl SharedStorage {
    /// The backend of the cluster named `cluster`, over `client`'s connection.
    pub(crate) fn new(client: async_nats::Client, cluster: &str) -> Self {
        let js = jetstream::new(client.clone());
        Self(Arc::new(Inner { client, js, cluster: cluster.to_string(), buckets: Default::default() }))
    }

    pub(crate) async fn get(
        &self,
        namespace: &str,
        quota: Quota,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let store = self.bucket(namespace, quota).await?;
        Ok(store.current(&names::key(bucket, key)).await?.value)
    }

    pub(crate) async fn get_many(
        &self,
        namespace: &str,
        quota: Quota,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let store = self.bucket(namespace, quota).await?;
        let reads = keys.iter().map(|key| store.current_of(bucket, key));
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().map(|current| current.value).collect())
    }

    /// Applies `ops` all or none (see `write`).
    pub(crate) async fn write(
        &self,
        namespace: &str,
        quota: Quota,
        bucket: &str,
        ops: Vec<Op>,
    ) -> Result<Written, StorageError> {
        let store = self.bucket(namespace, quota).await?;
        write::apply(&self.0.client, &store, bucket, quota, &ops).await
    }

    /// The next number of a sequence: one revision-checked increment per number, so that
    /// numbers grow in the order they are drawn across the whole cluster (blocks reserved per
    /// host, as the embedded storage does, would interleave the hosts' numbers: a list in id
    /// order would no longer be oldest first).
    pub(crate) async fn next_in_sequence(
        &self,
        namespace: &str,
        quota: Quota,
        bucket: &str,
        key: &str,
    ) -> Result<u64, StorageError> {
        match self.write(namespace, quota, bucket, vec![Op::Increment(key.to_string(), 1)]).await? {
            Written::Done(counts) if counts[0] >= 1 => Ok(counts[0] as u64),
            Written::Done(counts) => Err(StorageError::Refused(format!(
                "the sequence at {key} holds {}, not a positive count",
                counts[0] - 1
            ))),
            Written::Changed(..) => unreachable!("an increment expects nothing"),
        }
    }

    /// The component's bucket, created on first use.
    async fn bucket(&self, namespace: &str, quota: Quota) -> Result<Arc<Bucket>, StorageError> {
        let mut buckets = self.0.buckets.lock().await;
        if let Some(bucket) = buckets.get(namespace) {
            return Ok(bucket.clone());
        }
        let name = names::bucket(&self.0.cluster, namespace);
        let stream = match self.0.js.get_stream(format!("KV_{name}")).await {
            Ok(stream) => stream,
            Err(e) if not_found(&e) => self.create(&name, quota).await?,
            Err(e) => return Err(unreachable_nats(&format!("cannot open the bucket {name}"), e)),
        };
        let bucket = Arc::new(Bucket { stream, prefix: format!("$KV.{name}.") });
        buckets.insert(namespace.to_string(), bucket.clone());
        Ok(bucket)
    }

    /// Creates a bucket on three servers, or on one when NATS has fewer.
    async fn create(&self, name: &str, quota: Quota) -> Result<stream::Stream, StorageError> {
        let config = stream::Config {
            name: format!("KV_{name}"),
            description: Some("a Trellis component's data".into()),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_messages: i64::try_from(quota.max_keys).unwrap_or(-1),
            discard: stream::DiscardPolicy::New,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: false,
            allow_atomic_publish: true,
            ..Default::default()
        };
        replicated_stream(&self.0.js, config)
            .await
            .map_err(|e| unreachable_nats(&format!("cannot create the bucket {name}"), e))
    }
}

/// Gets or creates the stream `config` names on three servers, or on one when NATS has fewer
/// (never merely because JetStream is still electing its leader: that is an error, and a
/// later try waits it out). The one rule for everything Trellis keeps in JetStream.
pub(crate) async fn replicated_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let three = stream::Config { num_replicas: 3, ..config };
    match js.get_or_create_stream(three.clone()).await {
        Err(e) if too_few_servers(&e) => {
            tracing::info!(stream = three.name, "NATS has fewer than three servers: the stream is kept on one");
            js.get_or_create_stream(stream::Config { num_replicas: 1, ..three }).await
        }
        made => made,
    }
}

/// Whether a stream could not be made for want of servers to replicate it on (not because
/// JetStream is still electing its leader, which a later write waits out).
fn too_few_servers(e: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::ErrorCode;
    use jetstream::context::CreateStreamErrorKind as Kind;
    matches!(e.kind(), Kind::JetStream(e)
        if [ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED, ErrorCode::INSUFFICIENT_RESOURCES].contains(&e.error_code()))
}

impl Bucket {
    /// What `subject_key` (an escaped `<bucket>.<key>`) holds now, read through the leader.
    async fn current(&self, subject_key: &str) -> Result<Current, StorageError> {
        use stream::LastRawMessageErrorKind as Kind;
        let subject = format!("{}{subject_key}", self.prefix);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => {
                let value = (!deleted(&message.headers)).then(|| message.payload.to_vec());
                Ok(Current { value, revision: message.sequence })
            }
            Err(e) if e.kind() == Kind::NoMessageFound => Ok(Current::default()),
            Err(e) => Err(unreachable_nats("cannot read", e)),
        }
    }

    async fn current_of(&self, bucket: &str, key: &str) -> Result<Current, StorageError> {
        self.current(&names::key(bucket, key)).await
    }
}

fn not_found(e: &jetstream::context::GetStreamError) -> bool {
    use jetstream::context::GetStreamErrorKind as Kind;
    matches!(e.kind(), Kind::JetStream(e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// The header JetStream KV marks a deleted or purged key with.
const OPERATION: &str = "KV-Operation";

/// Whether a stored message is a delete or purge marker rather than a value.
fn deleted(headers: &async_nats::HeaderMap) -> bool {
    headers.get(OPERATION).is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
}

fn unreachable_nats(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Database(format!("{what} on NATS JetStream: {e}"))
}

/// A stored value as the bytes NATS sends.
fn payload(value: &Option<Vec<u8>>) -> Bytes {
    value.as_ref().map_or_else(Bytes::new, |v| Bytes::copy_from_slice(v))
}
