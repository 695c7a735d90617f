//! Events across the hosts of a cluster: in cluster mode the bus keeps messages in one
//! JetStream stream, `trellis-<cluster>-events` (subjects `trellis.<cluster>.events.<topic>`,
//! file storage, on three servers when NATS has three), instead of the host's own log. Each
//! subscribing component has one durable consumer, `<component>`, filtered on its topic
//! patterns and shared by its replicas on every host, so a message is delivered once per
//! subscribing component across the cluster, whichever host takes it. A new consumer starts
//! with what is published after it appeared; a consumer no host pulls from for
//! `subscriber_retention` is let go, and until then a replica put back resumes where it
//! stopped.
//!
//! A host delivers a message it takes exactly as it delivers its own log's (the subscriber's
//! retries with backoff, breaker, dead letters kept on this host), and acknowledges it to
//! JetStream once it is acknowledged or dead-lettered. It tells JetStream it is still working
//! on it while it retries, so the message moves to another replica only when this host dies.
//! `max_in_flight` is the consumer's limit of unacknowledged messages, for all replicas
//! together: 1 keeps each topic's order across the cluster. The message id is the stream
//! sequence, the same on every host.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::OnceCell;

use super::log::Record;
use super::subscriber::Subscriber;
use crate::capabilities::keyvalue::{replicated_stream, safe_name};
use crate::capabilities::messaging::TopicPattern;

/// How long JetStream waits for an acknowledgement before it offers the message to another
/// replica; a host working on one says so every third of it.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// How often publishing asks JetStream which topics its consumers want.
const WANTED_EVERY: Duration = Duration::from_secs(1);

/// How often a subscriber's lag is asked of JetStream.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// The cluster's stream of events.
pub(crate) struct Across {
    client: async_nats::Client,
    js: jetstream::Context,
    cluster: String,
    stream: OnceCell<stream::Stream>,
    /// Bounds on the stream: age and bytes (`[messaging.retention]`).
    retention: (Duration, u64),
    /// The topic patterns of every subscriber's consumer in the cluster, present or away, and
    /// when they were last asked of JetStream.
    wanted: tokio::sync::Mutex<(Vec<TopicPattern>, Option<Instant>)>,
}

impl Across {
    pub(crate) fn new(client: async_nats::Client, cluster: &str, retention: (Duration, u64)) -> Self {
        let js = jetstream::new(client.clone());
        let wanted = tokio::sync::Mutex::new((Vec::new(), None));
        Self { client, js, cluster: cluster.to_string(), stream: OnceCell::new(), retention, wanted }
    }

    fn subject(&self, topic: &str) -> String {
        format!("trellis.{}.events.{topic}", self.cluster)
    }

    /// The stream, created on first use, on three servers or on one when NATS has fewer.
    async fn stream(&self) -> Result<&stream::Stream, String> {
        self.stream
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: format!("trellis-{}-events", self.cluster),
                    description: Some("Trellis events (wasi:messaging) of the whole cluster".into()),
                    subjects: vec![self.subject(">")],
                    max_age: self.retention.0,
                    max_bytes: i64::try_from(self.retention.1).unwrap_or(-1),
                    storage: stream::StorageType::File,
                    ..Default::default()
                };
                replicated_stream(&self.js, config).await.map_err(|e| e.to_string())
            })
            .await
    }

    /// Stores `record` in the stream; done once JetStream has it. Fails at once while this
    /// host is not connected to NATS, rather than holding the publisher until a timeout.
    pub(super) async fn publish(&self, record: &Record) -> Result<(), String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("this host is not connected to NATS".into());
        }
        if !self.wanted(&record.topic).await? {
            return Ok(());
        }
        let payload = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        let ack = self.js.publish(self.subject(&record.topic), payload.into()).await.map_err(|e| e.to_string())?;
        ack.await.map(drop).map_err(|e| e.to_string())
    }

    /// Whether a subscriber anywhere in the cluster, present or away (its consumer kept),
    /// wants `topic`. As on a single host, a message nobody could ever receive is not stored.
    /// The consumers are asked of JetStream at most every [`WANTED_EVERY`], so a subscriber
    /// that appeared on another host within that time may miss what is published meanwhile.
    async fn wanted(&self, topic: &str) -> Result<bool, String> {
        let mut wanted = self.wanted.lock().await;
        if wanted.1.is_none_or(|at| at.elapsed() > WANTED_EVERY) {
            let prefix = self.subject("");
            let mut consumers = self.stream().await?.consumers();
            let mut patterns = Vec::new();
            while let Some(info) = consumers.next().await {
                let config = info.map_err(|e| e.to_string())?.config;
                let filters = config.filter_subjects.into_iter().chain(Some(config.filter_subject));
                let topics = filters.filter_map(|f| f.strip_prefix(&prefix).map(str::to_string));
                patterns.extend(topics.filter_map(|t| TopicPattern::parse(&t).ok()));
            }
            *wanted = (patterns, Some(Instant::now()));
        }
        Ok(wanted.0.iter().any(|p| p.matches(topic)))
    }

    /// Delivers `subscriber`'s messages from its consumer for as long as the task runs,
    /// starting again while JetStream cannot be reached.
    pub(super) async fn deliver(self: Arc<Self>, subscriber: Arc<Subscriber>) {
        loop {
            if let Err(e) = self.consume(&subscriber).await {
                tracing::warn!(subscriber = %subscriber.name, error = %e, "cannot take messages from JetStream yet");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn consume(&self, subscriber: &Arc<Subscriber>) -> Result<(), String> {
        let stream = self.stream().await?;
        let patterns = subscriber.target.load().patterns.iter().map(|p| self.subject(&p.to_string())).collect();
        let config = pull::Config {
            durable_name: Some(safe_name(&subscriber.name)),
            description: Some(format!("the subscriber {}", subscriber.name)),
            filter_subjects: patterns,
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: -1,
            max_ack_pending: subscriber.settings.max_in_flight.max(1) as i64,
            inactive_threshold: subscriber.settings.subscriber_retention,
            ..Default::default()
        };
        let mut consumer = stream.create_consumer(config).await.map_err(|e| e.to_string())?;
        self.wanted.lock().await.1 = None; // this host's publishers know of it at once
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut in_flight = FuturesUnordered::new();
        let mut measure = tokio::time::interval(LAG_EVERY);
        loop {
            let room = in_flight.len() < subscriber.settings.max_in_flight.max(1);
            tokio::select! {
                _ = measure.tick() => {
                    if let Ok(info) = consumer.info().await {
                        let pending = info.num_pending + info.num_ack_pending as u64;
                        subscriber.pending_across.store(pending, Ordering::Relaxed);
                    }
                },
                next = messages.next(), if room => match next {
                    Some(Ok(message)) => in_flight.push(deliver_one(subscriber.clone(), message)),
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the consumer's messages ended".into()),
                },
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            }
        }
    }
}

/// Delivers one message taken from JetStream, then acknowledges it there.
async fn deliver_one(subscriber: Arc<Subscriber>, message: jetstream::Message) {
    let (n, record) = match (message.info(), serde_json::from_slice::<Record>(&message.payload)) {
        (Ok(info), Ok(record)) => (info.stream_sequence, record),
        (_, Err(e)) => {
            tracing::error!(subscriber = %subscriber.name, subject = %message.subject, error = %e, "not a Trellis event; let go");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
        (Err(e), _) => {
            tracing::error!(subscriber = %subscriber.name, error = %e, "a JetStream message without its metadata");
            return;
        }
    };
    let working = async {
        loop {
            tokio::time::sleep(ACK_WAIT / 3).await;
            let _ = message.ack_with(AckKind::Progress).await;
        }
    };
    tokio::select! {
        _ = subscriber.clone().deliver(n, record) => {}
        () = working => {}
    }
    if let Err(e) = message.double_ack().await {
        tracing::warn!(subscriber = %subscriber.name, message = n, error = %e, "JetStream did not take the acknowledgement; it may deliver again");
    }
}
