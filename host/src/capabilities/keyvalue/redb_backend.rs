//! The durable backend behind `wasi:keyvalue`: one redb file in the data folder and its
//! journal beside it, readable only by the host's user. Every key lives under (namespace,
//! bucket), the namespace being the component's name, so components never see each other's
//! data. Writes are durable when they return. Writes that arrive while a group is being
//! committed are applied together in the next group (group commit, `group`), which one
//! synced journal record makes durable (`durable`). A read sees every write acknowledged
//! before it began: it looks at what the groups since the last durable commit to redb
//! changed, then at redb.

use std::path::Path;
use std::sync::Arc;

use redb::{AccessGuard, Database, ReadableDatabase};

use super::changes::{ENTRIES, Linked, Op, Scope, Write, Written};
use super::durable::Inner;
use super::entry_key::EntryKey;
use super::error::StorageError;
use super::group;
use super::pending::Seen;

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
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

impl Storage {
    /// Opens (or creates, readable only by this user) the database at `path`, with a page
    /// cache of at most `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StorageError> {
        Ok(Self { inner: Inner::open(path, cache_bytes)? })
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
        if let Seen::Changed(value) = self.inner.unstored().entries().get(scope.namespace, scope.bucket, key) {
            return Ok(value.map(<[u8]>::to_vec));
        }
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        Ok(table.get((scope.namespace, scope.bucket, key))?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn get_many(&self, scope: Scope, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let unstored = self.inner.unstored();
        let recent = unstored.entries();
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let get = |key: &str| match recent.get(scope.namespace, scope.bucket, key) {
            Seen::Changed(value) => Ok(value.map(<[u8]>::to_vec)),
            Seen::Untouched => Ok(table.get((scope.namespace, scope.bucket, key))?.map(|v| v.value().to_vec())),
        };
        keys.iter().map(|key| get(key)).collect()
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
        let unstored = self.inner.unstored();
        let txn = self.db()?.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let from = after.filter(|a| *a > prefix).unwrap_or(prefix);
        let mut changed = unstored.entries().range(scope.namespace, scope.bucket, from).peekable();
        let mut stored = table.range((scope.namespace, scope.bucket, from)..)?;
        let mut head = next_in(&mut stored, scope)?;
        let mut skipped = 0;
        loop {
            // The next key of both in order; where both hold it, the recent change wins.
            let on_disk = head.as_ref().map(|(k, v)| (k.value().2, v.value()));
            let recent_first = match (on_disk, changed.peek()) {
                (None, None) => break,
                (Some((stored_key, _)), Some((changed_key, _))) => changed_key <= &stored_key,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            let (key, value, both) = match (recent_first, on_disk) {
                (true, _) => {
                    let (key, value) = changed.next().expect("peeked");
                    (key, value, on_disk.is_some_and(|(stored_key, _)| stored_key == key))
                }
                (false, Some((key, value))) => (key, Some(value), true),
                (false, None) => unreachable!("chosen only when stored"),
            };
            let go_on = match value {
                None => true, // deleted since the last durable commit
                Some(_) if Some(key) == after => true,
                Some(_) if !key.starts_with(prefix) => false,
                Some(_) if skipped < skip => {
                    skipped += 1;
                    true
                }
                Some(value) => visit(key, value),
            };
            if both {
                head = next_in(&mut stored, scope)?;
            }
            if !go_on {
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

type Stored<'t> = (AccessGuard<'t, EntryKey>, AccessGuard<'t, &'static [u8]>);

/// The next stored entry of `scope`, if there is one.
fn next_in<'t>(
    range: &mut redb::Range<'t, EntryKey, &'static [u8]>,
    scope: Scope,
) -> Result<Option<Stored<'t>>, StorageError> {
    let Some(entry) = range.next() else { return Ok(None) };
    let (k, v) = entry?;
    let (namespace, bucket, _) = k.value();
    Ok((namespace == scope.namespace && bucket == scope.bucket).then_some((k, v)))
}

#[cfg(test)]
#[path = "redb_tests.rs"]
mod tests;
