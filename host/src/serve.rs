//! `trellis serve`: builds the engine, storage and registry, loads the components folder,
//! binds both listeners (writing the bound addresses to the data folder) and serves until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// Where and how to serve: flags over the config file over the defaults.
struct Settings {
    components: PathBuf,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    data: PathBuf,
    admin_token: Option<String>,
    watch: bool,
}

impl Settings {
    fn resolve(args: &ServeArgs, file: &crate::config::Server) -> Self {
        Self {
            components: args.components.clone().or_else(|| file.components.clone()).unwrap_or_else(|| "./dist".into()),
            listen: args.listen.or(file.listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: args.admin_listen.or(file.admin_listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081))),
            data: args.data.clone().or_else(|| file.data.clone()).unwrap_or_else(|| "./.trellis".into()),
            admin_token: args.admin_token.clone().or_else(|| file.admin_token.clone()).filter(|t| !t.is_empty()),
            watch: !args.no_watch && file.watch.unwrap_or(true),
        }
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
    };
    let settings = Settings::resolve(&args, &config.server);
    let data = &settings.data;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create the data folder {}", data.display()))?;
    let max_stack = config.limits.max_wasm_stack_kib * 1024;
    let runtime = Runtime::new(config.max_memory_bytes(), max_stack, &data.join("cache"))?;
    let storage = Storage::open(&data.join("store.redb")).context("cannot open the storage")?;
    let shared = Arc::new(Shared { engine: runtime.engine.clone(), config, storage, clock: Arc::new(SystemClock) });
    let registry = Arc::new(Registry::new(shared));
    let app = Arc::new(App {
        registry: registry.clone(),
        components_dir: settings.components.clone(),
        admin_token: settings.admin_token.clone(),
        started: Instant::now(),
    });

    let bind =
        async |addr: SocketAddr| TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"));
    let (public, admin) = (bind(settings.listen).await?, bind(settings.admin_listen).await?);
    let _watch = if settings.watch { Some(watcher::watch(registry.clone(), &settings.components)?) } else { None };
    app.registry.rescan(&settings.components).await?;
    let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
    write_addr(&data.join("listen.addr"), &public_addr.to_string())?;
    write_addr(&data.join("admin.addr"), &admin_addr.to_string())?;
    tracing::info!(%public_addr, %admin_addr, components = %settings.components.display(), "serving");
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
