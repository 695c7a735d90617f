//! The writes a group commit applies, one at a time, each within its component's storage
//! quota: the size of a key and of a value, how many keys and how many bytes (keys and values
//! together) a component may keep. What each component uses is kept in its own table and
//! changed in the transaction that changes the data, so it is exact after any crash.

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition};

use super::redb_backend::{StorageError, Swap};
use crate::config::Limits;

/// (namespace, bucket, key) -> value.
pub(super) const ENTRIES: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("entries");

/// namespace -> (keys, bytes).
pub(super) const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

pub(super) type Entries<'txn> = redb::Table<'txn, (&'static str, &'static str, &'static str), &'static [u8]>;

/// What one component may keep in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) max_key_bytes: usize,
    pub(crate) max_value_bytes: usize,
    pub(crate) max_keys: u64,
    pub(crate) max_bytes: u64,
}

impl Quota {
    pub(crate) fn of(limits: &Limits) -> Self {
        Self {
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            max_keys: limits.max_keys,
            max_bytes: limits.max_storage_mib.saturating_mul(1024 * 1024),
        }
    }

    /// No limit: for tests of everything else.
    #[cfg(test)]
    pub(crate) const NONE: Quota =
        Quota { max_key_bytes: usize::MAX, max_value_bytes: usize::MAX, max_keys: u64::MAX, max_bytes: u64::MAX };

    fn check_entry(&self, key: &str, value_len: usize) -> Result<(), StorageError> {
        if key.len() > self.max_key_bytes {
            return Err(StorageError::Quota(format!(
                "key of {} bytes is over limits.max_key_bytes ({})",
                key.len(),
                self.max_key_bytes
            )));
        }
        if value_len > self.max_value_bytes {
            return Err(StorageError::Quota(format!(
                "value of {value_len} bytes is over limits.max_value_bytes ({})",
                self.max_value_bytes
            )));
        }
        Ok(())
    }
}

/// One queued write, owned, so that whichever writer commits the group can apply it.
pub(super) struct Write {
    pub(super) namespace: String,
    pub(super) bucket: String,
    pub(super) quota: Quota,
    pub(super) change: Change,
}

pub(super) enum Change {
    Set(Vec<(String, Vec<u8>)>),
    Delete(Vec<String>),
    Increment { key: String, delta: i64 },
    CompareAndSwap { key: String, expected: Option<Vec<u8>>, value: Vec<u8> },
}

#[derive(Debug)]
pub(super) enum Written {
    Nothing,
    Count(i64),
    Swap(Swap),
}

/// Keys and bytes per namespace within one transaction: read once, written back at its end.
#[derive(Default)]
pub(super) struct Usage {
    namespaces: HashMap<String, (u64, u64)>,
}

impl Usage {
    fn of(&mut self, table: &redb::Table<&str, (u64, u64)>, namespace: &str) -> Result<(u64, u64), StorageError> {
        if let Some(used) = self.namespaces.get(namespace) {
            return Ok(*used);
        }
        let used = table.get(namespace)?.map(|v| v.value()).unwrap_or((0, 0));
        self.namespaces.insert(namespace.to_string(), used);
        Ok(used)
    }

    pub(super) fn save(self, table: &mut redb::Table<&str, (u64, u64)>) -> Result<(), StorageError> {
        for (namespace, used) in self.namespaces {
            table.insert(namespace.as_str(), used)?;
        }
        Ok(())
    }
}

/// The tables a write changes.
pub(super) struct Tables<'a, 'txn> {
    pub(super) entries: &'a mut Entries<'txn>,
    pub(super) usage_table: &'a redb::Table<'txn, &'static str, (u64, u64)>,
    pub(super) usage: &'a mut Usage,
}

impl Write {
    /// The outer error is the database's (the whole group fails); the inner one this write's,
    /// which changes nothing.
    pub(super) fn apply(&self, t: &mut Tables) -> Result<Result<Written, StorageError>, StorageError> {
        let (namespace, bucket) = (self.namespace.as_str(), self.bucket.as_str());
        let stored_len = |t: &Tables, key: &str| -> Result<Option<usize>, StorageError> {
            Ok(t.entries.get((namespace, bucket, key))?.map(|v| v.value().len()))
        };
        // The new entries with the length each replaces, all checked before any is written.
        let mut puts: Vec<(&str, &[u8], Option<usize>)> = Vec::new();
        let mut deletes: Vec<(&str, usize)> = Vec::new();
        let mut answer = Written::Nothing;
        let count;
        match &self.change {
            Change::Set(entries) => {
                for (key, value) in entries {
                    puts.push((key, value, stored_len(t, key)?));
                }
            }
            Change::Delete(keys) => {
                for key in keys {
                    if let Some(len) = stored_len(t, key)? {
                        deletes.push((key, len));
                    }
                }
            }
            Change::Increment { key, delta } => {
                let current = match t.entries.get((namespace, bucket, key.as_str()))? {
                    None => None,
                    Some(v) => match <[u8; 8]>::try_from(v.value()) {
                        Ok(bytes) => Some(i64::from_le_bytes(bytes)),
                        Err(_) => {
                            let message = format!("key {key:?} does not hold an 8-byte integer, cannot increment it");
                            return Ok(Err(StorageError::Refused(message)));
                        }
                    },
                };
                let Some(next) = current.unwrap_or(0).checked_add(*delta) else {
                    return Ok(Err(StorageError::Refused(format!("incrementing key {key:?} would overflow"))));
                };
                count = next.to_le_bytes();
                puts.push((key, &count, current.map(|_| 8)));
                answer = Written::Count(next);
            }
            Change::CompareAndSwap { key, expected, value } => {
                let current = t.entries.get((namespace, bucket, key.as_str()))?.map(|v| v.value().to_vec());
                if current != *expected {
                    return Ok(Ok(Written::Swap(Swap::Changed(current))));
                }
                puts.push((key, value, current.map(|v| v.len())));
                answer = Written::Swap(Swap::Done);
            }
        }
        if let Err(over) = self.check(t, &puts, &deletes)? {
            return Ok(Err(over));
        }
        for (key, value, _) in puts {
            t.entries.insert((namespace, bucket, key), value)?;
        }
        for (key, _) in deletes {
            t.entries.remove((namespace, bucket, key))?;
        }
        Ok(Ok(answer))
    }

    /// Whether the write fits the quota; if it does, what it uses is counted.
    fn check(
        &self,
        t: &mut Tables,
        puts: &[(&str, &[u8], Option<usize>)],
        deletes: &[(&str, usize)],
    ) -> Result<Result<(), StorageError>, StorageError> {
        let before = t.usage.of(t.usage_table, &self.namespace)?;
        let (mut keys, mut bytes) = before;
        for (key, value, replaced) in puts {
            if let Err(over) = self.quota.check_entry(key, value.len()) {
                return Ok(Err(over));
            }
            match replaced {
                Some(old) => bytes = bytes.saturating_sub(*old as u64),
                None => {
                    keys += 1;
                    bytes += key.len() as u64;
                }
            }
            bytes += value.len() as u64;
        }
        for (key, len) in deletes {
            keys = keys.saturating_sub(1);
            bytes = bytes.saturating_sub((key.len() + len) as u64);
        }
        // A write that shrinks what is used is always allowed, even over a lowered quota.
        if keys > self.quota.max_keys && keys > before.0 {
            let message = format!("{keys} keys would be over limits.max_keys ({})", self.quota.max_keys);
            return Ok(Err(StorageError::Quota(message)));
        }
        if bytes > self.quota.max_bytes && bytes > before.1 {
            let message =
                format!("{bytes} bytes stored would be over limits.max_storage_mib ({} bytes)", self.quota.max_bytes);
            return Ok(Err(StorageError::Quota(message)));
        }
        t.usage.namespaces.insert(self.namespace.clone(), (keys, bytes));
        Ok(Ok(()))
    }
}

/// Counts what every namespace uses, for a database written before usage was kept.
pub(super) fn recount(
    entries: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
) -> Result<Usage, StorageError> {
    let mut usage = Usage::default();
    for entry in entries.iter()? {
        let (k, v) = entry?;
        let (namespace, _, key) = k.value();
        let used = usage.namespaces.entry(namespace.to_string()).or_default();
        used.0 += 1;
        used.1 += (key.len() + v.value().len()) as u64;
    }
    Ok(usage)
}
