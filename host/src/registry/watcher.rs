//! Live drop-in: watches the components folder and brings the registry in line with it as
//! files are added, replaced and removed. Loading itself is the registry's job.
//!
//! A file is picked up when its writer closes it or when it is renamed into place; a file
//! that changes with neither (a platform without close events) is picked up once it has been
//! quiet for [`SETTLE`]. Only `*.wasm` names count, so temporary files are ignored until
//! renamed, and a half-written copy is never loaded while it is still being written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::Registry;
use super::folder::known_name;
use crate::ops::supervisor::Supervisor;

/// How long a file must be quiet before it is loaded when no close or rename says it is done.
pub(super) const SETTLE: Duration = Duration::from_secs(2);
/// Events for one file that arrive this close together are handled once.
const COALESCE: Duration = Duration::from_millis(50);

/// Keeps the watch alive; dropping it stops watching.
pub(crate) struct Watch {
    _watcher: RecommendedWatcher,
}

/// Starts watching `dir` and applying its changes to `registry`, under `supervisor`: if
/// applying a change fails, the task restarts and first catches up with the folder.
pub(crate) fn watch(registry: Arc<Registry>, dir: &Path, supervisor: &Arc<Supervisor>) -> anyhow::Result<Watch> {
    let (sender, events) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = sender.send(event);
    })
    .context("cannot watch the components folder")?;
    watcher.watch(dir, RecursiveMode::NonRecursive).with_context(|| format!("cannot watch {}", dir.display()))?;
    // A restarted task takes the same stream of events over.
    let events = Arc::new(tokio::sync::Mutex::new(events));
    let dir = dir.to_path_buf();
    supervisor.spawn("watcher", move |restarts| {
        let (registry, events, dir) = (registry.clone(), events.clone(), dir.clone());
        async move {
            if restarts > 0
                && let Err(e) = registry.catch_up(&dir).await
            {
                tracing::warn!(error = format!("{e:#}"), "cannot rescan the components folder");
            }
            apply(&registry, &mut *events.lock().await).await;
        }
    });
    Ok(Watch { _watcher: watcher })
}

/// Applies the folder's changes to the registry as they come, until watching stops.
async fn apply(registry: &Registry, events: &mut UnboundedReceiver<notify::Result<notify::Event>>) {
    // When each changed file is next due to be looked at.
    let mut due: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            event = events.recv() => match event {
                Some(Ok(event)) => schedule(&mut due, &event),
                Some(Err(e)) => tracing::warn!(error = %e, "watching the components folder failed"),
                None => return,
            },
            () = sleep_until(next) => {
                let now = Instant::now();
                let ready: Vec<PathBuf> = due.iter().filter(|(_, at)| **at <= now).map(|(p, _)| p.clone()).collect();
                for path in ready {
                    due.remove(&path);
                    registry.sync_file(&path).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Decides when to look at each file an event names.
fn schedule(due: &mut HashMap<PathBuf, Instant>, event: &notify::Event) {
    let finished = matches!(
        event.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Remove(_)
    );
    let wait = if finished { COALESCE } else { SETTLE };
    for path in event.paths.iter().filter(|p| known_name(p).is_some()) {
        let at = Instant::now() + wait;
        match due.get_mut(path) {
            // A finished file is looked at soon; a file still being written waits to settle.
            Some(current) if finished => *current = (*current).min(at),
            Some(current) => *current = at.max(*current),
            None => {
                due.insert(path.clone(), at);
            }
        }
    }
}
