//! Group commit: one committer thread per database takes every write queued while it was
//! committing and commits them together, so concurrent writers share one fsync instead of
//! queueing for one each. A writer queues its write with a one-shot reply and waits for it:
//! an async writer (a component's host call) awaits it without holding a thread, a
//! synchronous one blocks. One wake-up per write, and none for writers in between. Once
//! writes stop for [`IDLE`], the committer tidies up (`idle`) until it has nothing left to do.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::changes::{Write, Written};
use super::error::StorageError;

/// A queued write and where its outcome goes.
type Queued = (Write, oneshot::Sender<Result<Written, StorageError>>);

/// How long without writes before the committer tidies up.
const IDLE: Duration = Duration::from_secs(1);

/// The outcomes of a batch, in order, or the failure of the whole commit.
pub(super) type Outcomes = Result<Vec<Result<Written, StorageError>>, StorageError>;

/// The queue into the committer thread, which ends when the database is dropped.
pub(super) struct GroupCommit {
    queue: Mutex<Sender<Queued>>,
}

/// The committer's end of the queue, until its thread is started.
pub(super) struct Committer(Receiver<Queued>);

impl Committer {
    /// Starts the committer thread of the database `db`, which commits each batch with
    /// `commit` and, once writes stop, calls `idle` until it answers that nothing is left to
    /// do; it ends once `db` is dropped.
    pub(super) fn start<D: Send + Sync + 'static>(self, db: Weak<D>, calls: Calls<D>) -> std::io::Result<()> {
        let queued = self.0;
        std::thread::Builder::new().name("trellis-commit".into()).spawn(move || run(&queued, &db, calls))?;
        Ok(())
    }
}

impl GroupCommit {
    pub(super) fn new() -> (Self, Committer) {
        let (queue, queued) = channel();
        (Self { queue: Mutex::new(queue) }, Committer(queued))
    }

    /// Queues `write`; the receiver gets its outcome once a committed transaction holds it.
    pub(super) fn submit(&self, write: Write) -> oneshot::Receiver<Result<Written, StorageError>> {
        let (reply, outcome) = oneshot::channel();
        // A send fails only once the committer is gone; the dropped reply then says so.
        let _ = self.queue.lock().unwrap_or_else(PoisonError::into_inner).send((write, reply));
        outcome
    }
}

/// What the committer calls: `commit` with each batch, and `idle` once writes stop, which
/// answers whether something is still left to do.
pub(super) struct Calls<D> {
    pub(super) commit: fn(&D, Vec<Write>) -> Outcomes,
    pub(super) idle: fn(&D) -> bool,
}

/// Waits for writes, then commits the first with every write queued behind it, until the
/// database is dropped.
fn run<D>(queued: &Receiver<Queued>, db: &Weak<D>, calls: Calls<D>) {
    let mut untidy = false;
    loop {
        let first = if untidy {
            match queued.recv_timeout(IDLE) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    let Some(db) = db.upgrade() else { return };
                    untidy = (calls.idle)(&db);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            let Ok(first) = queued.recv() else { return };
            first
        };
        untidy = true;
        let batch: Vec<Queued> = std::iter::once(first).chain(queued.try_iter()).collect();
        let Some(db) = db.upgrade() else { return };
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
        let results = match (calls.commit)(&db, writes) {
            Ok(results) => results,
            Err(e) => replies.iter().map(|_| Err(e.clone())).collect(),
        };
        // Let go before answering, so that a writer that drops the last handle once
        // answered closes the database at once.
        drop(db);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// What a writer whose reply was dropped unanswered is told.
pub(super) fn lost() -> StorageError {
    StorageError::Database("the write was lost before its commit (storage is shutting down)".into())
}
