//! The writes a group commit applies, one at a time. Every write is a list of operations
//! (set, delete, increment, expect) applied all or none: `wasi:keyvalue`'s single writes are
//! lists of one, a compare-and-swap is an expect and a set, `trellis:keyvalue/ordered.write`
//! is any list. Each write stays within its component's storage quota: the size of a key and
//! of a value, how many keys and how many bytes (keys and values together) it may keep. What
//! each component uses is kept in its own table and changed in the transaction that changes
//! the data, so it is exact after any crash.

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition};

use super::entry_key::EntryKey;
use super::error::StorageError;
use super::journal::Journal;
use super::pending::{Layers, Pending, Seen};
use super::quota::Quota;

/// (namespace, bucket, key) -> value.
pub(super) const ENTRIES: TableDefinition<EntryKey, &[u8]> = TableDefinition::new("kv");

/// namespace -> (keys, bytes).
pub(super) const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

pub(super) type Entries<'txn> = redb::Table<'txn, EntryKey, &'static [u8]>;
pub(super) type StoredEntries = redb::ReadOnlyTable<EntryKey, &'static [u8]>;
type UsageTable<'txn> = redb::Table<'txn, &'static str, (u64, u64)>;
pub(super) type StoredUsage = redb::ReadOnlyTable<&'static str, (u64, u64)>;

/// Where one bucket of one component lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) bucket: &'a str,
    pub(crate) quota: Quota,
}

/// One operation of a write.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(String, Vec<u8>),
    Delete(String),
    /// Adds to the 8-byte little-endian integer at the key (absent is 0).
    Increment(String, i64),
    /// The write happens only if the key holds exactly this (None: absent).
    Expect(String, Option<Vec<u8>>),
    /// Appends to a log: adds 1 to the integer at `counter`, then sets the key `prefix`
    /// followed by the new count (20 digits, so keys sort as numbers) to the value; the count
    /// is reported as an increment's is. One committer numbers appends in commit order, so a
    /// reader never sees a number while a smaller one is still to come.
    Append {
        counter: String,
        prefix: String,
        value: Vec<u8>,
    },
}

/// The count an increment by `delta` leaves at `key`, which holds `current`: an 8-byte
/// little-endian integer, absent being 0.
pub(super) fn incremented(key: &str, current: Option<&[u8]>, delta: i64) -> Result<i64, StorageError> {
    let current = match current.map(<[u8; 8]>::try_from) {
        None => 0,
        Some(Ok(bytes)) => i64::from_le_bytes(bytes),
        Some(Err(_)) => {
            let message = format!("key {key:?} does not hold an 8-byte integer, cannot increment it");
            return Err(StorageError::Refused(message));
        }
    };
    current.checked_add(delta).ok_or_else(|| StorageError::Refused(format!("incrementing key {key:?} would overflow")))
}

/// The key [`Op::Append`] writes for the count `n`.
pub(crate) fn log_key(prefix: &str, n: i64) -> String {
    format!("{prefix}{n:020}")
}

/// One queued write, owned, so that the committer can apply it.
pub(super) struct Write {
    pub(super) namespace: String,
    pub(super) bucket: String,
    pub(super) quota: Quota,
    pub(super) ops: Vec<Op>,
    /// A write in another scope that happens with this one or not at all (messages sent with
    /// a change, see [`Linked`]).
    pub(super) linked: Option<Box<Write>>,
}

/// A write that must happen together with another one, in a scope of the host's own: it is
/// applied after it, in the same transaction, and its increments' and appends' counts follow
/// the other's. It must not fail on its own (no quota, no expect): if it does, the whole
/// transaction is abandoned, so neither is stored.
#[derive(Debug)]
pub(crate) struct Linked {
    pub(crate) scope: Scope<'static>,
    pub(crate) ops: Vec<Op>,
}

impl Write {
    pub(super) fn new(scope: Scope, ops: Vec<Op>) -> Self {
        let (namespace, bucket) = (scope.namespace.to_string(), scope.bucket.to_string());
        Self { namespace, bucket, quota: scope.quota, ops, linked: None }
    }

    pub(super) fn with(mut self, linked: Linked) -> Self {
        self.linked = Some(Box::new(Write::new(linked.scope, linked.ops)));
        self
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    /// Everything, with the new value of each increment in order.
    Done(Vec<i64>),
    /// Nothing: an expect did not hold; the key and what it holds.
    Changed(String, Option<Vec<u8>>),
}

/// Keys and bytes per namespace within one transaction: read once, written back at its end.
#[derive(Default, Clone)]
pub(super) struct Usage {
    namespaces: HashMap<String, (u64, u64)>,
}

impl Usage {
    /// What `namespace` uses: as this group left it, else as the `recent` groups did (the
    /// newer first), else as stored.
    fn of(&mut self, recent: [&Usage; 2], table: &StoredUsage, namespace: &str) -> Result<(u64, u64), StorageError> {
        if let Some(used) = self.namespaces.get(namespace) {
            return Ok(*used);
        }
        let used = match recent.iter().find_map(|usage| usage.namespaces.get(namespace)) {
            Some(used) => *used,
            None => table.get(namespace)?.map(|v| v.value()).unwrap_or((0, 0)),
        };
        self.namespaces.insert(namespace.to_string(), used);
        Ok(used)
    }

    /// Puts what each namespace now uses into the journal's record.
    pub(super) fn record(&self, journal: &mut Journal) {
        for (namespace, (keys, bytes)) in &self.namespaces {
            journal.usage(namespace, *keys, *bytes);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    pub(super) fn set(&mut self, namespace: String, used: (u64, u64)) {
        self.namespaces.insert(namespace, used);
    }

    /// Takes in what a later group left.
    pub(super) fn absorb(&mut self, later: Usage) {
        self.namespaces.extend(later.namespaces);
    }

    pub(super) fn save(&self, table: &mut UsageTable) -> Result<(), StorageError> {
        for (namespace, used) in &self.namespaces {
            table.insert(namespace.as_str(), *used)?;
        }
        Ok(())
    }
}

/// What a write reads and changes: the entries as last stored in redb, what the groups since
/// changed (`recent`), what the writes of this group before it changed (`pending`), and what
/// each namespace uses, the same three ways.
pub(super) struct Tables<'a> {
    pub(super) entries: &'a StoredEntries,
    pub(super) recent: Layers<'a>,
    pub(super) pending: &'a mut Pending,
    pub(super) usage_table: &'a StoredUsage,
    pub(super) recent_usage: [&'a Usage; 2],
    pub(super) usage: &'a mut Usage,
}

impl Tables<'_> {
    /// `read` of the value at `key` as the writes before this one left it (None: absent).
    fn read<R>(
        &self,
        scope: (&str, &str),
        key: &str,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StorageError> {
        let (namespace, bucket) = scope;
        if let Seen::Changed(value) = self.pending.get(namespace, bucket, key) {
            return Ok(read(value));
        }
        match self.recent.get(namespace, bucket, key) {
            Seen::Changed(value) => Ok(read(value)),
            Seen::Untouched => Ok(read(self.entries.get((namespace, bucket, key))?.as_ref().map(|v| v.value()))),
        }
    }
}

/// A key one write touches: its length when the write began (None: absent), read once, and
/// what the ops so far made of it (None: untouched; `Some(None)`: deleted).
struct Slot {
    stored_len: Option<usize>,
    changed: Option<Option<Vec<u8>>>,
}

type Slots<'w> = HashMap<&'w str, Slot>;

impl Write {
    fn scope(&self) -> (&str, &str) {
        (&self.namespace, &self.bucket)
    }

    /// The outer error is the database's (the whole group fails); the inner one this write's,
    /// which then changes nothing.
    pub(super) fn apply(&self, t: &mut Tables) -> Result<Result<Written, StorageError>, StorageError> {
        let written = self.apply_own(t)?;
        let Some(linked) = &self.linked else { return Ok(written) };
        let Ok(Written::Done(mut counts)) = written else { return Ok(written) };
        match linked.apply_own(t)? {
            Ok(Written::Done(more)) => {
                counts.extend(more);
                Ok(Ok(Written::Done(counts)))
            }
            failed => {
                let why = format!("a write linked to another failed, so neither is stored: {failed:?}");
                Err(StorageError::Database(why))
            }
        }
    }

    fn apply_own(&self, t: &mut Tables) -> Result<Result<Written, StorageError>, StorageError> {
        let mut slots = Slots::new();
        let mut counts = Vec::new();
        let mut appended = Vec::new();
        for op in &self.ops {
            match op {
                Op::Append { counter, prefix, value } => {
                    let next = match self.add(t, &mut slots, counter, 1)? {
                        Ok(next) => next,
                        Err(refused) => return Ok(Err(refused)),
                    };
                    let key = log_key(prefix, next);
                    if let Err(over) = self.quota.check_entry(&key, value.len()) {
                        return Ok(Err(over));
                    }
                    appended.push((key, value.as_slice()));
                    counts.push(next);
                }
                Op::Set(key, value) => {
                    if let Err(over) = self.quota.check_entry(key, value.len()) {
                        return Ok(Err(over));
                    }
                    self.slot(t, &mut slots, key)?.changed = Some(Some(value.clone()));
                }
                Op::Delete(key) => self.slot(t, &mut slots, key)?.changed = Some(None),
                Op::Increment(key, delta) => match self.add(t, &mut slots, key, *delta)? {
                    Ok(next) => counts.push(next),
                    Err(refused) => return Ok(Err(refused)),
                },
                Op::Expect(key, expected) => {
                    let current = self.current(t, &mut slots, key)?;
                    if current != *expected {
                        return Ok(Ok(Written::Changed(key.clone(), current)));
                    }
                }
            }
        }
        if let Err(over) = self.count(t, &slots, &appended)? {
            return Ok(Err(over));
        }
        let (namespace, bucket) = self.scope();
        for (key, value) in appended {
            t.pending.put(namespace, bucket, key, Some(value.to_vec()));
        }
        for (key, slot) in slots {
            if let Some(value) = slot.changed {
                t.pending.put(namespace, bucket, key.to_string(), value);
            }
        }
        Ok(Ok(Written::Done(counts)))
    }

    /// Adds `delta` to the integer at `key` (8 bytes little-endian, absent is 0): its new
    /// value, or why it cannot be added to.
    fn add<'w>(
        &self,
        t: &Tables,
        slots: &mut Slots<'w>,
        key: &'w str,
        delta: i64,
    ) -> Result<Result<i64, StorageError>, StorageError> {
        let next = match incremented(key, self.current(t, slots, key)?.as_deref(), delta) {
            Ok(next) => next,
            Err(refused) => return Ok(Err(refused)),
        };
        self.slot(t, slots, key)?.changed = Some(Some(next.to_le_bytes().to_vec()));
        Ok(Ok(next))
    }

    /// The slot of `key`, made (with the stored length) on its first touch.
    fn slot<'s, 'w>(&self, t: &Tables, slots: &'s mut Slots<'w>, key: &'w str) -> Result<&'s mut Slot, StorageError> {
        if !slots.contains_key(key) {
            let stored_len = t.read(self.scope(), key, |value| value.map(<[u8]>::len))?;
            slots.insert(key, Slot { stored_len, changed: None });
        }
        Ok(slots.get_mut(key).expect("just made"))
    }

    /// The value of `key` after the ops so far.
    fn current<'w>(&self, t: &Tables, slots: &mut Slots<'w>, key: &'w str) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(Slot { changed: Some(value), .. }) = slots.get(key) {
            return Ok(value.clone());
        }
        let stored = t.read(self.scope(), key, |value| value.map(<[u8]>::to_vec))?;
        slots.entry(key).or_insert(Slot { stored_len: stored.as_ref().map(Vec::len), changed: None });
        Ok(stored)
    }

    /// Whether the write's final state fits the quota; if it does, what it uses is counted.
    /// A write that shrinks what is used is always allowed, even over a lowered quota.
    /// Appended entries are new keys.
    fn count(
        &self,
        t: &mut Tables,
        slots: &Slots,
        appended: &[(String, &[u8])],
    ) -> Result<Result<(), StorageError>, StorageError> {
        let before = t.usage.of(t.recent_usage, t.usage_table, &self.namespace)?;
        let (mut keys, mut bytes) = before;
        for (key, value) in appended {
            keys += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        for (key, slot) in slots {
            let Some(value) = &slot.changed else { continue };
            if let Some(old) = slot.stored_len {
                keys = keys.saturating_sub(1);
                bytes = bytes.saturating_sub((key.len() + old) as u64);
            }
            if let Some(value) = value {
                keys += 1;
                bytes += (key.len() + value.len()) as u64;
            }
        }
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
pub(super) fn recount(entries: &impl ReadableTable<EntryKey, &'static [u8]>) -> Result<Usage, StorageError> {
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
