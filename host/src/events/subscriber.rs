//! One subscriber's delivery loop: it reads the log from its position, hands each message on
//! its topics to its component (at most `max_in_flight` at once, so one at a time keeps each
//! topic's order), retries failures with exponential backoff and jitter, pauses while its
//! breaker is open, dead-letters a message after `max_deliveries`, and saves its position as
//! it advances. At least once: a position is saved after the messages before it are done, so
//! a crash redelivers at most what was under way.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::Rng;
use tokio::sync::watch;

use super::log::{DeadLetter, Log, Position, Record, now_ms};
use crate::breaker::{Breaker, Outcome};
use crate::capabilities::messaging::{Envelope, TopicPattern, resources::Message};
use crate::component::LoadedComponent;
use crate::config::Messaging;
use crate::ops::metrics::METRICS;
use crate::runtime::CallContext;

/// Messages read from the log at once.
const READ_AHEAD: usize = 256;
/// The longest pause while the breaker is open, before asking it again.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// What a subscriber delivers to: the component now loaded under its name, and its topics.
pub(crate) struct Target {
    pub(crate) component: Arc<LoadedComponent>,
    pub(crate) patterns: Vec<TopicPattern>,
}

impl Target {
    pub(crate) fn wants(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(topic))
    }
}

/// A subscribing component, as long as it is loaded.
pub(crate) struct Subscriber {
    pub(crate) name: Arc<str>,
    pub(crate) target: ArcSwap<Target>,
    pub(crate) settings: Messaging,
    pub(crate) breaker: Arc<Breaker>,
    /// Every message numbered up to this one is done for it.
    pub(crate) cursor: AtomicU64,
    pub(crate) log: Log,
    /// In cluster mode, the messages its JetStream consumer holds for it (waiting or being
    /// delivered), as last asked.
    pub(crate) pending_across: AtomicU64,
}

/// What a message's handler said last.
enum Attempt {
    Acknowledged,
    Failed(String),
}

impl Subscriber {
    /// Delivers from its position on, for as long as the task runs.
    pub(crate) async fn run(self: Arc<Self>, mut published: watch::Receiver<u64>) {
        let log = self.log.clone();
        let start = self.cursor.load(Ordering::Relaxed);
        let (saved, to_save) = watch::channel(start);
        let _saver = AbortOnDrop(tokio::spawn(save_positions(self.clone(), to_save)));
        // Each message read, in order, and whether it is done; the position is the last of
        // the done ones at the front.
        let mut read: VecDeque<(u64, bool)> = VecDeque::new();
        let mut ahead: VecDeque<(u64, Record)> = VecDeque::new();
        let mut last_read = start;
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.settings.max_in_flight {
                if ahead.is_empty() && *published.borrow() > last_read {
                    match log.after(last_read, READ_AHEAD) {
                        Ok(found) => ahead.extend(found.into_iter().map(|(n, record, _)| (n, record))),
                        Err(e) => {
                            tracing::warn!(subscriber = %self.name, error = %e, "cannot read the message log yet");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                    if ahead.is_empty() {
                        // Trimmed by retention meanwhile: nothing left to read up to there.
                        last_read = *published.borrow();
                    }
                }
                let Some((n, record)) = ahead.pop_front() else { break };
                last_read = n;
                let wanted = self.target.load().wants(&record.topic);
                read.push_back((n, !wanted));
                if wanted {
                    in_flight.push(self.clone().deliver(n, record));
                }
            }
            let mut advanced = false;
            while let Some(&(n, true)) = read.front() {
                read.pop_front();
                self.cursor.store(n, Ordering::Relaxed);
                advanced = true;
            }
            if advanced {
                saved.send_replace(self.cursor.load(Ordering::Relaxed));
            } else if read.is_empty() && ahead.is_empty() && last_read > self.cursor.load(Ordering::Relaxed) {
                // Everything read is done, the log was trimmed past the position.
                self.cursor.store(last_read, Ordering::Relaxed);
                saved.send_replace(last_read);
            }
            // The loop above stops with room only once nothing is read ahead: then it waits for
            // a new message, otherwise for a delivery to finish.
            let room = in_flight.len() < self.settings.max_in_flight;
            tokio::select! {
                Some((n, _)) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Some(entry) = read.iter_mut().find(|(m, _)| *m == n) {
                        entry.1 = true;
                    }
                }
                changed = published.wait_for(|last| *last > last_read), if room => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Delivers message `n` until it is acknowledged or dead-lettered; returns `n` and
    /// whether it was acknowledged.
    pub(crate) async fn deliver(self: Arc<Self>, n: u64, record: Record) -> (u64, bool) {
        let max = self.settings.max_deliveries.max(1);
        let mut last_error = String::new();
        for attempt in 1..=max {
            match self.attempt(n, &record).await {
                Attempt::Acknowledged => {
                    METRICS.record_delivery(&self.name, "acknowledged");
                    return (n, true);
                }
                Attempt::Failed(why) => last_error = why,
            }
            tracing::warn!(
                subscriber = %self.name, message = n, topic = %record.topic, attempt, error = %last_error,
                correlation_id = %record.correlation_id, "delivery failed"
            );
            if attempt < max {
                METRICS.record_delivery(&self.name, "retried");
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        }
        let dead = DeadLetter { id: n, record, error: last_error, deliveries: max, dead_ms: now_ms() };
        self.bury(dead).await;
        (n, false)
    }

    /// Keeps `dead` with its last error, trying again while the storage fails: a message is
    /// never let go unrecorded.
    pub(crate) async fn bury(&self, dead: DeadLetter) {
        let mut wait = self.settings.retry_backoff;
        while let Err(e) = self.log.dead_letter(&self.name, &dead).await {
            tracing::error!(subscriber = %self.name, message = dead.id, error = %e, "cannot keep a dead letter yet");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.settings.retry_backoff_max);
        }
        METRICS.record_delivery(&self.name, "dead-lettered");
        tracing::error!(
            subscriber = %self.name, message = dead.id, topic = %dead.record.topic, deliveries = dead.deliveries,
            error = %dead.error, correlation_id = %dead.record.correlation_id, "message dead-lettered"
        );
    }

    /// One delivery of message `n`, once the breaker lets it through.
    async fn attempt(&self, n: u64, record: &Record) -> Attempt {
        let permit = loop {
            match self.breaker.try_acquire() {
                Ok(permit) => break permit,
                Err(rejected) => {
                    let pause = rejected.retry_after.unwrap_or(LONGEST_PAUSE);
                    tokio::time::sleep(pause.clamp(Duration::from_millis(10), LONGEST_PAUSE)).await;
                }
            }
        };
        let component = self.target.load().component.clone();
        let call = CallContext {
            deadline: Instant::now() + component.limits.call_timeout,
            depth: 0,
            correlation_id: Arc::from(record.correlation_id.as_str()),
        };
        let message = Message::delivered(record.topic.clone(), stamped(n, record), None);
        match component.deliver(call, message).await {
            Ok(Ok(())) => {
                permit.record(Outcome::Success);
                Attempt::Acknowledged
            }
            Ok(Err(why)) => {
                // An error answered is a failed delivery: it counts against the breaker.
                permit.record(Outcome::Trap);
                Attempt::Failed(why)
            }
            Err(fault) => {
                permit.record(fault.outcome());
                Attempt::Failed(fault.to_string())
            }
        }
    }

    /// The wait before retry `attempt` + 1: doubling from `retry_backoff` up to
    /// `retry_backoff_max`, times a random factor between 0.5 and 1.5.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_backoff.saturating_mul(1 << (attempt - 1).min(20));
        base.min(self.settings.retry_backoff_max).mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

/// The message as delivered: its content, with its number and the publisher's correlation
/// id added to its metadata (`message-id`, `correlation-id`), so handlers can be idempotent
/// and logs can follow an event from the request that caused it.
pub(crate) fn stamped(n: u64, record: &Record) -> Envelope {
    let mut envelope = record.envelope.clone();
    envelope.metadata.retain(|(k, _)| k != "message-id" && k != "correlation-id");
    envelope.metadata.push(("message-id".into(), n.to_string()));
    envelope.metadata.push(("correlation-id".into(), record.correlation_id.clone()));
    envelope
}

/// Saves each new position of `subscriber`, the latest one when several came meanwhile.
async fn save_positions(subscriber: Arc<Subscriber>, mut positions: watch::Receiver<u64>) {
    loop {
        let cursor = *positions.borrow_and_update();
        let position = Position { cursor, topics: subscriber.target.load().patterns.clone(), removed_ms: None };
        if let Err(e) = subscriber.log.save_position(&subscriber.name, &position).await {
            tracing::warn!(subscriber = %subscriber.name, error = %e, "cannot save the subscriber's position yet");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if positions.changed().await.is_err() {
            return;
        }
    }
}

/// A task that ends with its owner.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
