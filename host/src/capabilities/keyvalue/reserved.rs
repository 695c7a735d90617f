//! `trellis:keyvalue/sequences`: fresh ids drawn from a counter without a commit per id.
//! The counter's key holds the highest number reserved; the host reserves [`BLOCK`] numbers
//! at a time with one durable increment and hands them out from memory, in order. A crash
//! loses the rest of a block (a gap), never gives a number twice: every number given is at
//! most the stored counter. On a clean shutdown the unused rest of each block is returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::changes::{Op, Scope, Written};
use super::error::StorageError;
use super::quota::Quota;

/// Numbers reserved per durable write: at a few thousand ids a second, a few commits.
pub(super) const BLOCK: i64 = 128;

/// A sequence: (namespace, bucket, key).
type SequenceId = (String, String, String);

/// The blocks reserved so far, one per sequence.
#[derive(Default)]
pub(super) struct Sequences {
    blocks: Mutex<HashMap<SequenceId, Arc<Mutex<Block>>>>,
}

/// The numbers `next..=last` are reserved and not given yet (none when `next > last`).
#[derive(Debug)]
struct Block {
    next: i64,
    last: i64,
}

impl Default for Block {
    /// Nothing reserved.
    fn default() -> Self {
        Self { next: 1, last: 0 }
    }
}

impl Block {
    fn take(&mut self) -> Option<i64> {
        (self.next <= self.last).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

impl Sequences {
    fn block(&self, scope: Scope, key: &str) -> Arc<Mutex<Block>> {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (scope.namespace.to_string(), scope.bucket.to_string(), key.to_string());
        blocks.entry(id).or_default().clone()
    }
}

impl Sequences {
    /// The next number of the sequence at `key` if its block in memory has one left (no
    /// waiting; `None` also while another caller is reserving a block for it).
    pub(super) fn take(&self, scope: Scope, key: &str) -> Option<u64> {
        let block = self.block(scope, key);
        let mut block = block.try_lock().ok()?;
        block.take().map(|n| n as u64)
    }

    /// The next number of the sequence at `key`, reserving a new block with `reserve` (a
    /// durable increment of the key by the amount given, answering the new value) if the
    /// block in memory is used up.
    pub(super) fn next(
        &self,
        scope: Scope,
        key: &str,
        reserve: impl FnOnce(i64) -> Result<i64, StorageError>,
    ) -> Result<u64, StorageError> {
        let block = self.block(scope, key);
        let mut block = block.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = block.take() {
            return Ok(n as u64);
        }
        let last = reserve(BLOCK)?;
        if last < 1 {
            let message = format!("the sequence at {key} holds {}, not a positive count", last - BLOCK);
            return Err(StorageError::Refused(message));
        }
        *block = Block { next: (last - BLOCK + 1).max(1), last };
        Ok(block.take().expect("a block just reserved has numbers") as u64)
    }

    /// Gives back, through `write`, what every block reserved and did not hand out, so that
    /// a clean restart continues without a gap. A counter changed since (by an increment) is
    /// left as it is. Numbers drawn after this reserve a new block first: none is ever given
    /// twice.
    pub(super) fn release(&self, write: impl Fn(Scope, Vec<Op>) -> Result<Written, StorageError>) {
        let blocks: Vec<_> = self.blocks.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        for ((namespace, bucket, key), block) in blocks {
            let mut block = block.lock().unwrap_or_else(PoisonError::into_inner);
            if block.next > block.last {
                continue;
            }
            let scope = Scope { namespace: &namespace, bucket: &bucket, quota: Quota::NONE };
            let ops = vec![
                Op::Expect(key.clone(), Some(block.last.to_le_bytes().to_vec())),
                Op::Set(key.clone(), (block.next - 1).to_le_bytes().to_vec()),
            ];
            if let Err(e) = write(scope, ops) {
                tracing::warn!(error = %e, %namespace, %bucket, %key, "a sequence's unused ids stay reserved");
            }
            *block = Block::default();
        }
    }
}
