//! Indexes and totals kept with their records, so that what a service answers costs the size
//! of the answer, never the size of its data.
//!
//! A record and every index and total it changes are written together, all or none, with
//! one `trellis:keyvalue/ordered.write` ([`Changes`]). An index is a set of record ids kept in
//! id order under its own key prefix, with its total, a count per block of [`BLOCK`] ids and
//! a count per group of [`GROUP`] blocks: page N is found by adding group counts, then the
//! block counts of one group, then by skipping inside one block. At a million ids that reads
//! about 30 + 32 counts and skips fewer than 1,024 entries, wherever the page is.

use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::events;
use crate::table::{StorageError, Table};
use crate::trellis::keyvalue::ordered::{self, Op, WriteError};
use crate::trellis::messaging::outbox;
use crate::wasi::keyvalue::store;
use crate::wasi::messaging::types::Message;

/// Ids per block count.
pub const BLOCK: u64 = 1024;
/// Blocks per group count.
pub const GROUP: u64 = 32;

/// The most entries one scan returns (the host's own cap).
const SCAN_MAX: u32 = 1000;

/// One index of record ids, named like `status/pending` or `user/42`.
#[derive(Debug, Clone)]
pub struct Index {
    name: String,
}

impl Index {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    fn prefix(&self) -> String {
        format!("i/{}/", self.name)
    }

    fn entry(&self, id: u64) -> String {
        format!("i/{}/{id:020}", self.name)
    }

    fn block_prefix(&self) -> String {
        format!("b/{}/", self.name)
    }

    fn block(&self, id: u64) -> String {
        format!("b/{}/{:016}", self.name, id / BLOCK)
    }

    fn group_prefix(&self) -> String {
        format!("g/{}/", self.name)
    }

    fn group(&self, id: u64) -> String {
        format!("g/{}/{:011}", self.name, id / (BLOCK * GROUP))
    }

    fn total_key(&self) -> String {
        format!("t/{}", self.name)
    }

    /// How many ids the index holds: one read.
    pub fn total(&self, bucket: &store::Bucket) -> Result<u64, StorageError> {
        read_count(bucket, &self.total_key())
    }

    /// Up to `limit` ids from position `offset` (0-based), in id order.
    pub fn page(&self, bucket: &store::Bucket, offset: u64, limit: u32) -> Result<Vec<u64>, StorageError> {
        let Some((group, before_group)) = locate(bucket, &self.group_prefix(), None, offset, u32::MAX)? else {
            return Ok(Vec::new());
        };
        let in_group = offset - before_group;
        let first_block = group * GROUP;
        let after = (first_block > 0).then(|| format!("b/{}/{:016}", self.name, first_block - 1));
        let Some((block, before_block)) = locate(bucket, &self.block_prefix(), after, in_group, GROUP as u32)? else {
            return Ok(Vec::new());
        };
        let in_block = in_group - before_block;
        // The block's first id is `block * BLOCK`: start just before it.
        let after = (block > 0).then(|| self.entry(block * BLOCK - 1));
        self.ids(bucket, after, u32::try_from(in_block).unwrap_or(u32::MAX), limit)
    }

    /// Up to `limit` ids after the id `after` (from the first when None), in id order.
    pub fn after(&self, bucket: &store::Bucket, after: Option<u64>, limit: u32) -> Result<Vec<u64>, StorageError> {
        self.ids(bucket, after.map(|id| self.entry(id)), 0, limit)
    }

    fn ids(
        &self,
        bucket: &store::Bucket,
        after: Option<String>,
        skip: u32,
        limit: u32,
    ) -> Result<Vec<u64>, StorageError> {
        let (prefix, mut ids, mut after, mut skip) = (self.prefix(), Vec::new(), after, skip);
        while ids.len() < limit as usize {
            let want = (limit as usize - ids.len()).min(SCAN_MAX as usize) as u32;
            let entries = ordered::scan(bucket, &prefix, after.as_deref(), skip, want)?;
            ids.extend(entries.iter().filter_map(|e| e.key.rsplit('/').next()?.parse::<u64>().ok()));
            match entries.last() {
                Some(last) if entries.len() == want as usize => after = Some(last.key.clone()),
                _ => break,
            }
            skip = 0;
        }
        Ok(ids)
    }
}

/// The changes of one atomic write: records, index entries and totals, and the events
/// announcing them, sent in the same transaction.
#[derive(Debug, Default)]
pub struct Changes {
    ops: Vec<Op>,
    events: Vec<(String, Vec<u8>)>,
}

impl Changes {
    pub fn set(&mut self, key: String, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Set(ordered::Entry { key, value }));
        self
    }

    pub fn delete(&mut self, key: String) -> &mut Self {
        self.ops.push(Op::Delete(key));
        self
    }

    /// The write happens only if `key` still holds `value` (None: absent).
    pub fn expect(&mut self, key: String, value: Option<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Expect((key, value)));
        self
    }

    pub fn add(&mut self, key: String, delta: i64) -> &mut Self {
        self.ops.push(Op::Increment((key, delta)));
        self
    }

    /// Puts `id` in `index`, counting it.
    pub fn insert(&mut self, index: &Index, id: u64) -> &mut Self {
        self.set(index.entry(id), Vec::new());
        self.add(index.block(id), 1).add(index.group(id), 1).add(index.total_key(), 1)
    }

    /// Takes `id` out of `index`, counting it.
    pub fn remove(&mut self, index: &Index, id: u64) -> &mut Self {
        self.delete(index.entry(id));
        self.add(index.block(id), -1).add(index.group(id), -1).add(index.total_key(), -1)
    }

    /// Sends `payload` as a JSON event on `topic` when the changes are stored, and only then.
    pub fn announce(&mut self, topic: &str, payload: &impl Serialize) -> &mut Self {
        self.events.push((topic.to_string(), serde_json::to_vec(payload).unwrap_or_default()));
        self
    }

    /// Applies every change at once, and sends the events announced with them in the same
    /// transaction (`trellis:messaging/outbox`): a crash cannot store one without the other.
    /// `Ok(false)`: an `expect` did not hold and nothing was written or sent (read again and
    /// retry).
    pub fn commit(self, bucket: &store::Bucket) -> Result<bool, StorageError> {
        let Changes { ops, events: announced } = self;
        let written = if announced.is_empty() {
            ordered::write(bucket, &ops)
        } else {
            let messages: Vec<(String, Message)> =
                announced.into_iter().map(|(topic, payload)| (topic, events::message(&payload))).collect();
            outbox::write_and_send(bucket, &ops, messages)
        };
        match written {
            Ok(_) => Ok(true),
            Err(WriteError::Changed(_)) => Ok(false),
            Err(WriteError::Store(e)) => Err(e.into()),
        }
    }
}

/// Among the counts under `prefix` (after the key `after`, at most `most` of them), the one
/// whose range holds position `offset`: its number (the last part of its key) and the
/// positions before it. None when `offset` is past them all.
fn locate(
    bucket: &store::Bucket,
    prefix: &str,
    mut after: Option<String>,
    offset: u64,
    most: u32,
) -> Result<Option<(u64, u64)>, StorageError> {
    let (mut passed, mut seen) = (0u64, 0u32);
    while seen < most {
        let want = SCAN_MAX.min(most - seen);
        let counts = ordered::scan(bucket, prefix, after.as_deref(), 0, want)?;
        for entry in &counts {
            let count = count_of(&entry.value);
            if passed + count > offset {
                let number = entry.key.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                return Ok(Some((number, passed)));
            }
            passed += count;
        }
        match counts.last() {
            Some(last) if counts.len() == want as usize => after = Some(last.key.clone()),
            _ => break,
        }
        seen += want;
    }
    Ok(None)
}

/// Set in a bucket once every record stored in it is in its indexes.
const INDEXED: &str = "m/indexed-v1";

/// The buckets this instance has seen indexed: it never looks again.
static SEEN_INDEXED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Indexes, once, the records of `table` stored before their indexes existed: when the bucket
/// has no marker, every record goes through `index` in one atomic write that sets the marker
/// (a concurrent one that set it first wins; nothing is counted twice).
pub fn index_existing<T: DeserializeOwned>(
    table: &Table,
    index: impl Fn(&mut Changes, &T),
) -> Result<(), StorageError> {
    let mut seen = SEEN_INDEXED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.iter().any(|name| name == table.name()) {
        return Ok(());
    }
    if table.bucket().get(INDEXED)?.is_none() {
        let mut changes = Changes::default();
        changes.expect(INDEXED.into(), None).set(INDEXED.into(), b"1".to_vec());
        for record in table.all::<T>()? {
            index(&mut changes, &record);
        }
        changes.commit(table.bucket())?;
    }
    seen.push(table.name().to_string());
    Ok(())
}

/// The integer counter at `key` (0 when absent).
pub fn read_count(bucket: &store::Bucket, key: &str) -> Result<u64, StorageError> {
    Ok(bucket.get(key)?.map(|v| count_of(&v)).unwrap_or(0))
}

/// A counter's 8 little-endian bytes as a count (0 if malformed or negative).
pub fn count_of(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map(i64::from_le_bytes).ok().and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}
