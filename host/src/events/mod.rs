//! Events between components: the embedded, durable bus behind `wasi:messaging`. Publishing
//! stores a message in the log (`log`) before it is acknowledged; each subscribing component
//! has its own position and delivery loop (`subscriber`); requests go to one subscriber and
//! are not stored (`request`); housekeeping trims what every subscriber is done with and
//! what retention lets go, and measures lag (`retention`); the admin API's view and replay of
//! dead letters are `status`. The bus learns which components subscribe from the registry;
//! components reach it through the [`Broker`] their Stores carry.

mod across;
mod log;
mod request;
mod retention;
mod state;
mod status;
mod subscriber;

pub(crate) use status::Status;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::breaker::{Breaker, Clock};
use crate::capabilities::keyvalue::Storage;
use crate::capabilities::messaging::{Broker, DEFAULT_CLIENT, Envelope, Error, Sender, Stage};
use crate::component::LoadedComponent;
use crate::config::Config;
use across::Across;
use log::{Log, Position, now_ms};
use state::{Inner, Running};
use subscriber::{AbortOnDrop, Subscriber, Target};

/// The bus, shared by every Store through [`Bus::broker`].
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl Bus {
    /// Opens the bus on `storage`: where the log ends, and where every known subscriber is.
    /// Starts its housekeeping, which ends with the bus.
    pub fn open(storage: Storage, config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let log = Log::new(storage);
        let last = log.last()?;
        // Until the registry loads them, the known subscribers count as removed from now on.
        let parked = log.positions()?.into_iter().map(|(name, p)| (name, Position { removed_ms: Some(now_ms()), ..p }));
        let parked = parked.collect();
        let stored_bytes = retention::stored_bytes(&log)?;
        let inner = Arc::new(Inner {
            log,
            config,
            clock,
            published: watch::Sender::new(last),
            running: Mutex::default(),
            parked: Mutex::new(parked),
            topics: Mutex::default(),
            stored_bytes: AtomicU64::new(stored_bytes),
            across: OnceLock::new(),
        });
        tokio::spawn(retention::keep(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Carries every message over the cluster's JetStream (see `across`) instead of this
    /// host's log; called once, before any component is loaded.
    pub fn carry_across(&self, client: async_nats::Client, cluster: &str) {
        let retention = &self.inner.config.messaging.retention;
        let across = Across::new(client, cluster, (retention.max_age, retention.max_mib.saturating_mul(1 << 20)));
        let _ = self.inner.across.set(Arc::new(across));
    }

    /// What a component's Stores send through. It does not keep the bus alive.
    pub(crate) fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(Handle(Arc::downgrade(&self.inner)))
    }

    /// Brings the subscribers in line with the loaded `components`: a new subscriber starts
    /// where it stopped if it was here within `subscriber_retention`, else with what is
    /// published from now on; a replaced one keeps its position and delivers to its
    /// successor; a removed one stops, and its position is kept.
    pub(crate) fn sync(&self, components: &BTreeMap<String, Arc<LoadedComponent>>) {
        let inner = &self.inner;
        let mut running = inner.running.lock().unwrap();
        let subscribing = components.iter().filter(|(_, c)| c.receives_messages() && !c.subscriptions.is_empty());
        let mut present = Vec::new();
        for (name, component) in subscribing {
            present.push(name.clone());
            let target = Target { component: component.clone(), patterns: component.subscriptions.clone() };
            if let Some(already) = running.get(name) {
                // In cluster mode a consumer filters on the topics: new ones mean taking
                // messages again, with the consumer updated (what was under way is redelivered).
                let refilter =
                    inner.across.get().is_some() && already.subscriber.target.load().patterns != target.patterns;
                if !refilter {
                    already.subscriber.target.store(Arc::new(target));
                    continue;
                }
                running.remove(name);
            }
            let cursor = inner.resume(name);
            let subscriber = Arc::new(Subscriber {
                name: Arc::from(name.as_str()),
                target: ArcSwap::from_pointee(target),
                settings: inner.config.messaging_for(name),
                breaker: Breaker::new(inner.config.breaker.clone(), inner.clock.clone()),
                cursor: AtomicU64::new(cursor),
                log: inner.log.clone(),
                pending_across: AtomicU64::new(0),
            });
            let task = match inner.across.get() {
                Some(across) => tokio::spawn(across.clone().deliver(subscriber.clone())),
                None => tokio::spawn(subscriber.clone().run(inner.published.subscribe())),
            };
            tracing::info!(subscriber = %name, after = cursor, "subscriber started");
            running.insert(name.clone(), Running { subscriber, _task: AbortOnDrop(task) });
        }
        let gone: Vec<String> = running.keys().filter(|n| !present.contains(n)).cloned().collect();
        for name in gone {
            let Some(stopped) = running.remove(&name) else { continue };
            if inner.across.get().is_some() {
                // Its durable consumer keeps its place, for every host.
                tracing::info!(subscriber = %name, "subscriber stopped");
                continue;
            }
            let position = Position {
                cursor: stopped.subscriber.cursor.load(Ordering::Relaxed),
                topics: stopped.subscriber.target.load().patterns.clone(),
                removed_ms: Some(now_ms()),
            };
            let at = position.cursor;
            inner.parked.lock().unwrap().insert(name.clone(), position.clone());
            let log = inner.log.clone();
            tokio::spawn(async move {
                if let Err(e) = log.save_position(&name, &position).await {
                    tracing::warn!(subscriber = %name, error = %e, "cannot save the removed subscriber's position");
                }
            });
            tracing::info!(subscriber = %stopped.subscriber.name, at, "subscriber stopped");
        }
    }
}

/// A component's way to the bus.
struct Handle(Weak<Inner>);

impl Handle {
    fn bus(&self) -> Result<Arc<Inner>, Error> {
        self.0.upgrade().ok_or_else(|| Error::Connection("the host is shutting down".into()))
    }
}

impl Broker for Handle {
    fn knows(&self, client: &str) -> bool {
        client == DEFAULT_CLIENT
    }

    fn publish(&self, from: Sender, topic: String, message: Envelope) -> BoxFuture<'static, Result<(), Error>> {
        let bus = self.bus();
        Box::pin(async move { bus?.publish(from, topic, message).await })
    }

    fn request(
        &self,
        from: Sender,
        topic: String,
        message: Envelope,
        timeout: Duration,
        expected: u32,
    ) -> BoxFuture<'static, Result<Vec<Envelope>, Error>> {
        let bus = self.bus();
        Box::pin(async move { request::send(&*bus?, from, topic, message, timeout, expected).await })
    }

    fn stage(&self, from: Sender, messages: Vec<(String, Envelope)>) -> Result<Stage, Error> {
        Ok(self.bus()?.stage(from, messages))
    }
}
