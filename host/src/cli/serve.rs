//! `trellis serve`, the composition root: reads the settings, binds both listeners (writing the
//! bound addresses to the data folder), joins the cluster when one is configured, builds the
//! engine, storage and registry, loads the components folder in the background while already
//! serving, and runs until Ctrl-C or SIGTERM; then it leaves the cluster and drains for up to
//! the shutdown timeout (a second signal exits at once).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::net::TcpListener;

use super::ServeArgs;
use crate::breaker::{Clock, SystemClock};
use crate::capabilities::keyvalue::Storage;
use crate::cluster::Cluster;
use crate::config::{Config, Settings, StorageBackend};
use crate::events::Bus;
use crate::http::forward::Forwarder;
use crate::http::listener::{self, Services};
use crate::ops::admin::Admin;
use crate::ops::endpoints::Endpoints;
use crate::ops::health::Health;
use crate::ops::supervisor::Supervisor;
use crate::policy::Policies;
use crate::registry::{self, Registry, Shared};
use crate::runtime::Engines;

/// The default config file, read when it exists.
const DEFAULT_CONFIG: &str = "trellis.toml";

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    crate::runtime::return_large_buffers();
    let mut config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
    };
    if !args.cluster.is_empty() {
        config.cluster.nats = args.cluster.clone();
    }
    if args.host_id.is_some() {
        config.cluster.host_id = args.host_id.clone();
    }
    if config.storage.backend == StorageBackend::Nats && !config.cluster.enabled() {
        bail!("[storage] backend = \"nats\" needs a cluster: name its NATS servers in [cluster] nats or --cluster");
    }
    // Policies are checked now: a missing secret or key file stops the start, naming it.
    let config_dir = args.config.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
    let policies = Policies::new(&config, config_dir).context("invalid edge policy")?;
    let mut flags = args.server;
    if args.no_watch {
        flags.watch = Some(false);
    }
    let settings = flags.resolve(&config.server);
    check_admin_exposure(&settings, args.insecure_admin)?;
    // A folder that cannot be read is a start-up error, not an empty host that looks ready.
    std::fs::read_dir(&settings.components)
        .with_context(|| format!("cannot read the components folder {}", settings.components.display()))?;
    let data = &settings.data;
    private_dir(data).with_context(|| format!("cannot create the data folder {}", data.display()))?;
    private_dir(&data.join("cache")).context("cannot create the compile cache folder")?;
    let bind = async |addr| TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"));
    let (public, admin) = (bind(settings.listen).await?, bind(settings.admin_listen).await?);
    let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
    let cluster = match config.cluster.enabled() {
        true => Some(Cluster::join(&config.cluster, public_addr.to_string()).await?),
        false => None,
    };
    let engines = Engines::new(&config, &data.join("cache"))?;
    let storage =
        Storage::open(&data.join("store.redb"), settings.storage_cache_bytes).context("cannot open the storage")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let bus = Bus::open(storage.clone(), config.clone(), clock.clone()).context("cannot open the events bus")?;
    if let Some(cluster) = &cluster {
        bus.carry_across(cluster.client().clone(), &config.cluster.name);
    }
    let shared = Arc::new(Shared { engines, config, storage: storage.clone(), clock, bus, cluster: cluster.clone() });
    let registry = Arc::new(Registry::new(shared));
    let draining = Arc::new(AtomicBool::new(false));
    let supervisor = Arc::new(Supervisor::default());
    let endpoints = Endpoints {
        health: Health {
            registry: registry.clone(),
            started: Instant::now(),
            draining: draining.clone(),
            supervisor: supervisor.clone(),
        },
        admin: Admin {
            registry: registry.clone(),
            components_dir: settings.components.clone(),
            token: settings.admin_token.clone(),
        },
    };
    let limits = settings.edge.clone();
    let forwarder = cluster.as_ref().map(|c| Forwarder::new(c.host_id().to_string()));
    let services = Arc::new(Services { endpoints, registry: registry.clone(), limits, draining, forwarder, policies });

    let watched = settings.watch.then(|| registry::watch(registry.clone(), &settings.components, &supervisor));
    let _watch = watched.transpose()?;
    write_addr(&data.join("listen.addr"), &public_addr.to_string())?;
    write_addr(&data.join("admin.addr"), &admin_addr.to_string())?;
    tracing::info!(%public_addr, %admin_addr, components = %settings.components.display(), "serving");
    // Liveness answers at once; readiness says "loading" until the first scan is done.
    let (loader, folder) = (registry.clone(), settings.components.clone());
    tokio::spawn(async move {
        match loader.rescan(&folder).await {
            Ok(()) => tracing::info!(components = loader.snapshot().components.len(), "components folder loaded"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot load the components folder"),
        }
    });
    // Warm instances a burst needed give their memory back once unused for a while.
    let trimmed = registry.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            trimmed.snapshot().components.values().for_each(|component| component.trim_idle());
        }
    });
    if let Some(cluster) = &cluster {
        // What other hosts provide changes the links here.
        let (mut changes, relinked) = (cluster.changes(), registry.clone());
        // Hosts heard of before this point count too.
        changes.mark_changed();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                relinked.relink().await;
            }
        });
    }
    let leaving = cluster.clone();
    let signal = async move {
        shutdown_signal().await;
        // Other hosts stop sending work here before the drain begins.
        if let Some(cluster) = leaving {
            cluster.leave().await;
        }
    };
    listener::run(services, public, admin, signal, settings.shutdown_timeout).await?;
    // Ids reserved and not given go back, so a clean restart continues without a gap.
    tokio::task::spawn_blocking(move || storage.release_sequences()).await?;
    Ok(())
}

/// An admin API reachable from other machines must ask for a token, unless the operator says
/// otherwise explicitly.
fn check_admin_exposure(settings: &Settings, insecure: bool) -> anyhow::Result<()> {
    let addr = settings.admin_listen;
    if addr.ip().is_loopback() || settings.admin_token.is_some() {
        return Ok(());
    }
    if insecure {
        tracing::warn!(%addr, "the admin API listens beyond loopback without a token (--insecure-admin)");
        return Ok(());
    }
    anyhow::bail!(
        "the admin API would listen on {addr}, which is not a loopback address, without a token: \
         set one with --admin-token, TRELLIS_ADMIN_TOKEN or `admin_token` in [server], \
         or pass --insecure-admin to serve it unprotected"
    )
}

/// Writes a file atomically, so a reader never sees it half-written.
fn write_addr(path: &Path, addr: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Resolves on the first SIGTERM or SIGINT; a second one ends the process at once.
async fn shutdown_signal() {
    let first = signal().await;
    tracing::info!(signal = first, "shutting down: draining requests in flight (signal again to stop at once)");
    tokio::spawn(async {
        let second = signal().await;
        tracing::warn!(signal = second, "second signal: stopping now");
        std::process::exit(1);
    });
}

/// The next SIGTERM or SIGINT, by name.
async fn signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

/// Creates a folder (and its parents) if missing, readable only by this user: the data and
/// the compiled code of every component are nobody else's to read.
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}
