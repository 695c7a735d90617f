//! The embedded backend's write-ahead journal: what makes a group commit durable without
//! redb's durable commit. Each group's changes (the final value of every key it changed,
//! and what each namespace it touched now uses) go into one record, written and synced
//! (`fdatasync`) before the group's writers hear back; redb then commits the group without
//! syncing. Every so many records, a group commits durably in redb instead, and the journal
//! starts over from its beginning.
//!
//! A durable redb commit writes back every page the group changed (dozens for a few orders
//! and their indexes); a record is the changes themselves, written once, in order, into a
//! file whose blocks are already allocated. After a crash redb opens at its last durable
//! commit, and replaying the journal's records in order brings back every acknowledged
//! write: they hold values, not operations, so replaying a record that redb already holds
//! changes nothing.
//!
//! A record is a header (its number, its payload's length, a CRC-32 of both and of the
//! payload) and its changes. Recovery reads records from the start while each is whole and
//! numbered one after the one before: a record cut by the crash (never acknowledged) ends
//! the journal, and so do the older records a restart left after the newest ones.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// A record's number (8 bytes), its payload's length (4) and their CRC-32 with the payload's (4).
const HEADER: usize = 16;

/// Past this many bytes of records, the next group commits durably in redb and the journal
/// starts over; the file is this long from its start, so appending allocates no blocks.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// Past this many records, too: the pages that redb frees are reused only after a durable
/// commit, so the database file would otherwise grow with many small writes.
const CHECKPOINT_RECORDS: u64 = 1024;

const SET: u8 = 1;
const DELETE: u8 = 2;
const USAGE: u8 = 3;

/// One change a record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// The key now holds this value (None: it was deleted).
    Entry { namespace: String, bucket: String, key: String, value: Option<Vec<u8>> },
    /// The namespace now uses this many keys and bytes.
    Usage { namespace: String, keys: u64, bytes: u64 },
}

/// The journal file and where its next record goes.
pub(super) struct Journal {
    file: File,
    /// Where the next record goes.
    at: u64,
    /// The number of the record written last.
    number: u64,
    /// Records written since the last durable commit.
    records: u64,
    /// The record being built: header space, then its changes.
    record: Vec<u8>,
}

impl Journal {
    /// Opens (or creates, readable by this user only) the journal at `path`, and returns the
    /// changes of its records in order. Nothing may be appended until they are stored
    /// durably and [`Journal::clear`] has emptied it.
    pub(super) fn open(path: &Path) -> io::Result<(Self, Vec<Change>)> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        let mut journal = Self { file, at: 0, number: 0, records: 0, record: Vec::new() };
        let changes = journal.recover()?;
        Ok((journal, changes))
    }

    /// The changes of every record a crash or a failed database left, in order.
    pub(super) fn recover(&mut self) -> io::Result<Vec<Change>> {
        let mut bytes = vec![0; self.file.metadata()?.len() as usize];
        self.file.read_exact_at(&mut bytes, 0)?;
        let mut changes = Vec::new();
        let (mut at, mut expected) = (0, None);
        while let Some((number, payload)) = whole_record(&bytes[at..]) {
            if expected.is_some_and(|n| n != number) {
                break;
            }
            decode(payload, &mut changes).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("journal record {number} is malformed"))
            })?;
            (at, expected) = (at + HEADER + payload.len(), Some(number + 1));
        }
        Ok(changes)
    }

    /// Empties the journal once everything it held is stored durably, and allocates its
    /// blocks again (zeros, which end recovery), so that appending changes no metadata.
    pub(super) fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all_at(&vec![0; CHECKPOINT_BYTES as usize], 0)?;
        self.file.sync_all()?;
        (self.at, self.records) = (0, 0);
        Ok(())
    }

    /// Whether the next group should commit durably in redb instead of being recorded here.
    pub(super) fn due(&self) -> bool {
        self.at >= CHECKPOINT_BYTES || self.records >= CHECKPOINT_RECORDS
    }

    /// After a durable commit holding everything recorded: the next record goes to the
    /// start. The records after it are older, and recovery stops at the first of them.
    pub(super) fn restart(&mut self) {
        (self.at, self.records) = (0, 0);
    }

    /// Starts the next record.
    pub(super) fn begin(&mut self) {
        self.record.clear();
        self.record.resize(HEADER, 0);
    }

    /// Records that `key` now holds `value` (None: deleted).
    pub(super) fn entry(&mut self, namespace: &str, bucket: &str, key: &str, value: Option<&[u8]>) {
        self.record.push(if value.is_some() { SET } else { DELETE });
        for text in [namespace, bucket, key] {
            put_bytes(&mut self.record, text.as_bytes());
        }
        if let Some(value) = value {
            put_bytes(&mut self.record, value);
        }
    }

    /// Records what `namespace` now uses.
    pub(super) fn usage(&mut self, namespace: &str, keys: u64, bytes: u64) {
        self.record.push(USAGE);
        put_bytes(&mut self.record, namespace.as_bytes());
        self.record.extend_from_slice(&keys.to_le_bytes());
        self.record.extend_from_slice(&bytes.to_le_bytes());
    }

    /// Whether the record begun holds no change.
    pub(super) fn is_empty(&self) -> bool {
        self.record.len() <= HEADER
    }

    /// Writes the record begun and returns once the disk holds it. If that fails, the record
    /// is made unreadable as far as the disk allows, and the next one goes in its place.
    pub(super) fn append(&mut self) -> io::Result<()> {
        let number = self.number + 1;
        let length = u32::try_from(self.record.len() - HEADER)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a journal record over 4 GiB"))?;
        let crc = checksum(number, length, &self.record[HEADER..]);
        self.record[..8].copy_from_slice(&number.to_le_bytes());
        self.record[8..12].copy_from_slice(&length.to_le_bytes());
        self.record[12..16].copy_from_slice(&crc.to_le_bytes());
        let written = self.file.write_all_at(&self.record, self.at).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.erase(self.at);
            return Err(e);
        }
        (self.number, self.at, self.records) = (number, self.at + self.record.len() as u64, self.records + 1);
        Ok(())
    }

    /// Zeros the header at `at` and syncs, as far as the disk allows.
    fn erase(&self, at: u64) {
        if let Err(e) = self.file.write_all_at(&[0; HEADER], at).and_then(|()| self.file.sync_data()) {
            tracing::error!(error = %e, "cannot erase a journal record whose group failed");
        }
    }
}

fn checksum(number: u64, length: u32, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&number.to_le_bytes());
    crc.update(&length.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

/// The number and payload of the record at the start of `bytes`, if it is whole.
fn whole_record(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let header = bytes.get(..HEADER)?;
    let number = u64::from_le_bytes(header[..8].try_into().ok()?);
    let length = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let crc = u32::from_le_bytes(header[12..16].try_into().ok()?);
    let payload = bytes.get(HEADER..HEADER + length as usize)?;
    (number != 0 && checksum(number, length, payload) == crc).then_some((number, payload))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a payload's changes into `changes`; None if it is malformed.
fn decode(mut payload: &[u8], changes: &mut Vec<Change>) -> Option<()> {
    while let Some((&tag, rest)) = payload.split_first() {
        payload = rest;
        let namespace = text(&mut payload)?;
        let change = match tag {
            SET | DELETE => {
                let (bucket, key) = (text(&mut payload)?, text(&mut payload)?);
                let value = if tag == SET { Some(bytes(&mut payload)?.to_vec()) } else { None };
                Change::Entry { namespace, bucket, key, value }
            }
            USAGE => Change::Usage { namespace, keys: number(&mut payload)?, bytes: number(&mut payload)? },
            _ => return None,
        };
        changes.push(change);
    }
    Some(())
}

fn bytes<'a>(payload: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let bytes = payload.get(4..4 + length)?;
    *payload = &payload[4 + length..];
    Some(bytes)
}

fn text(payload: &mut &[u8]) -> Option<String> {
    String::from_utf8(bytes(payload)?.to_vec()).ok()
}

fn number(payload: &mut &[u8]) -> Option<u64> {
    let value = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    *payload = &payload[8..];
    Some(value)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
