//! The durable backend behind `wasi:keyvalue`: one redb file in the data folder. Every key
//! lives under (namespace, bucket), the namespace being the component's name, so components
//! never see each other's data. Writes are durable when they return: each waits for the fsync
//! of a transaction holding it. Writes that arrive while a commit is under way are applied
//! together in the next transaction (group commit), so concurrent writers share one fsync
//! instead of queueing for one each.

use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// (namespace, bucket, key) -> value.
const ENTRIES: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("entries");

type Table<'txn> = redb::Table<'txn, (&'static str, &'static str, &'static str), &'static [u8]>;

/// Keys returned by one `list-keys` page: enough to page through large buckets without
/// building huge lists in one call.
pub(super) const LIST_PAGE: usize = 1000;

#[derive(Debug, Clone, thiserror::Error)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// Someone changed the value since it was read; this is its value now.
    Changed(Option<Vec<u8>>),
}

/// The database, shared by every Store.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
    group: Arc<GroupCommit>,
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
        Ok(Self { db: Arc::new(db), group: Arc::default() })
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

    pub fn set_many(&self, scope: Scope, entries: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        self.write(scope, Change::Set(entries)).map(|_| ())
    }

    pub fn delete_many(&self, scope: Scope, keys: Vec<String>) -> Result<(), StorageError> {
        self.write(scope, Change::Delete(keys)).map(|_| ())
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
    pub fn increment(&self, scope: Scope, key: String, delta: i64) -> Result<i64, StorageError> {
        match self.write(scope, Change::Increment { key, delta })? {
            Written::Count(count) => Ok(count),
            other => unreachable!("an increment answered {other:?}"),
        }
    }

    /// Writes `value` only if the key still holds `expected`; atomic against every other write.
    pub fn compare_and_swap(
        &self,
        scope: Scope,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<Swap, StorageError> {
        match self.write(scope, Change::CompareAndSwap { key, expected, value })? {
            Written::Swap(swap) => Ok(swap),
            other => unreachable!("a compare-and-swap answered {other:?}"),
        }
    }

    /// Queues one write and returns once a committed transaction holds it. The first writer to
    /// find no commit under way commits everything queued so far, its own write included;
    /// writes queued meanwhile go together into the next commit.
    fn write(&self, scope: Scope, change: Change) -> Result<Written, StorageError> {
        let (reply, outcome) = sync_channel(1);
        let write = Write { namespace: scope.namespace.to_string(), bucket: scope.bucket.to_string(), change };
        self.group.queue.lock().unwrap_or_else(PoisonError::into_inner).push((write, reply));
        let _committing = self.group.commit.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(result) = outcome.try_recv() {
            return result; // the previous commit held it
        }
        let batch = std::mem::take(&mut *self.group.queue.lock().unwrap_or_else(PoisonError::into_inner));
        let (writes, replies): (Vec<Write>, Vec<Reply>) = batch.into_iter().unzip();
        let results = match self.commit(writes) {
            Ok(results) => results,
            Err(e) => replies.iter().map(|_| Err(e.clone())).collect(),
        };
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
        outcome.try_recv().unwrap_or_else(|_| Err(StorageError("the write was lost before its commit".into())))
    }

    /// Applies `writes` in order in one durable transaction. A write refused on its own (an
    /// increment of a non-integer) changes nothing and fails alone; a failure of the database
    /// fails them all, and nothing is written.
    fn commit(&self, writes: Vec<Write>) -> Result<Vec<Result<Written, StorageError>>, StorageError> {
        let txn = self.db.begin_write()?;
        let results = {
            let mut table = txn.open_table(ENTRIES)?;
            writes.iter().map(|write| write.apply(&mut table)).collect::<Result<Vec<_>, _>>()?
        };
        txn.commit()?;
        Ok(results)
    }
}

/// Where a queued write's outcome goes once its group has committed.
type Reply = SyncSender<Result<Written, StorageError>>;

/// Writers waiting for a commit, and the lock held by whoever is committing.
#[derive(Default)]
struct GroupCommit {
    queue: Mutex<Vec<(Write, Reply)>>,
    commit: Mutex<()>,
}

/// One queued write, owned, so that whichever writer commits the group can apply it.
struct Write {
    namespace: String,
    bucket: String,
    change: Change,
}

enum Change {
    Set(Vec<(String, Vec<u8>)>),
    Delete(Vec<String>),
    Increment { key: String, delta: i64 },
    CompareAndSwap { key: String, expected: Option<Vec<u8>>, value: Vec<u8> },
}

#[derive(Debug)]
enum Written {
    Nothing,
    Count(i64),
    Swap(Swap),
}

impl Write {
    /// The outer error is the database's (the whole group fails); the inner one this write's.
    fn apply(&self, table: &mut Table) -> Result<Result<Written, StorageError>, StorageError> {
        let (namespace, bucket) = (self.namespace.as_str(), self.bucket.as_str());
        match &self.change {
            Change::Set(entries) => {
                for (key, value) in entries {
                    table.insert((namespace, bucket, key.as_str()), value.as_slice())?;
                }
                Ok(Ok(Written::Nothing))
            }
            Change::Delete(keys) => {
                for key in keys {
                    table.remove((namespace, bucket, key.as_str()))?;
                }
                Ok(Ok(Written::Nothing))
            }
            Change::Increment { key, delta } => {
                let current = match table.get((namespace, bucket, key.as_str()))? {
                    None => 0,
                    Some(v) => match <[u8; 8]>::try_from(v.value()) {
                        Ok(bytes) => i64::from_le_bytes(bytes),
                        Err(_) => {
                            let message = format!("key {key:?} does not hold an 8-byte integer, cannot increment it");
                            return Ok(Err(StorageError(message)));
                        }
                    },
                };
                let Some(next) = current.checked_add(*delta) else {
                    return Ok(Err(StorageError(format!("incrementing key {key:?} would overflow"))));
                };
                table.insert((namespace, bucket, key.as_str()), next.to_le_bytes().as_slice())?;
                Ok(Ok(Written::Count(next)))
            }
            Change::CompareAndSwap { key, expected, value } => {
                let current = table.get((namespace, bucket, key.as_str()))?.map(|v| v.value().to_vec());
                if current != *expected {
                    return Ok(Ok(Written::Swap(Swap::Changed(current))));
                }
                table.insert((namespace, bucket, key.as_str()), value.as_slice())?;
                Ok(Ok(Written::Swap(Swap::Done)))
            }
        }
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
        s.set_many(USERS, vec![("k".into(), b"users".to_vec())]).unwrap();
        assert_eq!(s.get(ORDERS, "k").unwrap(), None);
        assert_eq!(s.list_keys(ORDERS, None).unwrap().0, Vec::<String>::new());
        assert_eq!(s.get(USERS, "k").unwrap(), Some(b"users".to_vec()));
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        Storage::open(&path).unwrap().set_many(USERS, vec![("k".into(), b"v".to_vec())]).unwrap();
        assert_eq!(Storage::open(&path).unwrap().get(USERS, "k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn list_keys_pages_with_a_cursor() {
        let (s, _dir) = storage();
        let entries: Vec<_> = (0..LIST_PAGE + 5).map(|i| (format!("key{i:05}"), vec![])).collect();
        s.set_many(USERS, entries).unwrap();
        s.set_many(ORDERS, vec![("zzz".into(), vec![])]).unwrap();
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
        assert_eq!(s.increment(USERS, "n".into(), 1).unwrap(), 1);
        assert_eq!(s.increment(USERS, "n".into(), 41).unwrap(), 42);
        s.set_many(USERS, vec![("text".into(), b"hello".to_vec())]).unwrap();
        assert!(s.increment(USERS, "text".into(), 1).unwrap_err().to_string().contains("8-byte integer"));
    }

    #[test]
    fn compare_and_swap_lets_exactly_one_racer_win() {
        let (s, _dir) = storage();
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let s = s.clone();
                    scope.spawn(move || {
                        s.compare_and_swap(USERS, "email".into(), None, format!("{i}").into_bytes()).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|s| *s == Swap::Done).count()
        });
        assert_eq!(winners, 1);
        let current = s.get(USERS, "email").unwrap();
        assert_eq!(s.compare_and_swap(USERS, "email".into(), None, b"x".to_vec()).unwrap(), Swap::Changed(current));
    }

    #[test]
    fn batch_operations_cover_every_key() {
        let (s, _dir) = storage();
        s.set_many(USERS, vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]).unwrap();
        let got = s.get_many(USERS, &["a".into(), "missing".into(), "b".into()]).unwrap();
        assert_eq!(got, vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
        s.delete_many(USERS, vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(s.get_many(USERS, &["a".into(), "b".into()]).unwrap(), vec![None, None]);
    }
    #[test]
    fn concurrent_increments_each_get_their_own_value() {
        let (s, _dir) = storage();
        let mut seen: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let s = s.clone();
                    scope.spawn(move || (0..20).map(|_| s.increment(USERS, "n".into(), 1).unwrap()).collect::<Vec<_>>())
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        seen.sort_unstable();
        assert_eq!(seen, (1..=320).collect::<Vec<i64>>(), "no increment lost or handed out twice");
        assert_eq!(s.get(USERS, "n").unwrap(), Some(320i64.to_le_bytes().to_vec()));
    }

    #[test]
    fn a_refused_write_in_a_group_fails_alone() {
        let (s, _dir) = storage();
        s.set_many(USERS, vec![("text".into(), b"hello".to_vec())]).unwrap();
        let write = |change| Write { namespace: USERS.namespace.into(), bucket: USERS.bucket.into(), change };
        let results = s
            .commit(vec![
                write(Change::Set(vec![("a".into(), b"1".to_vec())])),
                write(Change::Increment { key: "text".into(), delta: 1 }),
                write(Change::Set(vec![("b".into(), b"2".to_vec())])),
            ])
            .unwrap();
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(results[1].as_ref().unwrap_err().to_string().contains("8-byte integer"));
        assert_eq!(
            s.get_many(USERS, &["a".into(), "b".into()]).unwrap(),
            vec![Some(b"1".to_vec()), Some(b"2".to_vec())]
        );
        assert_eq!(s.get(USERS, "text").unwrap(), Some(b"hello".to_vec()));
    }
}
