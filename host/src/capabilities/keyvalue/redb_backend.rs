//! The durable backend behind `wasi:keyvalue`: one redb file in the data folder, readable
//! only by the host's user. Every key lives under (namespace, bucket), the namespace being the
//! component's name, so components never see each other's data. Writes are durable when they
//! return: each waits for the fsync of a transaction holding it. Writes that arrive while a
//! commit is under way are applied together in the next transaction (group commit, `group`),
//! so concurrent writers share one fsync instead of queueing for one each.
//!
//! A commit that fails (a full disk, an I/O error) fails the writes it held and nothing else:
//! redb refuses every later transaction after an I/O error, so the database is closed and
//! opened again (redb repairs it to its last commit), at once and, while that fails, before
//! each later write. Storage works again as soon as the disk does, without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableError};

use super::changes::{ENTRIES, Linked, Op, Scope, Tables, USAGE, Usage, Write, Written, recount};
use super::entry_key;
use super::error::StorageError;
use super::group::{self, GroupCommit, Outcomes};
use super::pending::Pending;
use super::reserved::Sequences;

/// Keys returned by one `list-keys` page: enough to page through large buckets without
/// building huge lists in one call.
pub(super) const LIST_PAGE: usize = 1000;

/// The result of a compare-and-swap.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Swap {
    Done,
    /// Someone changed the value since it was read; this is its value now.
    Changed(Option<Vec<u8>>),
}

/// The database, shared by every Store.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    path: PathBuf,
    cache_bytes: usize,
    /// Empty while the database is being opened again after an I/O error.
    db: ArcSwapOption<Database>,
    group: GroupCommit,
    sequences: Sequences,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

/// How long reopening waits for reads still using the failed database.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

impl Storage {
    /// Opens (or creates, readable only by this user) the database at `path`, with a page
    /// cache of at most `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StorageError> {
        let db = open_database(path, cache_bytes)?;
        let (group, committer) = GroupCommit::new();
        let inner = Inner {
            path: path.to_path_buf(),
            cache_bytes,
            db: ArcSwapOption::from_pointee(db),
            group,
            sequences: Sequences::default(),
        };
        let inner = Arc::new(inner);
        committer
            .start(Arc::downgrade(&inner), Inner::commit)
            .map_err(|e| StorageError::Database(format!("cannot start the committer thread: {e}")))?;
        Ok(Self { inner })
    }

    /// The next number of the sequence at `key` if its reserved block has one left (no
    /// waiting), else `None`: then [`Storage::next_reserving`] it is, off the async threads.
    pub(crate) fn next_reserved(&self, scope: Scope, key: &str) -> Option<u64> {
        self.inner.sequences.take(scope, key)
    }

    /// The next number of the sequence at `key`, reserving a block durably when needed.
    pub(crate) fn next_reserving(&self, scope: Scope, key: &str) -> Result<u64, StorageError> {
        self.inner.sequences.next(scope, key, |n| self.increment(scope, key.to_string(), n))
    }

    /// Gives back the numbers sequences reserved and did not hand out (on a clean stop).
    pub fn release_sequences(&self) {
        self.inner.sequences.release(|scope, ops| self.write(scope, ops));
    }

    fn db(&self) -> Result<Arc<Database>, StorageError> {
        self.inner.db()
    }

    pub(crate) fn get(&self, scope: Scope, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        Ok(table.get((scope.namespace, scope.bucket, key))?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn get_many(&self, scope: Scope, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        keys.iter()
            .map(|key| Ok(table.get((scope.namespace, scope.bucket, key.as_str()))?.map(|v| v.value().to_vec())))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn set_many(&self, scope: Scope, entries: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        self.write(scope, entries.into_iter().map(|(k, v)| Op::Set(k, v)).collect()).map(|_| ())
    }

    #[cfg(test)]
    pub(crate) fn delete_many(&self, scope: Scope, keys: Vec<String>) -> Result<(), StorageError> {
        self.write(scope, keys.into_iter().map(Op::Delete).collect()).map(|_| ())
    }

    /// Up to [`LIST_PAGE`] keys after `cursor` (exclusive), in key order, and the cursor of
    /// the next page if there is one.
    pub(crate) fn list_keys(
        &self,
        scope: Scope,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), StorageError> {
        let (mut keys, mut more) = (Vec::new(), false);
        self.walk(scope, "", cursor, 0, |key, _| {
            more = keys.len() == LIST_PAGE;
            if !more {
                keys.push(key.to_string());
            }
            !more
        })?;
        let next = if more { keys.last().cloned() } else { None };
        Ok((keys, next))
    }

    /// Up to `limit` (at most [`LIST_PAGE`]) entries whose keys start with `prefix`, in key
    /// order, after `after` (exclusive) when given, once `skip` entries are passed over. It
    /// seeks to where it starts: its cost is what it skips and returns.
    pub(crate) fn scan(
        &self,
        scope: Scope,
        prefix: &str,
        after: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut found = Vec::new();
        self.walk(scope, prefix, after, skip, |key, value| {
            let room = found.len() < limit.min(LIST_PAGE);
            if room {
                found.push((key.to_string(), value.to_vec()));
            }
            room
        })?;
        Ok(found)
    }

    /// Shows `visit` each entry of `scope` whose key starts with `prefix`, in key order, after
    /// `after` (exclusive), once `skip` of them are passed, until it answers false.
    fn walk(
        &self,
        scope: Scope,
        prefix: &str,
        after: Option<&str>,
        skip: usize,
        mut visit: impl FnMut(&str, &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let from = after.filter(|a| *a > prefix).unwrap_or(prefix);
        let entries = table.range((scope.namespace, scope.bucket, from)..)?;
        for entry in entries.skip_while(|e| e.as_ref().is_ok_and(|(k, _)| Some(k.value().2) == after)).skip(skip) {
            let (k, v) = entry?;
            let (ns, bucket, key) = k.value();
            if ns != scope.namespace || bucket != scope.bucket || !key.starts_with(prefix) || !visit(key, v.value()) {
                break;
            }
        }
        Ok(())
    }

    /// Adds `delta` to the integer stored at `key` (8 bytes, little-endian; absent is 0).
    pub(crate) fn increment(&self, scope: Scope, key: String, delta: i64) -> Result<i64, StorageError> {
        match self.write(scope, vec![Op::Increment(key, delta)])? {
            Written::Done(counts) => Ok(counts[0]),
            other => unreachable!("an increment answered {other:?}"),
        }
    }

    #[cfg(test)]
    /// Writes `value` only if the key still holds `expected`; atomic against every other write.
    pub(crate) fn compare_and_swap(
        &self,
        scope: Scope,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<Swap, StorageError> {
        match self.write(scope, vec![Op::Expect(key.clone(), expected), Op::Set(key, value)])? {
            Written::Done(_) => Ok(Swap::Done),
            Written::Changed(_, now) => Ok(Swap::Changed(now)),
        }
    }

    /// Queues one write (its ops applied all or none) and returns once a committed transaction
    /// holds it: writes queued together share one commit (see `group`). Blocks the thread.
    pub(crate) fn write(&self, scope: Scope, ops: Vec<Op>) -> Result<Written, StorageError> {
        self.inner.group.submit(Write::new(scope, ops)).blocking_recv().unwrap_or_else(|_| Err(group::lost()))
    }

    /// [`Storage::write`] for async callers: waits without holding a thread.
    pub(crate) async fn write_async(&self, scope: Scope<'_>, ops: Vec<Op>) -> Result<Written, StorageError> {
        self.inner.group.submit(Write::new(scope, ops)).await.unwrap_or_else(|_| Err(group::lost()))
    }

    /// [`Storage::write_async`] with `linked` applied in the same transaction: both or
    /// neither. The counts of both follow each other, this write's first.
    pub(crate) async fn write_linked(
        &self,
        scope: Scope<'_>,
        ops: Vec<Op>,
        linked: Linked,
    ) -> Result<Written, StorageError> {
        let write = Write::new(scope, ops).with(linked);
        self.inner.group.submit(write).await.unwrap_or_else(|_| Err(group::lost()))
    }
}

impl Inner {
    fn db(&self) -> Result<Arc<Database>, StorageError> {
        self.db.load_full().ok_or_else(|| {
            StorageError::Database("the database is being reopened after an I/O error; retry shortly".into())
        })
    }

    /// Closes and opens the database again after an I/O error, once no read is using it.
    /// Called by the committer only.
    fn reopen(&self) -> Result<(), StorageError> {
        if let Some(old) = self.db.swap(None) {
            let waited = Instant::now();
            while Arc::strong_count(&old) > 1 && waited.elapsed() < REOPEN_WAIT {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let db = open_database(&self.path, self.cache_bytes)?;
        self.db.store(Some(Arc::new(db)));
        tracing::info!(path = %self.path.display(), "storage reopened after an I/O error");
        Ok(())
    }

    /// Applies `writes` in order in one durable transaction. A write refused on its own (an
    /// increment of a non-integer, a quota) changes nothing and fails alone; a failure of the
    /// database fails them all, nothing is written, and after an I/O error the database is
    /// opened again.
    fn commit(&self, writes: Vec<Write>) -> Outcomes {
        if self.db.load().is_none() {
            self.reopen()?;
        }
        let db = self.db()?;
        let committed = Self::commit_to(&db, &writes);
        if committed.is_err() && matches!(db.begin_write(), Err(redb::TransactionError::Storage(_))) {
            drop(db);
            if let Err(e) = self.reopen() {
                tracing::warn!(error = %e, "storage could not be reopened yet; the next write tries again");
            }
        }
        committed
    }

    fn commit_to(db: &Database, writes: &[Write]) -> Result<Vec<Result<Written, StorageError>>, StorageError> {
        let txn = db.begin_write()?;
        let results = {
            let mut entries = txn.open_table(ENTRIES)?;
            let mut usage_table = txn.open_table(USAGE)?;
            let (mut usage, mut pending) = (Usage::default(), Pending::default());
            let results = {
                let mut tables =
                    Tables { entries: &entries, pending: &mut pending, usage_table: &usage_table, usage: &mut usage };
                writes.iter().map(|write| write.apply(&mut tables)).collect::<Result<Vec<_>, _>>()?
            };
            pending.save(&mut entries)?;
            usage.save(&mut usage_table)?;
            results
        };
        txn.commit()?;
        Ok(results)
    }
}

/// Opens the database file, made readable by this user only, with the usage table present.
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, StorageError> {
    private_file(path).map_err(|e| StorageError::Database(format!("cannot create {}: {e}", path.display())))?;
    let db = Database::builder().set_cache_size(cache_bytes).create(path)?;
    entry_key::move_str_entries(&db, ENTRIES)?;
    let txn = db.begin_write()?;
    {
        let entries = txn.open_table(ENTRIES)?;
        let counted = match txn.open_table(USAGE) {
            Ok(table) => !table.is_empty()? || entries.is_empty()?,
            Err(TableError::TableDoesNotExist(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if !counted {
            recount(&entries)?.save(&mut txn.open_table(USAGE)?)?;
        }
    }
    txn.commit()?;
    Ok(db)
}

/// Creates `path` if missing, with mode 0600, and narrows it to 0600 if it exists.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
#[path = "redb_tests.rs"]
mod tests;
