//! The embedded backend's write-ahead journal: what makes a group commit durable without
//! redb's durable commit. Each group's changes (the final value of every key it changed,
//! and what each namespace it touched now uses) go into one record, written and synced
//! (`fdatasync`) before the group's writers hear back. redb stores them later, many groups
//! in one durable commit (`durable`).
//!
//! The journal is two files used in turn. Records go to the active one until it is due (a
//! few MiB or a few hundred records); then what it holds is stored in redb in the background
//! while records go to the other, which the durable commit before made free. After a crash
//! redb opens at its last durable commit, and replaying both files' records, the older file
//! first, brings back every acknowledged write: records hold values, not operations, so
//! replaying one that redb already holds changes nothing.
//!
//! A record is a header (its number, its payload's length, a CRC-32 of both and of the
//! payload) and its changes. Records are numbered across both files. Recovery reads a file's
//! records from its start while each is whole and numbered one after the one before: a
//! record cut by the crash (never acknowledged) ends it, and so do the older records left
//! behind the newest ones when a file was used again.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// A record's number (8 bytes), its payload's length (4) and their CRC-32 with the payload's (4).
const HEADER: usize = 16;

/// Past this many bytes of records a file is due; each file is this long from its start, so
/// appending allocates no blocks.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// Past this many records, too: memory holds what they changed until redb does.
const CHECKPOINT_RECORDS: u64 = 256;

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

/// The journal's two files, and the record being built.
pub(super) struct Journal {
    files: [File; 2],
    /// The file records go to.
    active: usize,
    /// The number of the record written last.
    number: u64,
    /// The record being built: header space, then its changes.
    record: Vec<u8>,
}

/// One journal file and where its next record goes.
struct File {
    file: std::fs::File,
    at: u64,
    records: u64,
}

impl Journal {
    /// Opens (or creates, readable by this user only) the journal's files `path`-a and
    /// `path`-b, and returns the changes of their records in order. Nothing may be appended
    /// until they are stored durably and [`Journal::clear`] has emptied both.
    pub(super) fn open(path: &Path) -> io::Result<(Self, Vec<Change>)> {
        let open = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let options = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).clone();
            options.open(name).map(|file| File { file, at: 0, records: 0 })
        };
        let mut journal = Self { files: [open("-a")?, open("-b")?], active: 0, number: 0, record: Vec::new() };
        let changes = journal.recover()?;
        Ok((journal, changes))
    }

    /// The changes of every record a crash or a failed database left, the older file first.
    pub(super) fn recover(&mut self) -> io::Result<Vec<Change>> {
        let mut chains = [self.files[0].chain()?, self.files[1].chain()?];
        chains.sort_by_key(|(first, _)| *first);
        Ok(chains.into_iter().flat_map(|(_, changes)| changes).collect())
    }

    /// Empties both files once everything they held is stored durably.
    pub(super) fn clear(&mut self) -> io::Result<()> {
        for file in &mut self.files {
            file.clear()?;
        }
        self.active = 0;
        Ok(())
    }

    /// Whether the active file is due: what it holds should be stored in redb.
    pub(super) fn due(&self) -> bool {
        let active = &self.files[self.active];
        active.at >= CHECKPOINT_BYTES || active.records >= CHECKPOINT_RECORDS
    }

    /// Sends the next records to the other file, whose records redb must hold durably: it
    /// starts over from its beginning.
    pub(super) fn switch(&mut self) {
        self.active = 1 - self.active;
        let file = &mut self.files[self.active];
        (file.at, file.records) = (0, 0);
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
        let file = &mut self.files[self.active];
        let written = file.file.write_all_at(&self.record, file.at).and_then(|()| file.file.sync_data());
        if let Err(e) = written {
            if let Err(e) = file.file.write_all_at(&[0; HEADER], file.at).and_then(|()| file.file.sync_data()) {
                tracing::error!(error = %e, "cannot erase a journal record whose write failed");
            }
            return Err(e);
        }
        self.number = number;
        (file.at, file.records) = (file.at + self.record.len() as u64, file.records + 1);
        Ok(())
    }
}

impl File {
    /// The number of the file's first record (0: none) and the changes of its records.
    fn chain(&self) -> io::Result<(u64, Vec<Change>)> {
        let mut bytes = vec![0; self.file.metadata()?.len() as usize];
        self.file.read_exact_at(&mut bytes, 0)?;
        let mut changes = Vec::new();
        let (mut at, mut first, mut expected) = (0, 0, None);
        while let Some((number, payload)) = whole_record(&bytes[at..]) {
            if expected.is_some_and(|n| n != number) {
                break;
            }
            decode(payload, &mut changes).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("journal record {number} is malformed"))
            })?;
            if first == 0 {
                first = number;
            }
            (at, expected) = (at + HEADER + payload.len(), Some(number + 1));
        }
        Ok((first, changes))
    }

    /// Empties the file and allocates its blocks again (zeros, which end recovery), so that
    /// appending changes no metadata.
    fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all_at(&vec![0; CHECKPOINT_BYTES as usize], 0)?;
        self.file.sync_all()?;
        (self.at, self.records) = (0, 0);
        Ok(())
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
