//! Turning one file into a [`LoadedComponent`]: read, check and compile it, describe it,
//! give it one link per import, link it against the host's capabilities, and read its
//! routes and the topics it subscribes to. Whether it may join the loaded set is decided in the registry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasmtime::component::{Linker, Val};

use super::Shared;
use crate::capabilities::keyvalue::{Backend, Namespace, Quota};
use crate::capabilities::messaging::TopicPattern;
use crate::capabilities::outbound::Origin;
use crate::component::{self, FileStamp, LoadedComponent, Parts};
use crate::config::StorageBackend;
use crate::discovery::{Description, MESSAGE_HANDLER, OPENAPI_INTERFACE, ROUTES_INTERFACE, SUBSCRIPTIONS_INTERFACE};
use crate::http::router::{Pattern, Route};
use crate::linking::Link;
use crate::runtime::{CallContext, HostState};

/// How long a component's `routes` export may take when it is loaded.
const ROUTES_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Validates, compiles and links one file, and reads its routes.
pub(super) async fn prepare(
    shared: &Shared,
    name: &str,
    path: &Path,
    stamp: FileStamp,
) -> anyhow::Result<LoadedComponent> {
    let (engines, file, max_mib) = (shared.engines.clone(), path.to_path_buf(), shared.config.limits.max_component_mib);
    let compiled = tokio::task::spawn_blocking(move || {
        let compiled = component::compile(&engines, &file, max_mib);
        crate::runtime::release_freed_memory();
        compiled
    })
    .await??;
    let engine = shared.engines.for_component(compiled.concurrent);
    let description = Description::of(&compiled.component, engine);
    if let Some(other) = description.other_imports.first() {
        bail!("it imports `{other}`, which is not an interface; Trellis links only interfaces");
    }
    let name: Arc<str> = Arc::from(name);
    let limits = shared.config.limits_for(&name);
    let mut links = Vec::new();
    for import in description.component_imports() {
        if let Some(why) = import.unlinkable() {
            bail!("its import {} cannot be linked: {why}", import.full_name);
        }
        links.push(Link::new(name.clone(), import.clone(), &limits));
    }
    let granted = shared.config.components.get(&*name).map(|c| c.allowed_outbound_hosts.as_slice()).unwrap_or_default();
    let outbound = granted
        .iter()
        .map(|origin| Origin::parse(origin))
        .collect::<Result<Arc<[Origin]>, _>>()
        .map_err(|why| anyhow::anyhow!("its allowed_outbound_hosts: {why}"))?;
    let linker = linker(engine, &description, &links).map_err(anyhow::Error::from)?;
    let pre = linker.instantiate_pre(&compiled.component).map_err(|e| anyhow::anyhow!("cannot link it: {e:#}"))?;
    let mut loaded = LoadedComponent::new(Parts {
        name: name.clone(),
        path: path.to_path_buf(),
        stamp,
        digest: compiled.digest,
        description,
        links,
        pre,
        namespace: Namespace::new(storage_of(shared), name.clone(), Quota::of(&limits)),
        outbound,
        broker: shared.bus.broker(),
        limits,
    })
    .map_err(anyhow::Error::from)?;
    // One instance now: a component that can never be instantiated (its memories past its
    // limit, a trapping start) is refused at load with the reason, and the first request
    // finds an instance warm.
    loaded.invoke(load_call(), async |_| Ok(())).await.map_err(anyhow::Error::from)?;
    loaded.routes = routes_of(shared, &loaded).await?;
    loaded.subscriptions = subscriptions_of(shared, &loaded).await?;
    loaded.openapi = openapi_of(&loaded).await;
    Ok(loaded)
}

/// The linker for one component: what the host provides, and one forwarding function per
/// function it imports from other components.
/// Where components keep their data: shared by the cluster with `[storage] backend = "nats"`
/// (serve refuses that backend without a cluster), else in this host's database.
fn storage_of(shared: &Shared) -> Backend {
    match (shared.config.storage.backend, &shared.cluster) {
        (StorageBackend::Nats, Some(cluster)) => Backend::Shared(cluster.storage().clone()),
        _ => Backend::Local(shared.storage.clone()),
    }
}

fn linker(
    engine: &wasmtime::Engine,
    description: &Description,
    links: &[Arc<Link>],
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    crate::runtime::add_to_linker(&mut linker, description)?;
    for link in links {
        link.define(&mut linker)?;
    }
    Ok(linker)
}

/// The routes a component answers: from the config file if it says so, else those the
/// component declares, else `/NAME/{*rest}` for a plain `wasi:http` component.
async fn routes_of(shared: &Shared, loaded: &LoadedComponent) -> anyhow::Result<Vec<Route>> {
    let name = &*loaded.name;
    if let Some(specs) = shared.config.components.get(name).and_then(|c| c.routes.as_ref()) {
        return specs.iter().map(|s| Route::parse(s, name).map_err(anyhow::Error::msg)).collect();
    }
    if !loaded.serves_http() {
        return Ok(Vec::new());
    }
    if !loaded.description.declares_routes() {
        return Ok(vec![Route { method: None, pattern: Pattern::prefix(name), component: name.to_string() }]);
    }
    let declared = call_routes(loaded).await?;
    declared
        .into_iter()
        .map(|(method, pattern)| {
            let spec = if method == "*" { pattern } else { format!("{method} {pattern}") };
            Route::parse(&spec, name).map_err(anyhow::Error::msg)
        })
        .collect()
}

/// The topic patterns a component receives messages on: from the config file if it says so,
/// else those it declares. A pattern that cannot be read refuses the component, naming it.
async fn subscriptions_of(shared: &Shared, loaded: &LoadedComponent) -> anyhow::Result<Vec<TopicPattern>> {
    let name = &*loaded.name;
    let configured = shared.config.components.get(name).and_then(|c| c.subscribe.clone());
    let declares = loaded.description.declares_subscriptions();
    if (configured.is_some() || declares) && !loaded.receives_messages() {
        bail!("it subscribes to topics but does not export {MESSAGE_HANDLER} to receive them");
    }
    let patterns = match configured {
        Some(patterns) => patterns,
        None if declares => {
            let declared = call_load_export(loaded, SUBSCRIPTIONS_INTERFACE, "subscriptions").await?;
            let Val::List(patterns) = declared else { bail!("subscriptions returned {declared:?}, expected a list") };
            let text = |p: Val| match p {
                Val::String(p) => Ok(p),
                other => Err(anyhow::anyhow!("a subscription is {other:?}, expected a string")),
            };
            patterns.into_iter().map(text).collect::<anyhow::Result<_>>()?
        }
        None => Vec::new(),
    };
    patterns.iter().map(|p| TopicPattern::parse(p).map_err(|why| anyhow::anyhow!("its subscriptions: {why}"))).collect()
}

/// Calls `function`, which takes no parameters, of the component's export `interface` at
/// load time, and returns its result.
async fn call_load_export(loaded: &LoadedComponent, interface: &str, function: &str) -> anyhow::Result<Val> {
    let export = loaded.description.export_named(interface).map(|e| e.full_name.clone()).context("no such export")?;
    let index = loaded
        .export_function(&export, function)
        .with_context(|| format!("its {interface} export has no `{function}` function"))?;
    let mut results = [Val::Bool(false)];
    loaded
        .invoke(load_call(), async |warm| {
            let func = warm
                .instance
                .get_func(&mut warm.store, index)
                .ok_or_else(|| wasmtime::format_err!("{function} function missing"))?;
            func.call_async(&mut warm.store, &[], &mut results).await
        })
        .await
        .with_context(|| format!("its {interface} export failed"))?;
    let [result] = results;
    Ok(result)
}

/// The largest OpenAPI document read from a component: far above a real service's (the
/// shop's are a few KiB), and bounded because every `/openapi.json` merges them all.
const MAX_OPENAPI_BYTES: usize = 4 * 1024 * 1024;

/// A component's OpenAPI document, if it exports one. One that fails or cannot be read costs
/// the component only its place in `/openapi.json`: the reason is logged, and it is served.
async fn openapi_of(loaded: &LoadedComponent) -> Option<serde_json::Value> {
    loaded.description.export_named(OPENAPI_INTERFACE)?;
    let read = async {
        let text = match call_load_export(loaded, OPENAPI_INTERFACE, "document").await? {
            Val::String(text) => text,
            other => bail!("document returned {other:?}, expected a string"),
        };
        if text.len() > MAX_OPENAPI_BYTES {
            bail!("its OpenAPI document has {} bytes, more than the {MAX_OPENAPI_BYTES} read", text.len());
        }
        let document: serde_json::Value = serde_json::from_str(&text).context("its OpenAPI document is not JSON")?;
        if !document.get("paths").is_some_and(serde_json::Value::is_object) {
            bail!("its OpenAPI document has no `paths` object");
        }
        Ok(document)
    };
    match read.await {
        Ok(document) => Some(document),
        Err(e) => {
            tracing::warn!(component = &*loaded.name, error = format!("{e:#}"), "its API is left out of /openapi.json");
            None
        }
    }
}

/// Calls a component's `trellis:http/routes.routes` and reads the (method, pattern) pairs.
async fn call_routes(loaded: &LoadedComponent) -> anyhow::Result<Vec<(String, String)>> {
    let routes = call_load_export(loaded, ROUTES_INTERFACE, "routes").await?;
    let Val::List(routes) = &routes else { bail!("routes returned {routes:?}, expected a list") };
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

/// The context of work done at load time: bounded by [`ROUTES_CALL_TIMEOUT`].
fn load_call() -> CallContext {
    CallContext { deadline: Instant::now() + ROUTES_CALL_TIMEOUT, depth: 0, correlation_id: Arc::from("load") }
}
