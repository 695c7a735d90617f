//! One write (a list of set, delete, increment and expect, all or none) as one JetStream
//! publish. A write that only sets and deletes is published as it is, last writer wins. A
//! write that increments or expects reads what its keys hold, works out what they will hold,
//! and publishes each key's new value with the revision it read
//! (`Nats-Expected-Last-Subject-Sequence`): JetStream stores it only if no other host
//! changed any of those keys in between, and the write starts again otherwise. Several keys
//! go out as one atomic batch (`Nats-Batch-*` headers, nats-server 2.12 and later), so a
//! reader never sees half a write. A key that is only expected is written again unchanged,
//! which makes JetStream check it too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::HeaderMap;
use serde::Deserialize;

use super::{Bucket, Current, OPERATION, names, payload};
use crate::capabilities::keyvalue::Quota;
use crate::capabilities::keyvalue::changes::{Op, Written, incremented};
use crate::capabilities::keyvalue::error::StorageError;

/// How often a write starts again because other hosts changed its keys meanwhile.
const ATTEMPTS: usize = 32;

/// What one key is published with.
struct Publish {
    /// The escaped `<bucket>.<key>`.
    key: String,
    value: Option<Vec<u8>>,
    /// The revision the key must still be at.
    expect: Option<u64>,
}

/// What a write works out to.
enum Plan {
    Publish(Vec<Publish>, Vec<i64>),
    Changed(String, Option<Vec<u8>>),
}

/// Applies `ops` to the component's bucket `bucket` in `store`, all or none.
pub(super) async fn apply(
    client: &async_nats::Client,
    store: &Bucket,
    bucket: &str,
    quota: Quota,
    ops: &[Op],
) -> Result<Written, StorageError> {
    let conditional = ops.iter().any(|op| matches!(op, Op::Increment(..) | Op::Expect(..)));
    for attempt in 0..ATTEMPTS {
        let current = match conditional {
            true => read(store, bucket, ops).await?,
            false => BTreeMap::new(),
        };
        let (messages, counts) = match plan(bucket, quota, ops, &current)? {
            Plan::Changed(key, now) => return Ok(Written::Changed(key, now)),
            Plan::Publish(messages, counts) => (messages, counts),
        };
        match publish(client, &store.prefix, messages).await? {
            true => return Ok(Written::Done(counts)),
            // Another host wrote one of the keys since they were read: read them again.
            false => tokio::time::sleep(std::time::Duration::from_millis(attempt as u64)).await,
        }
    }
    let message = format!("its keys were changed by other writers {ATTEMPTS} times in a row; try again");
    Err(StorageError::Refused(message))
}

/// What every key the write touches holds now, by key.
async fn read(store: &Bucket, bucket: &str, ops: &[Op]) -> Result<BTreeMap<String, Current>, StorageError> {
    let mut keys: Vec<&str> = ops.iter().filter_map(key_of).collect();
    keys.sort_unstable();
    keys.dedup();
    let reads = keys.iter().map(|key| store.current_of(bucket, key));
    let found = futures::future::try_join_all(reads).await?;
    Ok(keys.into_iter().map(str::to_string).zip(found).collect())
}

fn key_of(op: &Op) -> Option<&str> {
    match op {
        Op::Set(key, _) | Op::Delete(key) | Op::Increment(key, _) | Op::Expect(key, _) => Some(key),
        Op::Append { .. } => None,
    }
}

/// Applies the ops in order to what the keys hold (`current`, empty for a write that does
/// not depend on it), into what to publish and the value of each increment.
fn plan(bucket: &str, quota: Quota, ops: &[Op], current: &BTreeMap<String, Current>) -> Result<Plan, StorageError> {
    let mut values: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::new();
    let mut counts = Vec::new();
    let now = |values: &BTreeMap<&str, Option<Vec<u8>>>, key: &str| match values.get(key) {
        Some(value) => value.clone(),
        None => current.get(key).and_then(|c| c.value.clone()),
    };
    for op in ops {
        match op {
            Op::Set(key, value) => {
                quota.check_entry(key, value.len())?;
                values.insert(key, Some(value.clone()));
            }
            Op::Delete(key) => {
                values.insert(key, None);
            }
            Op::Increment(key, delta) => {
                let next = incremented(key, now(&values, key).as_deref(), *delta)?;
                quota.check_entry(key, 8)?;
                values.insert(key, Some(next.to_le_bytes().to_vec()));
                counts.push(next);
            }
            Op::Expect(key, expected) => {
                let value = now(&values, key);
                if value != *expected {
                    return Ok(Plan::Changed(key.clone(), value));
                }
                values.entry(key).or_insert(value);
            }
            Op::Append { .. } => {
                let message = "appending to a log is the embedded storage's; the nats backend does not do it";
                return Err(StorageError::Refused(message.into()));
            }
        }
    }
    let messages = values
        .into_iter()
        .map(|(key, value)| Publish {
            key: names::key(bucket, key),
            value,
            expect: current.get(key).map(|c| c.revision),
        })
        .collect();
    Ok(Plan::Publish(messages, counts))
}

/// JetStream's answer to a publish.
#[derive(Deserialize)]
struct Ack {
    error: Option<AckError>,
}

#[derive(Deserialize)]
struct AckError {
    err_code: u64,
    description: String,
}

/// The error code of a publish whose expected revision did not hold.
const WRONG_LAST_SEQUENCE: u64 = 10071;

/// Publishes the messages as one atomic write: `Ok(false)` when an expected revision did
/// not hold (nothing was written).
async fn publish(client: &async_nats::Client, prefix: &str, messages: Vec<Publish>) -> Result<bool, StorageError> {
    static BATCHES: AtomicU64 = AtomicU64::new(0);
    let failed = |e: &dyn std::fmt::Display| StorageError::Database(format!("cannot write on NATS JetStream: {e}"));
    // Unique across hosts (the random part) and within this one (the count).
    let batch = (messages.len() > 1)
        .then(|| format!("{:016x}-{}", rand::random::<u64>(), BATCHES.fetch_add(1, Ordering::Relaxed)));
    let last = messages.len();
    let mut answer = None;
    for (n, message) in messages.into_iter().enumerate() {
        let mut headers = HeaderMap::new();
        if message.value.is_none() {
            headers.insert(OPERATION, "DEL");
        }
        if let Some(revision) = message.expect {
            headers.insert("Nats-Expected-Last-Subject-Sequence", revision.to_string().as_str());
        }
        if let Some(batch) = &batch {
            headers.insert("Nats-Batch-Id", batch.as_str());
            headers.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
        }
        let (subject, body) = (format!("{prefix}{}", message.key), payload(&message.value));
        if n + 1 < last {
            client.publish_with_headers(subject, headers, body).await.map_err(|e| failed(&e))?;
            continue;
        }
        if batch.is_some() {
            headers.insert("Nats-Batch-Commit", "1");
        }
        answer = Some(client.request_with_headers(subject, headers, body).await.map_err(|e| failed(&e))?);
    }
    let Some(answer) = answer else { return Ok(true) };
    let ack: Ack = serde_json::from_slice(&answer.payload).map_err(|e| failed(&e))?;
    match ack.error {
        None => Ok(true),
        Some(e) if e.err_code == WRONG_LAST_SEQUENCE => Ok(false),
        Some(e) if e.description.contains("maximum") => Err(StorageError::Quota(e.description)),
        Some(e) => Err(failed(&e.description)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: Option<&[u8]>, revision: u64) -> Current {
        Current { value: value.map(<[u8]>::to_vec), revision }
    }

    fn planned(ops: &[Op], current: &BTreeMap<String, Current>) -> Plan {
        plan("b", Quota::NONE, ops, current).unwrap()
    }

    #[test]
    fn a_conditional_write_publishes_each_key_once_with_the_revision_it_read() {
        let current = BTreeMap::from([
            ("total".to_string(), at(Some(&5i64.to_le_bytes()), 7)),
            ("email".to_string(), at(None, 0)),
            ("user".to_string(), at(None, 3)),
        ]);
        let ops = [
            Op::Expect("email".into(), None),
            Op::Set("user".into(), b"ada".to_vec()),
            Op::Increment("total".into(), 1),
            Op::Increment("total".into(), 1),
        ];
        let Plan::Publish(messages, counts) = planned(&ops, &current) else { panic!("changed") };
        assert_eq!(counts, [6, 7]);
        let published: Vec<_> = messages.iter().map(|m| (m.key.as_str(), m.value.clone(), m.expect)).collect();
        assert_eq!(
            published,
            [
                ("b.email", None, Some(0)),
                ("b.total", Some(7i64.to_le_bytes().to_vec()), Some(7)),
                ("b.user", Some(b"ada".to_vec()), Some(3)),
            ]
        );
    }

    #[test]
    fn an_expectation_that_does_not_hold_writes_nothing_and_says_what_the_key_holds() {
        let current = BTreeMap::from([("email".to_string(), at(Some(b"1"), 4))]);
        let ops = [Op::Expect("email".into(), None), Op::Set("user".into(), b"x".to_vec())];
        let Plan::Changed(key, now) = planned(&ops, &current) else { panic!("published") };
        assert_eq!((key.as_str(), now.as_deref()), ("email", Some(&b"1"[..])));
    }

    #[test]
    fn an_unconditional_write_expects_no_revision_and_bad_counters_are_refused() {
        let Plan::Publish(messages, _) = planned(&[Op::Delete("k".into())], &BTreeMap::new()) else { panic!() };
        assert_eq!((messages[0].value.clone(), messages[0].expect), (None, None));
        let current = BTreeMap::from([("n".to_string(), at(Some(b"abc"), 1))]);
        let refused = plan("b", Quota::NONE, &[Op::Increment("n".into(), 1)], &current);
        assert!(matches!(refused, Err(StorageError::Refused(why)) if why.contains("8-byte integer")));
    }
}
