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

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A record's number (8 bytes), its payload's length (4) and their CRC-32 with the payload's (4).
const HEADER: usize = 16;

/// Past this many bytes of records a file is due; each file is this long from its start, so
/// appending allocates no blocks.
const CHECKPOINT_BYTES: u64 = 4 << 20;

/// Past this many records, too: memory holds what they changed until redb does.
const CHECKPOINT_RECORDS: u64 = 256;

/// One change a record holds, in postcard one after the other: borrowed while a record is
/// written, owned once read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Change<'a> {
    /// The key now holds this value (None: it was deleted).
    Entry { namespace: Cow<'a, str>, bucket: Cow<'a, str>, key: Cow<'a, str>, value: Option<Cow<'a, [u8]>> },
    /// The namespace now uses this many keys and bytes.
    Usage { namespace: Cow<'a, str>, keys: u64, bytes: u64 },
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
    /// All zeros from its start to its full length: clearing it has nothing to do.
    blank: bool,
}

impl Journal {
    /// Opens (or creates, readable by this user only) the journal's files `path`-a and
    /// `path`-b, and returns the changes of their records in order. Nothing may be appended
    /// until they are stored durably and [`Journal::clear`] has emptied both.
    pub(super) fn open(path: &Path) -> io::Result<(Self, Vec<Change<'static>>)> {
        let open = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let options = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).clone();
            options.open(name).map(|file| File { file, at: 0, records: 0, blank: false })
        };
        let mut journal = Self { files: [open("-a")?, open("-b")?], active: 0, number: 0, record: Vec::new() };
        let changes = journal.recover()?;
        Ok((journal, changes))
    }

    /// The changes of every record a crash or a failed database left, the older file first.
    pub(super) fn recover(&mut self) -> io::Result<Vec<Change<'static>>> {
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
        let (namespace, bucket, key) = (Cow::Borrowed(namespace), Cow::Borrowed(bucket), Cow::Borrowed(key));
        self.add(&Change::Entry { namespace, bucket, key, value: value.map(Cow::Borrowed) });
    }

    /// Records what `namespace` now uses.
    pub(super) fn usage(&mut self, namespace: &str, keys: u64, bytes: u64) {
        self.add(&Change::Usage { namespace: Cow::Borrowed(namespace), keys, bytes });
    }

    fn add(&mut self, change: &Change) {
        let record = std::mem::take(&mut self.record);
        self.record = postcard::to_extend(change, record).expect("a journal change always serializes");
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
        (file.at, file.records, file.blank) = (file.at + self.record.len() as u64, file.records + 1, false);
        Ok(())
    }
}

impl File {
    /// The number of the file's first record (0: none) and the changes of its records.
    fn chain(&mut self) -> io::Result<(u64, Vec<Change<'static>>)> {
        let mut bytes = vec![0; self.file.metadata()?.len() as usize];
        self.file.read_exact_at(&mut bytes, 0)?;
        self.blank = bytes.len() as u64 == CHECKPOINT_BYTES && bytes.iter().all(|&b| b == 0);
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
    /// appending changes no metadata; a blank file (a clean stop left it so) stays as it is.
    fn clear(&mut self) -> io::Result<()> {
        if !self.blank {
            self.file.set_len(0)?;
            self.file.write_all_at(&vec![0; CHECKPOINT_BYTES as usize], 0)?;
            self.file.sync_all()?;
        }
        (self.at, self.records, self.blank) = (0, 0, true);
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

/// Reads a payload's changes into `changes`; None if it is malformed.
fn decode(mut payload: &[u8], changes: &mut Vec<Change<'static>>) -> Option<()> {
    while !payload.is_empty() {
        let (change, rest) = postcard::take_from_bytes(payload).ok()?;
        changes.push(change);
        payload = rest;
    }
    Some(())
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
