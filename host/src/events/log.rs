//! The durable part of the bus, kept in the host's storage under a namespace of its own
//! (`trellis:events`, which no component's name can be): the message log, numbered in commit
//! order; each subscriber's position in it; and the dead letters. Every write waits for its
//! fsync and shares it with the writes committed alongside (group commit).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::capabilities::keyvalue::changes::log_key;
use crate::capabilities::keyvalue::{Linked, Op, Quota, Scope, Storage, StorageError, Written};
use crate::capabilities::messaging::{Envelope, TopicPattern};

const NAMESPACE: &str = "trellis:events";
/// Messages under `m/` followed by their number; the last number under `seq`.
const LOG: &str = "log";
const MESSAGE_PREFIX: &str = "m/";
const COUNTER: &str = "seq";
/// Subscriber name -> [`Position`].
const SUBSCRIBERS: &str = "subscribers";
/// `NAME/NUMBER` -> [`DeadLetter`].
const DEAD: &str = "dead";
/// Entries read or deleted at once.
pub(super) const PAGE: usize = 1000;

/// One published message as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) topic: String,
    pub(crate) envelope: Envelope,
    pub(crate) publisher: String,
    pub(crate) correlation_id: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub(crate) published_ms: u64,
}

/// Where a subscriber is: every message numbered up to `cursor` is done for it
/// (acknowledged, dead-lettered, or not on its topics); and the topics it subscribes to, so
/// that what it will want is kept while it is away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Position {
    pub(crate) cursor: u64,
    pub(crate) topics: Vec<TopicPattern>,
    /// When its component was removed, if it is: its position is kept for a while.
    pub(crate) removed_ms: Option<u64>,
}

/// A message a subscriber failed `deliveries` times, kept with its last error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeadLetter {
    pub(crate) id: u64,
    pub(crate) record: Record,
    pub(crate) error: String,
    pub(crate) deliveries: u32,
    pub(crate) dead_ms: u64,
}

/// The bus's records in the storage.
#[derive(Clone)]
pub(crate) struct Log {
    storage: Storage,
}

fn scope(bucket: &str) -> Scope<'_> {
    Scope { namespace: NAMESPACE, bucket, quota: Quota::NONE }
}

/// The op that appends `record` to the log, and its size in bytes.
fn append_op(record: &Record) -> (Op, usize) {
    let value = encode(record);
    let size = value.len();
    (Op::Append { counter: COUNTER.into(), prefix: MESSAGE_PREFIX.into(), value }, size)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("the bus's records always serialize")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::Database(format!("a stored {what} cannot be read: {e}")))
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

fn number(key: &str, prefix: &str) -> Option<u64> {
    key.strip_prefix(prefix)?.parse().ok()
}

impl Log {
    pub(crate) fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// Stores `record` durably and returns its number (one more than the last one stored)
    /// and its size in bytes.
    pub(crate) async fn append(&self, record: &Record) -> Result<(u64, usize), StorageError> {
        let (op, size) = append_op(record);
        match self.storage.write_async(scope(LOG), vec![op]).await? {
            Written::Done(numbers) => Ok((numbers[0] as u64, size)),
            other => unreachable!("an append answered {other:?}"),
        }
    }

    /// The write that appends `records`, to be applied with another one (see [`Linked`]), and
    /// their sizes in bytes. The write's counts are their numbers.
    pub(crate) fn appending(records: &[Record]) -> (Linked, usize) {
        let (ops, sizes): (Vec<Op>, Vec<usize>) = records.iter().map(append_op).unzip();
        (Linked { scope: scope(LOG), ops }, sizes.iter().sum())
    }

    /// The number of the last message ever stored (0 before the first).
    pub(crate) fn last(&self) -> Result<u64, StorageError> {
        let stored = self.storage.get(scope(LOG), COUNTER)?;
        Ok(stored.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()).map_or(0, |b| i64::from_le_bytes(b) as u64))
    }

    /// Up to `limit` stored messages numbered after `after`, in order, with their sizes.
    pub(crate) fn after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Record, usize)>, StorageError> {
        let from = log_key(MESSAGE_PREFIX, after as i64);
        let found = self.storage.scan(scope(LOG), MESSAGE_PREFIX, Some(&from), 0, limit)?;
        found
            .into_iter()
            .filter_map(|(key, value)| Some((number(&key, MESSAGE_PREFIX)?, value)))
            .map(|(n, value)| Ok((n, decode(&value, "message")?, value.len())))
            .collect()
    }

    /// Deletes the stored messages numbered in `numbers`.
    pub(crate) async fn forget(&self, numbers: impl IntoIterator<Item = u64>) -> Result<(), StorageError> {
        let ops: Vec<Op> = numbers.into_iter().map(|n| Op::Delete(log_key(MESSAGE_PREFIX, n as i64))).collect();
        for page in ops.chunks(PAGE) {
            self.storage.write_async(scope(LOG), page.to_vec()).await?;
        }
        Ok(())
    }

    /// Every subscriber's stored position.
    pub(crate) fn positions(&self) -> Result<Vec<(String, Position)>, StorageError> {
        let mut positions = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(scope(SUBSCRIBERS), "", after.as_deref(), 0, PAGE)?;
            let full = page.len() == PAGE;
            after = page.last().map(|(k, _)| k.clone());
            for (name, value) in page {
                positions.push((name, decode(&value, "subscriber position")?));
            }
            if !full {
                return Ok(positions);
            }
        }
    }

    pub(crate) async fn save_position(&self, subscriber: &str, position: &Position) -> Result<(), StorageError> {
        let op = Op::Set(subscriber.to_string(), encode(position));
        self.storage.write_async(scope(SUBSCRIBERS), vec![op]).await.map(drop)
    }

    pub(crate) async fn forget_position(&self, subscriber: &str) -> Result<(), StorageError> {
        self.storage.write_async(scope(SUBSCRIBERS), vec![Op::Delete(subscriber.to_string())]).await.map(drop)
    }

    pub(crate) async fn dead_letter(&self, subscriber: &str, dead: &DeadLetter) -> Result<(), StorageError> {
        let op = Op::Set(log_key(&format!("{subscriber}/"), dead.id as i64), encode(dead));
        self.storage.write_async(scope(DEAD), vec![op]).await.map(drop)
    }

    /// Up to `limit` dead letters of `subscriber` (of everyone when `None`), oldest first,
    /// with the subscriber each belongs to.
    pub(crate) fn dead_letters(
        &self,
        subscriber: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, DeadLetter)>, StorageError> {
        let prefix = subscriber.map(|s| format!("{s}/")).unwrap_or_default();
        let found = self.storage.scan(scope(DEAD), &prefix, None, 0, limit)?;
        found
            .into_iter()
            .map(|(key, value)| {
                let owner = key.rsplit_once('/').map_or(key.as_str(), |(owner, _)| owner).to_string();
                Ok((owner, decode(&value, "dead letter")?))
            })
            .collect()
    }

    pub(crate) async fn forget_dead_letter(&self, subscriber: &str, id: u64) -> Result<(), StorageError> {
        let op = Op::Delete(log_key(&format!("{subscriber}/"), id as i64));
        self.storage.write_async(scope(DEAD), vec![op]).await.map(drop)
    }
}
