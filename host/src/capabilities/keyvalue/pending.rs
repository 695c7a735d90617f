//! Changed keys kept in memory, in key order: what the writes of one group commit changed so
//! far (writes read through it before the database), and what every group changed since the
//! last durable commit to redb (every read looks there first). A key that many writes change
//! (an index's count, a total, the bus's counter) is stored once per durable commit instead
//! of once per write, and the B-tree is changed from left to right.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::changes::Entries;
use super::error::StorageError;
use super::journal::Journal;

/// key -> its value now (None: deleted).
type Keys = BTreeMap<String, Option<Vec<u8>>>;

/// namespace -> bucket -> its changed keys.
#[derive(Default, Clone)]
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
    pub(super) fn get<'a>(&'a self, namespace: &str, bucket: &str, key: &str) -> Seen<'a> {
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

    pub(super) fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// The changed keys of (namespace, bucket) from `from` on, in key order.
    pub(super) fn range<'a>(
        &'a self,
        namespace: &str,
        bucket: &str,
        from: &'a str,
    ) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let keys = self.namespaces.get(namespace).and_then(|buckets| buckets.get(bucket));
        let bounds = (Bound::Included(from), Bound::Unbounded);
        keys.into_iter().flat_map(move |keys| keys.range::<str, _>(bounds).map(|(k, v)| (k.as_str(), v.as_deref())))
    }

    /// Takes in the changes of a later group: where both changed a key, the later wins.
    pub(super) fn absorb(&mut self, later: Pending) {
        for (namespace, buckets) in later.namespaces {
            let mine = self.namespaces.entry(namespace).or_default();
            for (bucket, keys) in buckets {
                mine.entry(bucket).or_default().extend(keys);
            }
        }
    }

    /// Puts every change into the journal's record.
    pub(super) fn record(&self, journal: &mut Journal) {
        for (namespace, buckets) in &self.namespaces {
            for (bucket, keys) in buckets {
                for (key, value) in keys {
                    journal.entry(namespace, bucket, key, value.as_deref());
                }
            }
        }
    }

    /// Stores every change, in key order.
    pub(super) fn save(&self, entries: &mut Entries) -> Result<(), StorageError> {
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

/// Two generations of changes: what the newer says of a key wins over the older.
#[derive(Clone, Copy)]
pub(super) struct Layers<'a> {
    pub(super) newer: &'a Pending,
    pub(super) older: &'a Pending,
}

impl<'a> Layers<'a> {
    pub(super) fn get(&self, namespace: &str, bucket: &str, key: &str) -> Seen<'a> {
        match self.newer.get(namespace, bucket, key) {
            Seen::Untouched => self.older.get(namespace, bucket, key),
            changed => changed,
        }
    }

    /// The changed keys of (namespace, bucket) from `from` on, in key order, each once.
    pub(super) fn range(
        &self,
        namespace: &str,
        bucket: &str,
        from: &'a str,
    ) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let mut newer = self.newer.range(namespace, bucket, from).peekable();
        let mut older = self.older.range(namespace, bucket, from).peekable();
        std::iter::from_fn(move || match (newer.peek(), older.peek()) {
            (Some((n, _)), Some((o, _))) if n <= o => {
                if n == o {
                    older.next();
                }
                newer.next()
            }
            (_, Some(_)) => older.next(),
            (Some(_), None) => newer.next(),
            (None, None) => None,
        })
    }
}
