//! `trellis serve`, the composition root: reads the settings, builds the engine, storage and
//! registry, binds both listeners (writing the bound addresses to the data folder), loads
//! the components folder in the background while already serving, and runs until Ctrl-C or
//! SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use super::ServeArgs;
use crate::breaker::SystemClock;
use crate::capabilities::keyvalue::Storage;
use crate::config::Config;
use crate::http::listener::{self, Services};
use crate::ops::admin::Admin;
use crate::ops::endpoints::Endpoints;
use crate::ops::health::Health;
use crate::registry::{self, Registry, Shared};
use crate::runtime::Runtime;

/// The default config file, read when it exists.
const DEFAULT_CONFIG: &str = "trellis.toml";

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
    };
    let mut flags = args.server;
    if args.no_watch {
        flags.watch = Some(false);
    }
    let settings = flags.resolve(&config.server);
    let data = &settings.data;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create the data folder {}", data.display()))?;
    let max_stack = config.limits.max_wasm_stack_kib * 1024;
    let runtime = Runtime::new(config.max_memory_bytes(), max_stack, &data.join("cache"))?;
    let storage = Storage::open(&data.join("store.redb")).context("cannot open the storage")?;
    let shared = Arc::new(Shared { engine: runtime.engine.clone(), config, storage, clock: Arc::new(SystemClock) });
    let registry = Arc::new(Registry::new(shared));
    let endpoints = Endpoints {
        health: Health { registry: registry.clone(), started: Instant::now() },
        admin: Admin {
            registry: registry.clone(),
            components_dir: settings.components.clone(),
            token: settings.admin_token.clone(),
        },
    };
    let services = Arc::new(Services { endpoints, registry: registry.clone() });

    let bind = async |addr| TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"));
    let (public, admin) = (bind(settings.listen).await?, bind(settings.admin_listen).await?);
    let _watch = if settings.watch { Some(registry::watch(registry.clone(), &settings.components)?) } else { None };
    let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
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
    listener::run(services, public, admin, shutdown_signal()).await?;
    drop(runtime);
    Ok(())
}

/// Writes a file atomically, so a reader never sees it half-written.
fn write_addr(path: &Path, addr: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
