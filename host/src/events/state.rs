//! What the bus holds while it runs: the log, where it ends, the subscribers running and the
//! positions of those not loaded now, and what it counts; and publishing into it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::sync::watch;

use super::across::Across;
use super::log::{Log, Position, Record, now_ms};
use super::subscriber::{AbortOnDrop, Subscriber};
use crate::breaker::Clock;
use crate::capabilities::messaging::{Envelope, Error, Sender, Stage, Staged};
use crate::config::Config;
use crate::ops::metrics::{METRICS, TopicLabels};

pub(super) struct Inner {
    pub(super) log: Log,
    pub(super) config: Config,
    pub(super) clock: Arc<dyn Clock>,
    /// The number of the last message stored.
    pub(super) published: watch::Sender<u64>,
    pub(super) running: Mutex<BTreeMap<String, Running>>,
    /// Positions of subscribers not loaded now (removed, or not loaded yet after a start).
    pub(super) parked: Mutex<HashMap<String, Position>>,
    /// Messages published per topic since the host started.
    pub(super) topics: Mutex<BTreeMap<String, u64>>,
    /// Bytes of the messages stored, for retention by size.
    pub(super) stored_bytes: AtomicU64,
    /// In cluster mode, the cluster's stream, which carries every message instead of the log.
    pub(super) across: OnceLock<Arc<Across>>,
}

pub(super) struct Running {
    pub(super) subscriber: Arc<Subscriber>,
    pub(super) _task: AbortOnDrop,
}

impl Inner {
    /// Where subscriber `name` starts: its parked position if it is recent enough, else after
    /// the last message stored now.
    pub(super) fn resume(&self, name: &str) -> u64 {
        let parked = self.parked.lock().unwrap().remove(name);
        let retention = self.config.messaging.subscriber_retention.as_millis() as u64;
        match parked {
            Some(p) if p.removed_ms.is_none_or(|at| now_ms().saturating_sub(at) <= retention) => p.cursor,
            _ => *self.published.borrow(),
        }
    }

    /// Whether any subscriber, loaded or away, subscribes to `topic`.
    fn wanted(&self, topic: &str) -> bool {
        let running = self.running.lock().unwrap().values().any(|r| r.subscriber.target.load().wants(topic));
        running || self.parked.lock().unwrap().values().any(|p| p.topics.iter().any(|pattern| pattern.matches(topic)))
    }

    /// Counts a message published on `topic`.
    fn count(&self, topic: &str) {
        *self.topics.lock().unwrap().entry(topic.to_string()).or_default() += 1;
        METRICS.messages_published.get_or_create(&TopicLabels { topic: topic.to_string() }).inc();
    }

    /// The record to store for a message, unless no subscriber, loaded or away, subscribes to
    /// its topic: then there is no one to keep it for (a new subscriber starts with what is
    /// published after it appears), it is acknowledged unstored, and its topic given back.
    fn record(&self, from: &Sender, topic: String, envelope: Envelope) -> Result<Record, String> {
        if self.across.get().is_none() && !self.wanted(&topic) {
            return Err(topic);
        }
        Ok(Record {
            topic,
            envelope,
            publisher: from.component.to_string(),
            correlation_id: from.correlation_id.to_string(),
            published_ms: now_ms(),
        })
    }

    /// Stores a message for the subscribers of its topic, if it has any.
    pub(super) async fn publish(&self, from: Sender, topic: String, envelope: Envelope) -> Result<(), Error> {
        self.count(&topic);
        let Ok(record) = self.record(&from, topic, envelope) else { return Ok(()) };
        if let Some(across) = self.across.get() {
            let stored = across.publish(&record).await;
            return stored.map_err(|e| Error::Other(format!("the message was not stored on JetStream: {e}")));
        }
        let stored = self.log.append(&record).await;
        let (n, size) = stored.map_err(|e| Error::Other(format!("the message was not stored: {e}")))?;
        self.stored(&[n as i64], size);
        Ok(())
    }

    /// Messages sent with a component's write: in this host's log, the write that appends
    /// them, for the same transaction; on the cluster's stream, after it. They count as
    /// published once the write is committed (a write whose `expect` fails sends nothing).
    pub(super) fn stage(self: Arc<Self>, from: Sender, messages: Vec<(String, Envelope)>) -> Stage {
        if self.across.get().is_some() {
            return Stage::After(messages);
        }
        let (mut records, mut unstored) = (Vec::new(), Vec::new());
        for (topic, envelope) in messages {
            match self.record(&from, topic, envelope) {
                Ok(record) => records.push(record),
                Err(topic) => unstored.push(topic),
            }
        }
        let appending = (!records.is_empty()).then(|| Log::appending(&records));
        let (linked, size) = appending.map_or((None, 0), |(linked, size)| (Some(linked), size));
        let appended = records.len();
        let topics: Vec<String> = records.into_iter().map(|record| record.topic).chain(unstored).collect();
        let bus = Arc::downgrade(&self);
        let stored = move |numbers: &[i64]| {
            if let Some(bus) = bus.upgrade() {
                topics.iter().for_each(|topic| bus.count(topic));
                bus.stored(numbers, size);
            }
        };
        Stage::Linked(Staged { linked, appended, stored: Box::new(stored) })
    }

    /// Messages numbered `numbers`, of `size` bytes together, are stored: subscribers may read
    /// up to the last.
    fn stored(&self, numbers: &[i64], size: usize) {
        self.stored_bytes.fetch_add(size as u64, Ordering::Relaxed);
        if let Some(&last) = numbers.iter().max() {
            self.published.send_modify(|at| *at = (*at).max(last as u64));
        }
    }
}
