//! How the embedded backend's writes become durable, and the state they share with reads.
//!
//! The committer thread applies each group of writes (`group`) against what is stored, and
//! makes it durable with one journal record (`journal`): written and synced before any of
//! the group's writers hears back. The group's changes then join `recent`, in memory, which
//! every read looks at before the database. Once the journal is due (a few MiB or a thousand
//! records), everything `recent` holds is stored in redb in one durable commit, key by key in
//! order, and the journal starts over. So redb changes its pages once per checkpoint instead
//! of once per group: a count that every order changes is written once, not thousands of
//! times. After a crash, redb opens at its last durable commit and the journal's records
//! bring back the rest.
//!
//! A checkpoint that fails (a full disk, an I/O error) fails no writer: what it held stays in
//! `recent` and in the journal, and the next group tries again. redb refuses every later
//! transaction after an I/O error, so the database is then closed and opened again (redb
//! repairs it to its last durable commit) and the journal is replayed into it, at once and,
//! while that fails, before each later write. A journal that cannot be written fails the
//! group it was writing and nothing else.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableError};

use super::changes::{ENTRIES, Tables, USAGE, Usage, Write, Written, recount};
use super::entry_key;
use super::error::StorageError;
use super::group::{Calls, GroupCommit, Outcomes};
use super::journal::{Change, Journal};
use super::pending::Pending;
use super::reserved::Sequences;

/// How long reopening waits for reads still using the failed database.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// What the groups since the last durable commit changed: every read looks here first.
#[derive(Default)]
pub(super) struct Recent {
    pub(super) entries: Pending,
    pub(super) usage: Usage,
}

impl Recent {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.usage.is_empty()
    }
}

pub(super) struct Inner {
    path: PathBuf,
    cache_bytes: usize,
    /// Empty while the database is being opened again after an I/O error.
    db: ArcSwapOption<Database>,
    recent: RwLock<Recent>,
    /// The committer's alone.
    journal: Mutex<Journal>,
    pub(super) group: GroupCommit,
    pub(super) sequences: Sequences,
}

impl Inner {
    /// Opens (or creates, readable only by this user) the database at `path` and its journal
    /// beside it, stores what the journal held, and starts the committer thread.
    pub(super) fn open(path: &Path, cache_bytes: usize) -> Result<Arc<Self>, StorageError> {
        let db = open_database(path, cache_bytes)?;
        let (mut journal, changes) = Journal::open(&path.with_extension("journal")).map_err(journal_error)?;
        recover(&db, &mut journal, changes)?;
        let (group, committer) = GroupCommit::new();
        let inner = Arc::new(Self {
            path: path.to_path_buf(),
            cache_bytes,
            db: ArcSwapOption::from_pointee(db),
            recent: RwLock::default(),
            journal: Mutex::new(journal),
            group,
            sequences: Sequences::default(),
        });
        committer
            .start(Arc::downgrade(&inner), Calls { commit: Self::commit, idle: Self::idle })
            .map_err(|e| StorageError::Database(format!("cannot start the committer thread: {e}")))?;
        Ok(inner)
    }

    pub(super) fn db(&self) -> Result<Arc<Database>, StorageError> {
        self.db.load_full().ok_or_else(|| {
            StorageError::Database("the database is being reopened after an I/O error; retry shortly".into())
        })
    }

    /// What the groups since the last durable commit changed. Read it before the database:
    /// a checkpoint stores it in the database before emptying it.
    pub(super) fn recent(&self) -> RwLockReadGuard<'_, Recent> {
        self.recent.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes and opens the database again after an I/O error, once no read is using it, and
    /// stores what the journal holds. Called by the committer only.
    fn reopen(&self, journal: &mut Journal) -> Result<(), StorageError> {
        if let Some(old) = self.db.swap(None) {
            let waited = Instant::now();
            while Arc::strong_count(&old) > 1 && waited.elapsed() < REOPEN_WAIT {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let db = open_database(&self.path, self.cache_bytes)?;
        let changes = journal.recover().map_err(journal_error)?;
        recover(&db, journal, changes)?;
        *self.recent.write().unwrap_or_else(PoisonError::into_inner) = Recent::default();
        self.db.store(Some(Arc::new(db)));
        tracing::info!(path = %self.path.display(), "storage reopened after an I/O error");
        Ok(())
    }

    /// Applies `writes` in order and makes them durable together. A write refused on its own
    /// (an increment of a non-integer, a quota) changes nothing and fails alone; a failure of
    /// the database or of the journal fails them all, and nothing is written.
    pub(super) fn commit(&self, writes: Vec<Write>) -> Outcomes {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        if self.db.load().is_none() {
            self.reopen(&mut journal)?;
        }
        let db = self.db()?;
        let results = self.apply(&db, &mut journal, &writes)?;
        if journal.due() {
            self.checkpoint(db, &mut journal);
        }
        Ok(results)
    }

    /// Once writes stop: stores what `recent` holds, so that the database alone holds
    /// everything while the host is idle. Answers whether something is still left (it failed).
    fn idle(&self) -> bool {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let Ok(db) = self.db() else { return true };
        if self.recent().is_empty() {
            return false;
        }
        self.checkpoint(db, &mut journal);
        !self.recent().is_empty()
    }

    fn apply(
        &self,
        db: &Database,
        journal: &mut Journal,
        writes: &[Write],
    ) -> Result<Vec<Result<Written, StorageError>>, StorageError> {
        let txn = db.begin_read()?;
        let (entries, usage_table) = (txn.open_table(ENTRIES)?, txn.open_table(USAGE)?);
        let (mut pending, mut usage) = (Pending::default(), Usage::default());
        let results = {
            let recent = self.recent();
            let mut tables = Tables {
                entries: &entries,
                recent: &recent.entries,
                pending: &mut pending,
                usage_table: &usage_table,
                recent_usage: &recent.usage,
                usage: &mut usage,
            };
            writes.iter().map(|write| write.apply(&mut tables)).collect::<Result<Vec<_>, _>>()?
        };
        journal.begin();
        pending.record(journal);
        usage.record(journal);
        if !journal.is_empty() {
            journal.append().map_err(journal_error)?;
            let mut recent = self.recent.write().unwrap_or_else(PoisonError::into_inner);
            recent.entries.absorb(pending);
            recent.usage.absorb(usage);
        }
        Ok(results)
    }

    /// Stores what `recent` holds in one durable commit and starts the journal over. On
    /// failure both keep it; after an I/O error the database is opened again.
    fn checkpoint(&self, db: Arc<Database>, journal: &mut Journal) {
        let stored = store(&db, &self.recent());
        match stored {
            Ok(()) => {
                *self.recent.write().unwrap_or_else(PoisonError::into_inner) = Recent::default();
                journal.restart();
            }
            Err(e) => {
                tracing::warn!(error = %e, "storage could not store its recent writes; its journal keeps them");
                if matches!(db.begin_write(), Err(redb::TransactionError::Storage(_))) {
                    drop(db);
                    if let Err(e) = self.reopen(journal) {
                        tracing::warn!(error = %e, "storage could not be reopened yet; the next write tries again");
                    }
                }
            }
        }
    }
}

impl Drop for Inner {
    /// On a clean stop, the database alone holds everything: the journal is empty.
    fn drop(&mut self) {
        let journal = self.journal.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(db) = self.db.load_full() else { return };
        let recent = self.recent.get_mut().unwrap_or_else(PoisonError::into_inner);
        if !recent.is_empty() {
            let changes = std::mem::take(recent);
            if let Err(e) = store(&db, &changes).and_then(|()| journal.clear().map_err(journal_error)) {
                tracing::warn!(error = %e, "storage kept its last writes in its journal");
            }
        }
    }
}

/// Stores `recent` in one durable commit.
fn store(db: &Database, recent: &Recent) -> Result<(), StorageError> {
    let txn = db.begin_write()?;
    recent.entries.save(&mut txn.open_table(ENTRIES)?)?;
    recent.usage.save(&mut txn.open_table(USAGE)?)?;
    txn.commit()?;
    Ok(())
}

/// Stores durably the changes the journal held, in order, then empties it.
fn recover(db: &Database, journal: &mut Journal, changes: Vec<Change>) -> Result<(), StorageError> {
    if !changes.is_empty() {
        let count = changes.len();
        let mut recent = Recent::default();
        for change in changes {
            match change {
                Change::Entry { namespace, bucket, key, value } => recent.entries.put(&namespace, &bucket, key, value),
                Change::Usage { namespace, keys, bytes } => recent.usage.set(namespace, (keys, bytes)),
            }
        }
        store(db, &recent)?;
        tracing::info!(changes = count, "storage recovered the writes its journal held");
    }
    journal.clear().map_err(journal_error)
}

fn journal_error(e: std::io::Error) -> StorageError {
    StorageError::Database(format!("cannot write the storage journal: {e}"))
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
#[path = "durable_tests.rs"]
mod tests;
