//! The registry of loaded components: loading a file (`loader`), removing one, rescanning
//! the folder (`folder`, `watcher`), deciding and applying who provides each import
//! (`resolver`, `relink`), and the [`Snapshot`] that request routing and reports read.
//! Writers are serialized; readers get an immutable snapshot without locking.

mod folder;
mod loader;
mod relink;
mod resolver;
mod snapshot;
mod watcher;

pub(crate) use snapshot::{Failure, Remote, Snapshot};
pub(crate) use watcher::watch;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use futures::StreamExt;

use crate::breaker::Clock;
use crate::capabilities::keyvalue::Storage;
use crate::cluster::Cluster;
use crate::component::FileStamp;
use crate::config::Config;
use crate::events::Bus;
use crate::ops::escape::one_line;
use crate::ops::metrics::METRICS;
use crate::runtime::Engines;
use folder::Entry;

/// Files loaded at once by a scan: compiling is CPU-bound (two cores here), but a load can
/// also wait, for a guest's load-time export or a large file's read.
const CONCURRENT_LOADS: usize = 4;

/// What every loaded component shares.
pub struct Shared {
    pub engines: Engines,
    pub config: Config,
    pub storage: Storage,
    pub clock: Arc<dyn Clock>,
    /// Events between components: which components subscribe follows the loaded set.
    pub bus: Bus,
    /// The other hosts, in cluster mode: what they run links imports nothing here provides.
    pub cluster: Option<Cluster>,
}

pub struct Registry {
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<()>,
    snapshot: ArcSwap<Snapshot>,
    /// True until the first scan of the components folder has finished.
    loading: AtomicBool,
}

impl Registry {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            writer: tokio::sync::Mutex::new(()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            loading: AtomicBool::new(true),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The events bus.
    pub(crate) fn bus(&self) -> &Bus {
        &self.shared.bus
    }

    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The cluster this host belongs to, if any.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.shared.cluster.as_ref()
    }

    /// Makes `next` the loaded set; the bus's subscribers and the cluster directory follow it.
    fn publish(&self, next: Snapshot) {
        self.shared.bus.sync(&next.components);
        if let Some(cluster) = &self.shared.cluster {
            cluster.sync(&next.components);
        }
        self.snapshot.store(Arc::new(next));
    }

    /// Points every link again and takes the other hosts' routes, after what other hosts
    /// provide changed.
    pub async fn relink(&self) {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        next.remote = Remote::of(self.shared.cluster.as_ref().map(Cluster::providers).unwrap_or_default());
        self.relink_all(&next.components);
        self.snapshot.store(Arc::new(next));
    }

    fn relink_all(&self, components: &relink::Components) {
        let shared = &self.shared;
        let cluster = shared.cluster.as_ref();
        relink::relink(components, &shared.config.providers, &shared.config.breaker, &shared.clock, cluster);
    }

    /// Whether the first scan of the folder is still under way.
    pub fn loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed)
    }

    /// Brings the registry in line with `dir`: loads new and changed `*.wasm` files (directly
    /// in it, in name order) and removes components whose file is gone. A file that fails is
    /// reported and skipped; the others are served. The first rescan ends the loading phase.
    pub async fn rescan(&self, dir: &Path) -> anyhow::Result<()> {
        let result = self.catch_up(dir).await;
        self.loading.store(false, Ordering::Relaxed);
        result
    }

    /// Brings the registry in line with `dir`, as [`Registry::rescan`] does, without ending
    /// the loading phase: for a watcher that restarts and may have missed changes.
    pub(crate) async fn catch_up(&self, dir: &Path) -> anyhow::Result<()> {
        let files = folder::component_files(dir)?;
        let present: Vec<String> = files.iter().filter_map(|p| folder::known_name(p)).collect();
        let snapshot = self.snapshot();
        let gone = snapshot.components.keys().chain(snapshot.failures.keys()).filter(|n| !present.contains(n));
        for name in gone.cloned().collect::<Vec<_>>() {
            self.remove(&name).await;
        }
        // Files load side by side: one that is slow to load (a large one, or a guest stalling
        // at load time) does not hold the others back.
        futures::stream::iter(&files).for_each_concurrent(CONCURRENT_LOADS, |path| self.sync_file(path)).await;
        for component in self.snapshot().components.values() {
            for (import, why) in component.unresolved() {
                tracing::warn!(caller = &*component.name, import, reason = %why, "import unresolved");
            }
        }
        Ok(())
    }

    /// Loads `path` if it is new or changed since it was last loaded (or refused), removes its
    /// component if the file is gone, and does nothing otherwise. A file whose name cannot
    /// name a component is refused without being read.
    pub async fn sync_file(&self, path: &Path) {
        let (name, refusal) = match folder::entry(path) {
            Entry::Component(name) => (name, None),
            Entry::Refused { name, why } => (name, Some(why)),
            Entry::Other => return,
        };
        let Some(stamp) = FileStamp::of(path) else {
            self.remove(&name).await;
            return;
        };
        let snapshot = self.snapshot();
        let loaded = snapshot.components.get(&name).is_some_and(|c| c.stamp == stamp);
        let refused = snapshot.failures.get(&name).is_some_and(|f| f.stamp == stamp);
        if loaded || refused {
            return;
        }
        // A failure is logged and recorded in the snapshot; what was serving keeps serving.
        match refusal {
            Some(why) => {
                let _writer = self.writer.lock().await;
                self.fail(&name, path, stamp, why);
            }
            None => {
                let _ = self.load_file(&name, path, stamp).await;
            }
        }
    }

    /// Loads (or replaces) component `name` from `path`, as it was at `stamp`. On failure the
    /// error is logged and recorded, and whatever was serving under that name keeps serving.
    async fn load_file(&self, name: &str, path: &Path, stamp: FileStamp) -> Result<(), String> {
        let started = Instant::now();
        let shared = &self.shared;
        // Compiling, instantiating and asking the component for its routes happen outside the
        // writer lock: nothing a guest does while loading holds up other loads or removals.
        let prepared = loader::prepare(shared, name, path, stamp).await;
        let _writer = self.writer.lock().await;
        let loaded = match prepared {
            Ok(loaded) => Arc::new(loaded),
            Err(e) => return Err(self.fail(name, path, stamp, format!("{e:#}"))),
        };
        let mut next = (*self.snapshot()).clone();
        next.router.remove(name);
        if let Err(conflict) = next.router.add(loaded.routes.clone()) {
            return Err(self.fail(name, path, stamp, conflict));
        }
        if let Some(old) = next.components.insert(name.to_string(), loaded.clone())
            && let Err(why) = relink::check_replacement(&old, &loaded, &next.components, &shared.config.providers)
        {
            let why = format!("replacement refused, the previous version keeps serving: {why}");
            return Err(self.fail(name, path, stamp, why));
        }
        next.failures.remove(name);
        self.relink_all(&next.components);
        METRICS.record_load(name, "loaded");
        tracing::info!(
            component = %name,
            ?path,
            routes = loaded.routes.len(),
            topics = loaded.subscriptions.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "component loaded"
        );
        self.publish(next);
        Ok(())
    }

    /// Unloads a component: its routes go, and links to what it provided become unresolved.
    pub async fn remove(&self, name: &str) -> bool {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let removed = next.components.remove(name).is_some() | next.failures.remove(name).is_some();
        next.router.remove(name);
        self.relink_all(&next.components);
        self.publish(next);
        if removed {
            METRICS.record_load(name, "removed");
            tracing::info!(component = name, "component removed");
        }
        removed
    }

    /// Records a file that failed; returns the error. The caller holds the writer lock.
    fn fail(&self, name: &str, path: &Path, stamp: FileStamp, error: String) -> String {
        METRICS.record_load(name, "failed");
        // Debug formatting escapes what a file name could use to forge a log line.
        tracing::error!(component = name, ?path, error = %one_line(&error), "component refused");
        let mut next = (*self.snapshot()).clone();
        let failure = Failure { name: name.to_string(), path: path.to_path_buf(), error: error.clone(), stamp };
        next.failures.insert(name.to_string(), failure);
        self.snapshot.store(Arc::new(next));
        error
    }
}
