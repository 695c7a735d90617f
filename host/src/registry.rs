//! The registry of loaded components: loading a file (validate, compile, link, routes),
//! removing one, rescanning the folder, and the snapshot that request routing reads. Writers
//! are serialized; readers get an immutable [`Snapshot`] without locking. Who provides each
//! import is decided in [`crate::resolver`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use wasmtime::component::{Component, Linker, Val};

use crate::breaker::Clock;
use crate::config::Config;
use crate::discovery::{Description, ROUTES_INTERFACE};
use crate::keyvalue::{Namespace, Storage};
use crate::link::Link;
use crate::loaded::{LoadedComponent, Parts};
use crate::metrics::METRICS;
use crate::router::{Pattern, Route, Router};
use crate::state::{CallContext, HostState};

/// How long a component's `routes` export may take when it is loaded.
const ROUTES_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every part of the host shares.
pub struct Shared {
    pub engine: wasmtime::Engine,
    pub config: Config,
    pub storage: Storage,
    pub clock: Arc<dyn Clock>,
}

/// A file that could not be loaded, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub name: String,
    pub path: PathBuf,
    pub error: String,
    /// The file as it was when it failed, so a rescan retries it only once it changes.
    #[serde(skip)]
    pub stamp: FileStamp,
}

/// What tells one version of a file from the next without reading it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(Self { len: meta.len(), modified: meta.modified().ok() })
    }
}

/// What request routing and reports read: immutable, swapped whole on every change.
#[derive(Default)]
pub struct Snapshot {
    pub router: Router,
    pub components: BTreeMap<String, Arc<LoadedComponent>>,
    pub failures: BTreeMap<String, Failure>,
}

pub struct Registry {
    pub shared: Arc<Shared>,
    writer: tokio::sync::Mutex<()>,
    snapshot: ArcSwap<Snapshot>,
}

/// A component's name: its file name without `.wasm`.
pub fn component_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let name = file.strip_suffix(".wasm")?;
    (!name.is_empty() && !name.starts_with('.')).then(|| name.to_string())
}

impl Registry {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared, writer: tokio::sync::Mutex::new(()), snapshot: ArcSwap::from_pointee(Snapshot::default()) }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Brings the registry in line with `dir`: loads new and changed `*.wasm` files (directly
    /// in it, in name order) and removes components whose file is gone. A file that fails is
    /// reported and skipped; the others are served.
    pub async fn rescan(&self, dir: &Path) -> anyhow::Result<()> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the components folder {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file() && component_name(path).is_some())
            .collect();
        files.sort();
        let present: Vec<String> = files.iter().filter_map(|p| component_name(p)).collect();
        let snapshot = self.snapshot();
        let gone = snapshot.components.keys().chain(snapshot.failures.keys()).filter(|n| !present.contains(n));
        for name in gone.cloned().collect::<Vec<_>>() {
            self.remove(&name).await;
        }
        for path in files {
            self.sync_file(&path).await;
        }
        for component in self.snapshot().components.values() {
            for link in &component.links {
                if let Some(why) = link.unresolved_reason() {
                    tracing::warn!(caller = &*component.name, import = %link.interface.full_name, reason = %why, "import unresolved");
                }
            }
        }
        Ok(())
    }

    /// Loads `path` if it is new or changed since it was last loaded (or refused), removes its
    /// component if the file is gone, and does nothing otherwise.
    pub async fn sync_file(&self, path: &Path) {
        let Some(name) = component_name(path) else { return };
        let Some(stamp) = FileStamp::of(path) else {
            self.remove(&name).await;
            return;
        };
        let snapshot = self.snapshot();
        let loaded = snapshot.components.get(&name).is_some_and(|c| c.stamp == stamp);
        let refused = snapshot.failures.get(&name).is_some_and(|f| f.stamp == stamp);
        if !loaded && !refused {
            // A failure is logged and recorded in the snapshot; what was serving keeps serving.
            let _ = self.load_file(&name, path, stamp).await;
        }
    }

    /// Loads (or replaces) component `name` from `path`, as it was at `stamp`. On failure the
    /// error is logged and recorded, and whatever was serving under that name keeps serving.
    async fn load_file(&self, name: &str, path: &Path, stamp: FileStamp) -> Result<(), String> {
        let _writer = self.writer.lock().await;
        let started = Instant::now();
        let loaded = match self.prepare(name, path, stamp).await {
            Ok(loaded) => loaded,
            Err(e) => return Err(self.fail(name, path, stamp, format!("{e:#}"))),
        };
        let current = self.snapshot();
        let mut router = Router::default();
        for other in current.components.values().filter(|c| *c.name != *name) {
            router.add(other.routes.clone()).expect("routes already in the table do not conflict");
        }
        if let Err(conflict) = router.add(loaded.routes.clone()) {
            return Err(self.fail(name, path, stamp, conflict));
        }
        let loaded = Arc::new(loaded);
        let mut components = current.components.clone();
        let replaced = components.insert(name.to_string(), loaded.clone());
        if let Some(old) = replaced
            && let Err(why) = self.check_replacement(&old, &loaded, &components)
        {
            return Err(self.fail(
                name,
                path,
                stamp,
                format!("replacement refused, the previous version keeps serving: {why}"),
            ));
        }
        let mut failures = current.failures.clone();
        failures.remove(name);
        self.resolve(&components);
        METRICS.record_load(name, "loaded");
        tracing::info!(
            component = %name,
            path = %path.display(),
            routes = loaded.routes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "component loaded"
        );
        self.snapshot.store(Arc::new(Snapshot { router, components, failures }));
        Ok(())
    }

    /// Unloads a component: its routes go, and links to what it provided become unresolved.
    pub async fn remove(&self, name: &str) -> bool {
        let _writer = self.writer.lock().await;
        let current = self.snapshot();
        let mut components = current.components.clone();
        let mut failures = current.failures.clone();
        let removed = components.remove(name).is_some() | failures.remove(name).is_some();
        let mut router = current.router.clone();
        router.remove(name);
        self.resolve(&components);
        self.snapshot.store(Arc::new(Snapshot { router, components, failures }));
        if removed {
            METRICS.record_load(name, "removed");
            tracing::info!(component = name, "component removed");
        }
        removed
    }

    fn fail(&self, name: &str, path: &Path, stamp: FileStamp, error: String) -> String {
        METRICS.record_load(name, "failed");
        tracing::error!(component = name, path = %path.display(), %error, "component refused");
        let current = self.snapshot();
        let mut failures = current.failures.clone();
        let failure = Failure { name: name.to_string(), path: path.to_path_buf(), error: error.clone(), stamp };
        failures.insert(name.to_string(), failure);
        self.snapshot.store(Arc::new(Snapshot {
            router: current.router.clone(),
            components: current.components.clone(),
            failures,
        }));
        error
    }

    /// Validates, compiles and links one file, and reads its routes.
    async fn prepare(&self, name: &str, path: &Path, stamp: FileStamp) -> anyhow::Result<LoadedComponent> {
        let shared = &self.shared;
        let bytes = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
        if wasmparser::Parser::is_core_wasm(&bytes) {
            bail!(
                "{} is a core WebAssembly module, not a component (build it for wasm32-wasip2, or wrap it with `wasm-tools component new`)",
                path.display()
            );
        }
        if !wasmparser::Parser::is_component(&bytes) {
            bail!("{} is not a WebAssembly component (it does not start with the component header)", path.display());
        }
        let engine = shared.engine.clone();
        let digest = fingerprint(&bytes);
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await?
            .map_err(|e| anyhow::anyhow!("{} is not a valid component: {e:#}", path.display()))?;
        let description = Description::of(&component, &shared.engine);
        if let Some(other) = description.other_imports.first() {
            bail!("it imports `{other}`, which is not an interface; Trellis links only interfaces");
        }
        let name: Arc<str> = Arc::from(name);
        let mut links = Vec::new();
        for import in description.component_imports() {
            if let Some(why) = import.unlinkable() {
                bail!("its import {} cannot be linked: {why}", import.full_name);
            }
            links.push(Link::new(name.clone(), import.clone(), shared.config.limits.max_call_depth));
        }
        let linker = host_linker(&shared.engine, &links).map_err(anyhow::Error::from)?;
        let pre = linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("cannot link it: {e:#}"))?;
        let mut loaded = LoadedComponent::new(Parts {
            name: name.clone(),
            path: path.to_path_buf(),
            stamp,
            digest,
            description,
            links,
            pre,
            namespace: Namespace::new(shared.storage.clone(), name.clone()),
            limits: shared.config.limits_for(&name),
        })
        .map_err(anyhow::Error::from)?;
        loaded.routes = self.routes_of(&loaded).await?;
        Ok(loaded)
    }

    /// The routes a component answers: from the config file if it says so, else those the
    /// component declares, else `/NAME/{*rest}` for a plain `wasi:http` component.
    async fn routes_of(&self, loaded: &LoadedComponent) -> anyhow::Result<Vec<Route>> {
        let name = &*loaded.name;
        if let Some(specs) = self.shared.config.components.get(name).and_then(|c| c.routes.as_ref()) {
            return specs.iter().map(|s| Route::parse(s, name).map_err(anyhow::Error::msg)).collect();
        }
        if !loaded.serves_http() {
            return Ok(Vec::new());
        }
        if !loaded.description.declares_routes() {
            return Ok(vec![Route { method: None, pattern: Pattern::prefix(name), component: name.to_string() }]);
        }
        let declared = call_routes(loaded).await.with_context(|| format!("its {ROUTES_INTERFACE} export failed"))?;
        declared
            .into_iter()
            .map(|(method, pattern)| {
                let spec = if method == "*" { pattern } else { format!("{method} {pattern}") };
                Route::parse(&spec, name).map_err(anyhow::Error::msg)
            })
            .collect()
    }
}

/// The linker for one component: WASI, `wasi:http`, the host's own interfaces, and one
/// forwarding function per function it imports from other components.
fn host_linker(engine: &wasmtime::Engine, links: &[Arc<Link>]) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::keyvalue::add_to_linker(&mut linker)?;
    crate::guest_log::add_to_linker(&mut linker)?;
    for link in links {
        link.define(&mut linker)?;
    }
    Ok(linker)
}

/// Calls a component's `trellis:http/routes.routes` and reads the (method, pattern) pairs.
async fn call_routes(loaded: &LoadedComponent) -> anyhow::Result<Vec<(String, String)>> {
    let export =
        loaded.description.export_named(ROUTES_INTERFACE).map(|e| e.full_name.clone()).context("no routes export")?;
    let index = loaded.export_function(&export, "routes").context("its routes export has no `routes` function")?;
    let call =
        CallContext { deadline: Instant::now() + ROUTES_CALL_TIMEOUT, depth: 0, correlation_id: Arc::from("load") };
    let mut warm = loaded.checkout(call).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let func = warm.instance.get_func(&mut warm.store, index).context("routes function missing")?;
    let mut results = [Val::Bool(false)];
    func.call_async(&mut warm.store, &[], &mut results).await.map_err(|e| anyhow::anyhow!(crate::link::reason(&e)))?;
    loaded.checkin(warm);
    let Val::List(routes) = &results[0] else { bail!("routes returned {:?}, expected a list", results[0]) };
    routes
        .iter()
        .map(|route| match route {
            Val::Record(fields) => match fields.as_slice() {
                [(_, Val::String(method)), (_, Val::String(pattern))] => Ok((method.clone(), pattern.clone())),
                _ => bail!("a route record is not (method, pattern)"),
            },
            other => bail!("a route is {other:?}, expected a record"),
        })
        .collect()
}

/// A short fingerprint of a file's bytes (not cryptographic: it tells versions apart).
fn fingerprint(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
