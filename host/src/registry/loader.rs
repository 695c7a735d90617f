//! Turning one file into a [`LoadedComponent`]: read, check and compile it, describe it,
//! give it one link per import, link it against the host's capabilities, and read its
//! routes. Whether it may join the loaded set is decided in the registry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasmtime::component::{Linker, Val};

use super::Shared;
use crate::capabilities::keyvalue::{Namespace, Quota};
use crate::capabilities::outbound::Origin;
use crate::component::{self, FileStamp, LoadedComponent, Parts};
use crate::discovery::{Description, ROUTES_INTERFACE};
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
    let linker = linker(engine, &links).map_err(anyhow::Error::from)?;
    let pre = linker.instantiate_pre(&compiled.component).map_err(|e| anyhow::anyhow!("cannot link it: {e:#}"))?;
    let mut loaded = LoadedComponent::new(Parts {
        name: name.clone(),
        path: path.to_path_buf(),
        stamp,
        digest: compiled.digest,
        description,
        links,
        pre,
        namespace: Namespace::new(shared.storage.clone(), name.clone(), Quota::of(&limits)),
        outbound,
        limits,
    })
    .map_err(anyhow::Error::from)?;
    // One instance now: a component that can never be instantiated (its memories past its
    // limit, a trapping start) is refused at load with the reason, and the first request
    // finds an instance warm.
    loaded.invoke(load_call(), async |_| Ok(())).await.map_err(anyhow::Error::from)?;
    loaded.routes = routes_of(shared, &loaded).await?;
    Ok(loaded)
}

/// The linker for one component: what the host provides, and one forwarding function per
/// function it imports from other components.
fn linker(engine: &wasmtime::Engine, links: &[Arc<Link>]) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    crate::runtime::add_to_linker(&mut linker)?;
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
    let declared = call_routes(loaded).await.with_context(|| format!("its {ROUTES_INTERFACE} export failed"))?;
    declared
        .into_iter()
        .map(|(method, pattern)| {
            let spec = if method == "*" { pattern } else { format!("{method} {pattern}") };
            Route::parse(&spec, name).map_err(anyhow::Error::msg)
        })
        .collect()
}

/// Calls a component's `trellis:http/routes.routes` and reads the (method, pattern) pairs.
async fn call_routes(loaded: &LoadedComponent) -> anyhow::Result<Vec<(String, String)>> {
    let export =
        loaded.description.export_named(ROUTES_INTERFACE).map(|e| e.full_name.clone()).context("no routes export")?;
    let index = loaded.export_function(&export, "routes").context("its routes export has no `routes` function")?;
    let call = load_call();
    let mut results = [Val::Bool(false)];
    loaded
        .invoke(call, async |warm| {
            let func = warm
                .instance
                .get_func(&mut warm.store, index)
                .ok_or_else(|| wasmtime::format_err!("routes function missing"))?;
            func.call_async(&mut warm.store, &[], &mut results).await
        })
        .await?;
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

/// The context of work done at load time: bounded by [`ROUTES_CALL_TIMEOUT`].
fn load_call() -> CallContext {
    CallContext { deadline: Instant::now() + ROUTES_CALL_TIMEOUT, depth: 0, correlation_id: Arc::from("load") }
}
