//! The entries table's key, (namespace, bucket, key), and the move of a database written
//! before it existed.
//!
//! redb compares a `(&str, &str, &str)` key by decoding both sides into strings, checking
//! their UTF-8 every time: a B-tree search does that dozens of times per lookup, and it was
//! the largest single cost of a write in the profile (`bench/results/PROFILE.md`). [`EntryKey`]
//! is stored exactly as that tuple is (redb's own encoding, through `(&[u8], &[u8], &[u8])`)
//! and compares as bytes, which orders UTF-8 text as `str` does; its text is checked only when
//! a key is read out. A different key type is a different table to redb, so a database from
//! before is moved over once, when it is opened.

use std::cmp::Ordering;

use redb::{Database, Key, ReadableDatabase, ReadableTableMetadata, TableDefinition, TypeName, Value};

use super::error::StorageError;

type Bytes3 = (&'static [u8], &'static [u8], &'static [u8]);

/// (namespace, bucket, key): three strings, compared as bytes.
#[derive(Debug)]
pub(super) struct EntryKey;

impl Value for EntryKey {
    type SelfType<'a> = (&'a str, &'a str, &'a str);
    type AsBytes<'a> = Vec<u8>;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> Self::SelfType<'a>
    where
        Self: 'a,
    {
        let (namespace, bucket, key) = <Bytes3 as Value>::from_bytes(data);
        // Only ever written from strings; an unreadable part reads as empty rather than panic.
        let text = |part| std::str::from_utf8(part).unwrap_or_default();
        (text(namespace), text(bucket), text(key))
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a Self::SelfType<'b>) -> Vec<u8>
    where
        Self: 'b,
    {
        let (namespace, bucket, key) = *value;
        <Bytes3 as Value>::as_bytes(&(namespace.as_bytes(), bucket.as_bytes(), key.as_bytes()))
    }

    fn type_name() -> TypeName {
        TypeName::new("trellis::EntryKey")
    }
}

impl Key for EntryKey {
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        <Bytes3 as Key>::compare(data1, data2)
    }
}

/// The entries table as it was before [`EntryKey`].
const STR_ENTRIES: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("entries");

/// Entries moved per transaction, so a large database never needs one huge transaction.
const MOVE_BATCH: usize = 50_000;

/// Moves every entry of the table written before [`EntryKey`] into `entries`, in batches,
/// each its own transaction (a crash leaves every entry in exactly one of the two tables, and
/// the next start continues); then drops the old table. Usage counts are unchanged.
pub(super) fn move_str_entries(db: &Database, entries: TableDefinition<EntryKey, &[u8]>) -> Result<(), StorageError> {
    match db.begin_read()?.open_table(STR_ENTRIES) {
        Ok(_) => {}
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!("storage: moving entries to byte-compared keys (once)");
    let mut moved = 0usize;
    loop {
        let txn = db.begin_write()?;
        let done = {
            let mut old = txn.open_table(STR_ENTRIES)?;
            let mut new = txn.open_table(entries)?;
            for _ in 0..MOVE_BATCH {
                let Some((k, v)) = old.pop_first()? else { break };
                new.insert(k.value(), v.value())?;
                moved += 1;
            }
            old.is_empty()?
        };
        if done {
            txn.delete_table(STR_ENTRIES)?;
        }
        txn.commit()?;
        if done {
            tracing::info!(entries = moved, "storage moved to byte-compared keys");
            return Ok(());
        }
    }
}
