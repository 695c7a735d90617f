//! The durable backend behind `wasi:keyvalue`: one redb file in the data folder. Every key
//! lives under (namespace, bucket), the namespace being the component's name, so components
//! never see each other's data. Each write is its own fsynced transaction: once a write
//! returns, it survives a crash of the host.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// (namespace, bucket, key) -> value.
const ENTRIES: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("entries");

/// Keys returned by one `list-keys` page: enough to page through large buckets without
/// building huge lists in one call.
pub const LIST_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StorageError(String);

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self { StorageError(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Where one bucket of one component lives.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub namespace: &'a str,
    pub bucket: &'a str,
}

/// The result of a compare-and-swap.
#[derive(Debug, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// Someone changed the value since it was read; this is its value now.
    Changed(Option<Vec<u8>>),
}

/// The database, shared by every Store.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

impl Storage {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    pub fn get(&self, scope: Scope, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        Ok(table.get((scope.namespace, scope.bucket, key))?.map(|v| v.value().to_vec()))
    }

    pub fn get_many(&self, scope: Scope, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        keys.iter()
            .map(|key| Ok(table.get((scope.namespace, scope.bucket, key.as_str()))?.map(|v| v.value().to_vec())))
            .collect()
    }

    pub fn set_many(&self, scope: Scope, entries: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        self.write(|table| {
            for (key, value) in entries {
                table.insert((scope.namespace, scope.bucket, key.as_str()), value.as_slice())?;
            }
            Ok(())
        })
    }

    pub fn delete_many(&self, scope: Scope, keys: &[String]) -> Result<(), StorageError> {
        self.write(|table| {
            for key in keys {
                table.remove((scope.namespace, scope.bucket, key.as_str()))?;
            }
            Ok(())
        })
    }

    /// Up to [`LIST_PAGE`] keys after `cursor` (exclusive), in key order, and the cursor of
    /// the next page if there is one.
    pub fn list_keys(&self, scope: Scope, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>), StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let start = (scope.namespace, scope.bucket, cursor.unwrap_or(""));
        let mut keys = Vec::new();
        for entry in table.range(start..)? {
            let (k, _) = entry?;
            let (ns, bucket, key) = k.value();
            if ns != scope.namespace || bucket != scope.bucket {
                break;
            }
            if cursor == Some(key) {
                continue;
            }
            if keys.len() == LIST_PAGE {
                let next = keys.last().cloned();
                return Ok((keys, next));
            }
            keys.push(key.to_string());
        }
        Ok((keys, None))
    }

    /// Adds `delta` to the integer stored at `key` (8 bytes, little-endian; absent is 0).
    pub fn increment(&self, scope: Scope, key: &str, delta: i64) -> Result<i64, StorageError> {
        self.write(|table| {
            let current = match table.get((scope.namespace, scope.bucket, key))? {
                None => 0,
                Some(v) => {
                    let bytes: [u8; 8] = v.value().try_into().map_err(|_| {
                        StorageError(format!("key {key:?} does not hold an 8-byte integer, cannot increment it"))
                    })?;
                    i64::from_le_bytes(bytes)
                }
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| StorageError(format!("incrementing key {key:?} would overflow")))?;
            table.insert((scope.namespace, scope.bucket, key), next.to_le_bytes().as_slice())?;
            Ok(next)
        })
    }

    /// Writes `value` only if the key still holds `expected`; atomic against every other write.
    pub fn compare_and_swap(
        &self,
        scope: Scope,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Swap, StorageError> {
        self.write(|table| {
            let current = table.get((scope.namespace, scope.bucket, key))?.map(|v| v.value().to_vec());
            if current.as_deref() != expected {
                return Ok(Swap::Changed(current));
            }
            table.insert((scope.namespace, scope.bucket, key), value)?;
            Ok(Swap::Done)
        })
    }

    /// Runs `f` in one write transaction and commits it durably before returning; nothing is
    /// written if `f` fails.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut redb::Table<(&str, &str, &str), &[u8]>) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut table = txn.open_table(ENTRIES)?;
            f(&mut table)?
        };
        txn.commit()?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (Storage, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Storage::open(&dir.path().join("kv.redb")).unwrap(), dir)
    }

    const USERS: Scope = Scope { namespace: "user-service", bucket: "default" };
    const ORDERS: Scope = Scope { namespace: "order-service", bucket: "default" };

    #[test]
    fn namespaces_never_see_each_others_keys() {
        let (s, _dir) = storage();
        s.set_many(USERS, &[("k".into(), b"users".to_vec())]).unwrap();
        assert_eq!(s.get(ORDERS, "k").unwrap(), None);
        assert_eq!(s.list_keys(ORDERS, None).unwrap().0, Vec::<String>::new());
        assert_eq!(s.get(USERS, "k").unwrap(), Some(b"users".to_vec()));
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        Storage::open(&path).unwrap().set_many(USERS, &[("k".into(), b"v".to_vec())]).unwrap();
        assert_eq!(Storage::open(&path).unwrap().get(USERS, "k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn list_keys_pages_with_a_cursor() {
        let (s, _dir) = storage();
        let entries: Vec<_> = (0..LIST_PAGE + 5).map(|i| (format!("key{i:05}"), vec![])).collect();
        s.set_many(USERS, &entries).unwrap();
        s.set_many(ORDERS, &[("zzz".into(), vec![])]).unwrap();
        let (first, cursor) = s.list_keys(USERS, None).unwrap();
        assert_eq!(first.len(), LIST_PAGE);
        let (rest, end) = s.list_keys(USERS, cursor.as_deref()).unwrap();
        assert_eq!(rest.len(), 5);
        assert_eq!(end, None);
        assert_eq!(rest.last().unwrap(), &format!("key{:05}", LIST_PAGE + 4));
    }

    #[test]
    fn increment_counts_from_zero_and_refuses_non_integers() {
        let (s, _dir) = storage();
        assert_eq!(s.increment(USERS, "n", 1).unwrap(), 1);
        assert_eq!(s.increment(USERS, "n", 41).unwrap(), 42);
        s.set_many(USERS, &[("text".into(), b"hello".to_vec())]).unwrap();
        assert!(s.increment(USERS, "text", 1).unwrap_err().to_string().contains("8-byte integer"));
    }

    #[test]
    fn compare_and_swap_lets_exactly_one_racer_win() {
        let (s, _dir) = storage();
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let s = s.clone();
                    scope.spawn(move || s.compare_and_swap(USERS, "email", None, format!("{i}").as_bytes()).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|s| *s == Swap::Done).count()
        });
        assert_eq!(winners, 1);
        let current = s.get(USERS, "email").unwrap();
        assert_eq!(s.compare_and_swap(USERS, "email", None, b"x").unwrap(), Swap::Changed(current));
    }

    #[test]
    fn batch_operations_cover_every_key() {
        let (s, _dir) = storage();
        s.set_many(USERS, &[("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]).unwrap();
        let got = s.get_many(USERS, &["a".into(), "missing".into(), "b".into()]).unwrap();
        assert_eq!(got, vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
        s.delete_many(USERS, &["a".into(), "b".into()]).unwrap();
        assert_eq!(s.get_many(USERS, &["a".into(), "b".into()]).unwrap(), vec![None, None]);
    }
}
