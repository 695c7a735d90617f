//! `trellis serve`: builds the engine, storage and registry, loads the components folder,
//! binds both listeners (writing the bound addresses to the data folder) and serves until
//! Ctrl-C or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::breaker::SystemClock;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::engine::Runtime;
use crate::keyvalue::Storage;
use crate::registry::{Registry, Shared};
use crate::server::{self, App};
use crate::watcher;

/// The default config file, read when it exists.
const DEFAULT_CONFIG: &str = "trellis.toml";

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
    };
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    let max_stack = config.limits.max_wasm_stack_kib * 1024;
    let runtime = Runtime::new(config.max_memory_bytes(), max_stack, &args.data.join("cache"))?;
    let storage = Storage::open(&args.data.join("store.redb")).context("cannot open the storage")?;
    let shared = Arc::new(Shared { engine: runtime.engine.clone(), config, storage, clock: Arc::new(SystemClock) });
    let registry = Arc::new(Registry::new(shared));
    let app =
        Arc::new(App { registry: registry.clone(), components_dir: args.components.clone(), started: Instant::now() });

    let public = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let admin = TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.admin_listen))?;
    let _watch = if args.no_watch { None } else { Some(watcher::watch(registry.clone(), &args.components)?) };
    app.registry.rescan(&args.components).await?;
    let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
    write_addr(&args.data.join("listen.addr"), &public_addr.to_string())?;
    write_addr(&args.data.join("admin.addr"), &admin_addr.to_string())?;
    tracing::info!(%public_addr, %admin_addr, components = %args.components.display(), "serving");
    server::run(app, public, admin, shutdown_signal()).await?;
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
