//! How the embedded backend's writes become durable, and the state they share with reads.
//!
//! The committer thread applies each group of writes (`group`) against what is stored, and
//! makes it durable with one journal record (`journal`): written and synced before any of
//! the group's writers hears back. The group's changes then join the `fresh` ones in
//! memory, which every read looks at before the database. Once the journal's active file is
//! due (a few MiB or a few hundred records), they are `frozen` and a thread of its own stores
//! them in redb in one durable commit, key by key in order, while new groups go on into an
//! empty `fresh` and the journal's other file; the frozen changes are read, after the fresh
//! ones, until redb holds them. So redb changes its pages once per such commit instead of once per
//! group (a count that every order changes is written once, not thousands of times), and
//! no writer waits for it. After a crash, redb opens at its last durable commit and the
//! journal's records bring back the rest. Once writes stop for a second, and on a clean
//! stop, redb alone holds everything.
//!
//! A durable commit to redb that fails (a full disk, an I/O error) fails no writer: what it
//! held stays frozen, in memory and in the journal, and is tried again. redb refuses every
//! later transaction after an I/O error, so the database is then closed and opened again
//! (redb repairs it to its last durable commit) and the journal is replayed into it, at once
//! and, while that fails, before each later write. A journal record that cannot be written
//! fails the group it holds and nothing else.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableError};

use super::changes::{ENTRIES, Tables, USAGE, Usage, Write, Written, recount};
use super::entry_key;
use super::error::StorageError;
use super::group::{Calls, GroupCommit, Outcomes};
use super::journal::{Change, Journal};
use super::pending::{Layers, Pending};
use super::reserved::Sequences;

/// How long reopening waits for reads still using the failed database.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// What groups changed since the last durable commit to redb.
#[derive(Default, Clone)]
pub(super) struct Recent {
    pub(super) entries: Pending,
    pub(super) usage: Usage,
}

impl Recent {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.usage.is_empty()
    }

    /// Takes in what a later group changed: where both changed something, the later wins.
    fn absorb(&mut self, later: Recent) {
        self.entries.absorb(later.entries);
        self.usage.absorb(later.usage);
    }

    /// Writes these changes as the journal's next record; false if there are none.
    fn record(&self, journal: &mut Journal) -> bool {
        journal.begin();
        self.entries.record(journal);
        self.usage.record(journal);
        !journal.is_empty()
    }
}

/// What a read looks at before redb: the fresh changes, then the frozen ones being stored.
pub(super) struct Unstored<'a> {
    fresh: RwLockReadGuard<'a, Recent>,
    frozen: Arc<Recent>,
}

impl Unstored<'_> {
    pub(super) fn entries(&self) -> Layers<'_> {
        Layers { newer: &self.fresh.entries, older: &self.frozen.entries }
    }

    fn usage(&self) -> [&Usage; 2] {
        [&self.fresh.usage, &self.frozen.usage]
    }
}

/// The committer's own state.
struct Committer {
    journal: Journal,
    /// The thread storing the frozen changes, while it runs.
    storing: Option<JoinHandle<Result<(), StorageError>>>,
}

pub(super) struct Inner {
    path: PathBuf,
    cache_bytes: usize,
    /// Empty while the database is being opened again after an I/O error.
    db: ArcSwapOption<Database>,
    fresh: RwLock<Recent>,
    /// Empty once redb holds them.
    frozen: Arc<RwLock<Arc<Recent>>>,
    committer: Mutex<Committer>,
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
            fresh: RwLock::default(),
            frozen: Arc::default(),
            committer: Mutex::new(Committer { journal, storing: None }),
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

    /// What the groups since the last durable commit to redb changed. Look here before redb
    /// (open redb's transaction after this): changes leave it only once redb holds them.
    pub(super) fn unstored(&self) -> Unstored<'_> {
        let fresh = self.fresh.read().unwrap_or_else(PoisonError::into_inner);
        let frozen = self.frozen.read().unwrap_or_else(PoisonError::into_inner).clone();
        Unstored { fresh, frozen }
    }

    /// Closes and opens the database again after an I/O error, once no read is using it, and
    /// stores what the journal holds. Called by the committer only, with no store running.
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
        *self.fresh.write().unwrap_or_else(PoisonError::into_inner) = Recent::default();
        *self.frozen.write().unwrap_or_else(PoisonError::into_inner) = Arc::default();
        self.db.store(Some(Arc::new(db)));
        tracing::info!(path = %self.path.display(), "storage reopened after an I/O error");
        Ok(())
    }

    /// Applies `writes` in order and makes them durable together. A write refused on its own
    /// (an increment of a non-integer, a quota) changes nothing and fails alone; a failure of
    /// the database or of the journal fails them all, and nothing is written.
    pub(super) fn commit(&self, writes: Vec<Write>) -> Outcomes {
        let mut committer = self.committer.lock().unwrap_or_else(PoisonError::into_inner);
        self.stored(&mut committer);
        if self.db.load().is_none() {
            self.reopen(&mut committer.journal)?;
        }
        let db = self.db()?;
        let results = self.apply(&db, &mut committer.journal, &writes)?;
        if committer.journal.due() {
            self.store_in_background(&mut committer, db);
        }
        Ok(results)
    }

    /// Once writes stop: has redb store what it does not hold yet (a frozen store that failed
    /// first), so that it alone holds everything while the host is idle. Answers whether
    /// something is left to do.
    fn idle(&self) -> bool {
        let mut committer = self.committer.lock().unwrap_or_else(PoisonError::into_inner);
        self.stored(&mut committer);
        let Ok(db) = self.db() else { return true };
        let unstored = !self.fresh.read().unwrap_or_else(PoisonError::into_inner).is_empty()
            || !self.frozen.read().unwrap_or_else(PoisonError::into_inner).is_empty();
        if unstored {
            self.store_in_background(&mut committer, db);
        }
        unstored || committer.storing.is_some()
    }

    fn apply(
        &self,
        db: &Database,
        journal: &mut Journal,
        writes: &[Write],
    ) -> Result<Vec<Result<Written, StorageError>>, StorageError> {
        let txn = db.begin_read()?;
        let (entries, usage_table) = (txn.open_table(ENTRIES)?, txn.open_table(USAGE)?);
        let mut group = Recent::default();
        let results = {
            let unstored = self.unstored();
            let mut tables = Tables {
                entries: &entries,
                recent: unstored.entries(),
                pending: &mut group.entries,
                usage_table: &usage_table,
                recent_usage: unstored.usage(),
                usage: &mut group.usage,
            };
            writes.iter().map(|write| write.apply(&mut tables)).collect::<Result<Vec<_>, _>>()?
        };
        if group.record(journal) {
            journal.append().map_err(journal_error)?;
            self.fresh.write().unwrap_or_else(PoisonError::into_inner).absorb(group);
        }
        Ok(results)
    }

    /// Starts storing in redb, in a thread of its own, what is frozen (after a failed try) or
    /// else what is fresh, unless a store is running. Freezing sends the next records to the
    /// journal's other file, whose records redb holds.
    fn store_in_background(&self, committer: &mut Committer, db: Arc<Database>) {
        if committer.storing.is_some() {
            return;
        }
        let frozen = {
            let mut fresh = self.fresh.write().unwrap_or_else(PoisonError::into_inner);
            let mut frozen = self.frozen.write().unwrap_or_else(PoisonError::into_inner);
            if frozen.is_empty() {
                *frozen = Arc::new(std::mem::take(&mut *fresh));
                committer.journal.switch();
            }
            frozen.clone()
        };
        let holder = self.frozen.clone();
        let spawned = std::thread::Builder::new().name("trellis-store".into()).spawn(move || {
            store(&db, &frozen)?;
            let mut held = holder.write().unwrap_or_else(PoisonError::into_inner);
            if Arc::ptr_eq(&held, &frozen) {
                *held = Arc::default();
            }
            Ok(())
        });
        match spawned {
            Ok(handle) => committer.storing = Some(handle),
            Err(e) => tracing::warn!(error = %e, "cannot start storing recent writes; the next group tries again"),
        }
    }

    /// Collects the background store if it has finished: after an I/O error, the database is
    /// opened again.
    fn stored(&self, committer: &mut Committer) {
        if !committer.storing.as_ref().is_some_and(JoinHandle::is_finished) {
            return;
        }
        let outcome = committer.storing.take().expect("finished").join();
        let Err(e) = outcome.unwrap_or_else(|_| Err(StorageError::Database("the store thread panicked".into()))) else {
            return;
        };
        tracing::warn!(error = %e, "storage could not store its recent writes; its journal keeps them");
        let refused = self.db().is_ok_and(|db| matches!(db.begin_write(), Err(redb::TransactionError::Storage(_))));
        if refused && let Err(e) = self.reopen(&mut committer.journal) {
            tracing::warn!(error = %e, "storage could not be reopened yet; the next write tries again");
        }
    }
}

impl Drop for Inner {
    /// On a clean stop, the database alone holds everything: the journal is emptied.
    fn drop(&mut self) {
        let committer = self.committer.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(storing) = committer.storing.take() {
            let _ = storing.join();
        }
        let Some(db) = self.db.load_full() else { return };
        // The store thread has ended: the frozen changes are this Inner's alone.
        let frozen = std::mem::take(&mut *self.frozen.write().unwrap_or_else(PoisonError::into_inner));
        let mut all = Arc::unwrap_or_clone(frozen);
        all.absorb(std::mem::take(self.fresh.get_mut().unwrap_or_else(PoisonError::into_inner)));
        if all.is_empty() {
            return;
        }
        if let Err(e) = store(&db, &all).and_then(|()| committer.journal.clear().map_err(journal_error)) {
            tracing::warn!(error = %e, "storage kept its last writes in its journal");
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
fn recover(db: &Database, journal: &mut Journal, changes: Vec<Change<'static>>) -> Result<(), StorageError> {
    if !changes.is_empty() {
        let count = changes.len();
        let mut recent = Recent::default();
        for change in changes {
            match change {
                Change::Entry { namespace, bucket, key, value } => {
                    recent.entries.put(&namespace, &bucket, key.into_owned(), value.map(Cow::into_owned));
                }
                Change::Usage { namespace, keys, bytes } => recent.usage.set(namespace.into_owned(), (keys, bytes)),
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
