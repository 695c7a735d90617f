//! What the admin API shows of the bus (topics, subscribers with their lag, dead letters),
//! and replaying dead letters: each is delivered again to its subscriber, as the component
//! loaded now, with the same retries; acknowledged, it is let go; failing again, it is kept
//! with its new error.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::Bus;
use super::log::{DeadLetter, now_ms};
use super::retention::lag;

/// Dead letters listed at most.
const DEAD_LETTERS_SHOWN: usize = 1000;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Status {
    /// The number of the last message stored.
    pub(crate) last_message: u64,
    pub(crate) topics: Vec<TopicStatus>,
    pub(crate) subscribers: Vec<SubscriberStatus>,
    pub(crate) dead_letters: Vec<DeadLetterStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TopicStatus {
    pub(crate) topic: String,
    /// Messages published on it since the host started.
    pub(crate) published: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SubscriberStatus {
    pub(crate) name: String,
    pub(crate) topics: Vec<String>,
    /// Every message numbered up to this one is done for it.
    pub(crate) position: u64,
    /// Messages on its topics not acknowledged yet, and the age of the oldest.
    pub(crate) lag: u64,
    pub(crate) lag_seconds: f64,
    pub(crate) breaker: String,
    pub(crate) max_in_flight: usize,
    pub(crate) max_deliveries: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeadLetterStatus {
    pub(crate) subscriber: String,
    pub(crate) id: u64,
    pub(crate) topic: String,
    pub(crate) publisher: String,
    pub(crate) correlation_id: String,
    pub(crate) error: String,
    pub(crate) deliveries: u32,
    pub(crate) dead_for_seconds: f64,
}

/// What a replay did.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Replayed {
    /// Dead letters handed back to their subscribers' delivery.
    pub(crate) replaying: usize,
    /// Subscribers named that are not loaded now: their dead letters wait.
    pub(crate) not_loaded: Vec<String>,
}

impl Bus {
    pub(crate) fn status(&self) -> anyhow::Result<Status> {
        let inner = &self.inner;
        let topics = inner.topics.lock().unwrap();
        let topics = topics.iter().map(|(topic, n)| TopicStatus { topic: topic.clone(), published: *n }).collect();
        let subscribers: Vec<_> = inner.running.lock().unwrap().values().map(|r| r.subscriber.clone()).collect();
        let subscribers = subscribers
            .iter()
            .map(|s| {
                let (lag, age) = lag(inner, s);
                SubscriberStatus {
                    name: s.name.to_string(),
                    topics: s.target.load().patterns.iter().map(|p| p.to_string()).collect(),
                    position: s.cursor.load(Ordering::Relaxed),
                    lag,
                    lag_seconds: age.as_secs_f64(),
                    breaker: s.breaker.state().as_str().to_string(),
                    max_in_flight: s.settings.max_in_flight,
                    max_deliveries: s.settings.max_deliveries,
                }
            })
            .collect();
        let dead_letters =
            inner.log.dead_letters(None, DEAD_LETTERS_SHOWN)?.into_iter().map(|(s, d)| dead_status(s, d)).collect();
        Ok(Status { last_message: *inner.published.borrow(), topics, subscribers, dead_letters })
    }

    /// Delivers again the dead letters of `subscriber` (everyone's when `None`), only those
    /// numbered in `ids` when given.
    pub(crate) fn replay(&self, subscriber: Option<&str>, ids: Option<&[u64]>) -> anyhow::Result<Replayed> {
        let inner = &self.inner;
        let letters = inner.log.dead_letters(subscriber, usize::MAX)?;
        let letters = letters.into_iter().filter(|(_, d)| ids.is_none_or(|ids| ids.contains(&d.id)));
        let mut replayed = Replayed { replaying: 0, not_loaded: Vec::new() };
        let running = inner.running.lock().unwrap();
        for (owner, dead) in letters {
            let Some(running) = running.get(&owner) else {
                if !replayed.not_loaded.contains(&owner) {
                    replayed.not_loaded.push(owner);
                }
                continue;
            };
            let (subscriber, log) = (Arc::clone(&running.subscriber), inner.log.clone());
            replayed.replaying += 1;
            tokio::spawn(async move {
                tracing::info!(subscriber = %subscriber.name, message = dead.id, "replaying a dead letter");
                // Failing again, the delivery keeps the letter anew with its new error.
                let (id, acknowledged) = subscriber.clone().deliver(dead.id, dead.record).await;
                if acknowledged && let Err(e) = log.forget_dead_letter(&subscriber.name, id).await {
                    tracing::warn!(subscriber = %subscriber.name, message = id, error = %e, "cannot let a replayed letter go");
                }
            });
        }
        Ok(replayed)
    }
}

fn dead_status(subscriber: String, dead: DeadLetter) -> DeadLetterStatus {
    DeadLetterStatus {
        subscriber,
        id: dead.id,
        topic: dead.record.topic,
        publisher: dead.record.publisher,
        correlation_id: dead.record.correlation_id,
        error: dead.error,
        deliveries: dead.deliveries,
        dead_for_seconds: now_ms().saturating_sub(dead.dead_ms) as f64 / 1000.0,
    }
}
