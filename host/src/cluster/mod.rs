//! Cluster mode: several hosts over NATS with JetStream forming one system. This module owns
//! the connection, the directory of what every host runs (a JetStream key-value bucket, one
//! entry per host, refreshed every heartbeat and watched by all: `directory`), calls to
//! components on other hosts (`remote`), and answering other hosts' calls to the components
//! loaded here (`answer`), both in the wire form of `wire`. Which link goes to another host
//! is the registry's decision, from [`Cluster::providers`].

mod answer;
mod directory;
mod host_id;
mod remote;
mod wire;

pub use directory::{ComponentRecord, HostRecord, RemoteComponent, Replica};
pub(crate) use remote::RemoteCallee;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arc_swap::ArcSwap;
use async_nats::connection::State;
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use crate::capabilities::keyvalue::SharedStorage;
use crate::component::LoadedComponent;
use crate::discovery::Interface;
use crate::ops::metrics::METRICS;
use directory::Directory;
use host_id::default_host_id;

/// The directory's keys: `hosts.<host id>`.
const HOST_KEYS: &str = "hosts.";

/// The settings in force for this host.
#[derive(Debug, Clone)]
pub struct Settings {
    pub nats: Vec<String>,
    pub name: String,
    pub host_id: String,
    pub heartbeat: std::time::Duration,
    pub expiry: std::time::Duration,
    /// The HTTP address other hosts reach this one at.
    pub http: String,
}

/// A handle on this host's membership of the cluster; clones share it.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    settings: Settings,
    client: async_nats::Client,
    storage: SharedStorage,
    started_ms: u64,
    directory: Mutex<Directory>,
    /// The components loaded here, which answer other hosts' calls.
    local: ArcSwap<BTreeMap<String, Arc<LoadedComponent>>>,
    /// One task per local component taking its calls.
    serving: Mutex<BTreeMap<String, AbortHandle>>,
    callees: answer::Callees,
    bucket: Mutex<Option<kv::Store>>,
    /// Why the directory bucket is not open yet, while it is not.
    bucket_error: Mutex<Option<String>>,
    /// Counts changes to what other hosts provide; the registry relinks on each.
    changes: watch::Sender<u64>,
    /// Wakes the heartbeat early, when what this host runs changed.
    announce: Notify,
}

impl Cluster {
    /// Connects to the NATS servers (in the background: an unreachable server is retried, and
    /// readiness says so meanwhile) and starts announcing this host and watching the others.
    pub async fn join(config: &crate::config::Cluster, http: String) -> anyhow::Result<Self> {
        config.check().map_err(anyhow::Error::msg)?;
        let host_id = config.host_id.clone().unwrap_or_else(default_host_id);
        let settings = Settings {
            nats: config.nats.clone(),
            name: config.name.clone(),
            host_id: host_id.clone(),
            heartbeat: config.heartbeat,
            expiry: config.expiry(),
            http: config.advertise.clone().unwrap_or(http),
        };
        let servers = settings
            .nats
            .iter()
            .map(|url| {
                url.parse::<async_nats::ServerAddr>().with_context(|| format!("invalid NATS server URL {url:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("trellis {host_id}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(servers)
            .await
            .with_context(|| format!("cannot use the NATS servers {}", settings.nats.join(",")))?;
        let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let storage = SharedStorage::new(client.clone(), &settings.name);
        let cluster = Cluster(Arc::new(Inner {
            settings,
            client,
            storage,
            started_ms,
            directory: Mutex::default(),
            local: ArcSwap::default(),
            serving: Mutex::default(),
            callees: answer::Callees::default(),
            bucket: Mutex::default(),
            bucket_error: Mutex::new(Some("connecting to NATS".to_string())),
            changes: watch::Sender::new(0),
            announce: Notify::new(),
        }));
        tokio::spawn(cluster.clone().run());
        tracing::info!(cluster = config.name, host = host_id, nats = config.nats.join(","), "joining the cluster");
        Ok(cluster)
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn host_id(&self) -> &str {
        &self.0.settings.host_id
    }

    /// The components' data, shared by the cluster's hosts (`[storage] backend = "nats"`).
    pub(crate) fn storage(&self) -> &SharedStorage {
        &self.0.storage
    }

    /// The connection to NATS, for what else runs on it (the events' stream).
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.0.client
    }

    fn connected(&self) -> bool {
        self.0.client.connection_state() == State::Connected
    }

    /// Follows the loaded set: its components take other hosts' calls, and the directory
    /// hears of the change at once rather than at the next heartbeat.
    pub(crate) fn sync(&self, components: &BTreeMap<String, Arc<LoadedComponent>>) {
        self.0.local.store(Arc::new(components.clone()));
        self.0.callees.clear();
        let mut serving = self.0.serving.lock().unwrap();
        serving.retain(|name, task| components.contains_key(name) || (task.abort(), false).1);
        for name in components.keys().filter(|name| !serving.contains_key(*name)).cloned().collect::<Vec<_>>() {
            let task = tokio::spawn(answer::serve(self.clone(), name.clone()));
            serving.insert(name, task.abort_handle());
        }
        self.0.announce.notify_one();
    }

    fn callees(&self) -> &answer::Callees {
        &self.0.callees
    }

    fn local(&self, name: &str) -> Option<Arc<LoadedComponent>> {
        self.0.local.load().get(name).cloned()
    }

    /// The components other hosts run, for linking.
    pub(crate) fn providers(&self) -> Vec<RemoteComponent> {
        self.0.directory.lock().unwrap().components()
    }

    /// The hosts other than this one that run component `name`.
    pub(crate) fn hosts_of(&self, name: &str) -> Vec<String> {
        self.0.directory.lock().unwrap().hosts_of(name)
    }

    /// A callee for `import`, served by `component`'s `export` on other hosts.
    pub(crate) fn callee(&self, component: &str, export: &str, import: &Interface) -> Option<RemoteCallee> {
        RemoteCallee::new(self.clone(), component, export, import)
    }

    /// Ticks each time what other hosts provide changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    /// What keeps this host from taking part in the cluster, for readiness.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.connected() {
            let servers = self.0.settings.nats.join(",");
            problems.push(format!("cluster: not connected to the NATS servers {servers}"));
        } else if let Some(why) = self.0.bucket_error.lock().unwrap().clone() {
            problems.push(format!("cluster: the directory is not available: {why}"));
        }
        problems
    }

    /// This host's view of the cluster.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let this = self.record();
        let mut hosts = vec![HostStatus { record: this, this_host: true, last_seen_ms: 0 }];
        let others = self.0.directory.lock().unwrap().hosts(now);
        hosts.extend(others.into_iter().map(|(record, ago)| HostStatus {
            record,
            this_host: false,
            last_seen_ms: ago.as_millis() as u64,
        }));
        Status {
            name: self.0.settings.name.clone(),
            host: self.0.settings.host_id.clone(),
            nats: self.0.settings.nats.clone(),
            connected: self.connected(),
            hosts,
        }
    }

    /// Takes this host out of the directory at once (a clean shutdown), so no other host
    /// sends it calls while it drains.
    /// Bounded: without NATS, the others see this host expire instead.
    pub async fn leave(&self) {
        let bucket = self.0.bucket.lock().unwrap().clone();
        let Some(bucket) = bucket.filter(|_| self.connected()) else { return };
        let key = format!("{HOST_KEYS}{}", self.host_id());
        let leave = async {
            bucket.delete(key).await.map_err(|e| e.to_string())?;
            self.0.client.flush().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.0.settings.heartbeat, leave).await {
            Ok(Ok(())) => tracing::info!("left the cluster"),
            Ok(Err(e)) => tracing::warn!(error = e, "cannot remove this host from the cluster directory"),
            Err(_) => tracing::warn!("cannot remove this host from the cluster directory in time"),
        }
    }

    /// This host's own entry.
    fn record(&self) -> HostRecord {
        HostRecord {
            host: self.0.settings.host_id.clone(),
            http: self.0.settings.http.clone(),
            started_ms: self.0.started_ms,
            components: self.0.local.load().values().map(|c| ComponentRecord::of(c)).collect(),
        }
    }

    /// Opens the directory, then keeps this host's entry fresh and the other hosts' current.
    async fn run(self) {
        let bucket = loop {
            match self.open_bucket().await {
                Ok(bucket) => break bucket,
                Err(e) => {
                    *self.0.bucket_error.lock().unwrap() = Some(format!("{e:#}"));
                    tokio::time::sleep(self.0.settings.heartbeat).await;
                }
            }
        };
        *self.0.bucket.lock().unwrap() = Some(bucket.clone());
        *self.0.bucket_error.lock().unwrap() = None;
        tokio::spawn(self.clone().watch(bucket.clone()));
        let key = format!("{HOST_KEYS}{}", self.host_id());
        let mut tick = tokio::time::interval(self.0.settings.heartbeat);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.0.announce.notified() => {}
            }
            METRICS.nats_connected.set(i64::from(self.connected()));
            let record = serde_json::to_vec(&self.record()).expect("a host record serializes");
            if let Err(e) = bucket.put(&key, record.into()).await {
                tracing::debug!(error = %e, "cannot refresh this host's directory entry");
                // NATS may have come back without the bucket (it is kept in memory): the next
                // heartbeat writes into a new one.
                if self.connected()
                    && let Err(e) = self.open_bucket().await
                {
                    tracing::debug!(error = %e, "cannot open the directory again");
                }
            }
            let gone = self.0.directory.lock().unwrap().expire(Instant::now(), self.0.settings.expiry);
            for host in &gone {
                tracing::warn!(host, "host left the cluster: no heartbeat within its expiry");
            }
            if !gone.is_empty() {
                self.0.changes.send_modify(|n| *n += 1);
            }
        }
    }

    /// The directory bucket, created by the first host that needs it: replicated on three
    /// NATS servers when there are as many, in memory (every entry is rewritten each heartbeat).
    async fn open_bucket(&self) -> anyhow::Result<kv::Store> {
        let js = jetstream::new(self.0.client.clone());
        let bucket = format!("trellis-{}-directory", self.0.settings.name);
        if let Ok(store) = js.get_key_value(&bucket).await {
            return Ok(store);
        }
        let config = |num_replicas| kv::Config {
            bucket: bucket.clone(),
            description: "Trellis cluster directory: what each host runs".to_string(),
            history: 1,
            max_age: self.0.settings.expiry * 4,
            storage: jetstream::stream::StorageType::Memory,
            num_replicas,
            ..Default::default()
        };
        match js.create_key_value(config(3)).await {
            Ok(store) => Ok(store),
            Err(_) => js.create_key_value(config(1)).await.context("cannot create the directory bucket"),
        }
    }

    /// Follows the other hosts' entries, starting from what the bucket holds.
    async fn watch(self, bucket: kv::Store) {
        loop {
            match bucket.watch_with_history(format!("{HOST_KEYS}>")).await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next().await {
                        match entry {
                            Ok(entry) => self.apply(entry),
                            Err(e) => {
                                tracing::debug!(error = %e, "the directory watch stopped");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot watch the directory"),
            }
            tokio::time::sleep(self.0.settings.heartbeat).await;
        }
    }

    fn apply(&self, entry: kv::Entry) {
        let Some(host) = entry.key.strip_prefix(HOST_KEYS) else { return };
        if host == self.host_id() {
            return;
        }
        let changed = match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<HostRecord>(&entry.value) {
                Ok(record) => {
                    let mut directory = self.0.directory.lock().unwrap();
                    let new = !directory.knows(host);
                    let changed = directory.put(record, Instant::now());
                    if new {
                        tracing::info!(host, "host joined the cluster");
                    }
                    changed
                }
                Err(e) => {
                    tracing::warn!(host, error = %e, "ignoring a directory entry that does not parse");
                    false
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                let left = self.0.directory.lock().unwrap().remove(host);
                if left {
                    tracing::info!(host, "host left the cluster");
                }
                left
            }
        };
        if changed {
            self.0.changes.send_modify(|n| *n += 1);
        }
    }
}

/// `GET /_trellis/cluster`: this host's view of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub host: String,
    pub nats: Vec<String>,
    pub connected: bool,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostStatus {
    #[serde(flatten)]
    pub record: HostRecord,
    pub this_host: bool,
    /// How long ago its entry was refreshed (0 for this host).
    pub last_seen_ms: u64,
}
