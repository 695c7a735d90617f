//! What the writes of one group commit changed so far, kept in memory until the transaction
//! ends. Writes read through it before the table, and it is stored once, in key order, after
//! the last write: a key that many writes of a group change (an index's count, a total, the
//! bus's counter) is looked up and stored once per commit instead of once per write, and the
//! B-tree is changed from left to right.

use std::collections::BTreeMap;

use super::changes::Entries;
use super::error::StorageError;

/// key -> its value now (None: deleted).
type Keys = BTreeMap<String, Option<Vec<u8>>>;

/// namespace -> bucket -> its changed keys.
#[derive(Default)]
pub(super) struct Pending {
    namespaces: BTreeMap<String, BTreeMap<String, Keys>>,
}

/// What the pending changes say of a key.
pub(super) enum Seen<'a> {
    /// No write of this transaction changed it: the table knows.
    Untouched,
    /// Changed to this (None: deleted).
    Changed(Option<&'a [u8]>),
}

impl Pending {
    pub(super) fn get(&self, namespace: &str, bucket: &str, key: &str) -> Seen<'_> {
        let value = self.namespaces.get(namespace).and_then(|b| b.get(bucket)).and_then(|keys| keys.get(key));
        match value {
            None => Seen::Untouched,
            Some(value) => Seen::Changed(value.as_deref()),
        }
    }

    pub(super) fn put(&mut self, namespace: &str, bucket: &str, key: String, value: Option<Vec<u8>>) {
        let buckets = match self.namespaces.get_mut(namespace) {
            Some(buckets) => buckets,
            None => self.namespaces.entry(namespace.to_string()).or_default(),
        };
        let keys = match buckets.get_mut(bucket) {
            Some(keys) => keys,
            None => buckets.entry(bucket.to_string()).or_default(),
        };
        keys.insert(key, value);
    }

    /// Stores every change, in key order.
    pub(super) fn save(self, entries: &mut Entries) -> Result<(), StorageError> {
        for (namespace, buckets) in &self.namespaces {
            for (bucket, keys) in buckets {
                for (key, value) in keys {
                    let at = (namespace.as_str(), bucket.as_str(), key.as_str());
                    match value {
                        Some(value) => entries.insert(at, value.as_slice())?,
                        None => entries.remove(at)?,
                    };
                }
            }
        }
        Ok(())
    }
}
