//! The host's view of itself as JSON: every component with its exports, imports, links and
//! breakers, and every file that failed to load. `/_trellis/services`, `/health` and
//! `trellis status` all read it.

use serde_json::{Value, json};

use crate::loaded::LoadedComponent;
use crate::registry::Snapshot;

/// The whole report, as `/_trellis/services` serves it.
pub fn services(snapshot: &Snapshot) -> Value {
    json!({
        "components": snapshot.components.values().map(|c| component(c)).collect::<Vec<_>>(),
        "failed": snapshot.failures.values().collect::<Vec<_>>(),
    })
}

fn component(c: &LoadedComponent) -> Value {
    let exports: Vec<Value> = c
        .description
        .exports
        .iter()
        .map(|e| json!({ "interface": e.full_name, "functions": e.functions.iter().map(|f| f.to_wit()).collect::<Vec<_>>() }))
        .collect();
    json!({
        "name": &*c.name,
        "path": c.path,
        "digest": c.digest,
        "loaded_at": c.loaded_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        "state": state(c),
        "serves_http": c.serves_http(),
        "routes": c.routes.iter().map(|r| match &r.method {
            Some(m) => format!("{m} {}", r.pattern),
            None => format!("* {}", r.pattern),
        }).collect::<Vec<_>>(),
        "exports": exports,
        "imports": c.links.iter().map(|l| link(l)).collect::<Vec<_>>(),
        "idle_instances": c.idle_instances(),
    })
}

fn link(l: &crate::link::Link) -> Value {
    match l.target() {
        Some(target) => json!({
            "interface": l.interface.full_name,
            "resolved": true,
            "provider": &*target.provider.name,
            "export": target.export,
            "breaker": target.breaker.snapshot(),
        }),
        None => json!({
            "interface": l.interface.full_name,
            "resolved": false,
            "reason": l.unresolved_reason(),
        }),
    }
}

/// "ready" when every import is linked, else "degraded".
pub fn state(c: &LoadedComponent) -> &'static str {
    if c.links.iter().all(|l| l.target().is_some()) { "ready" } else { "degraded" }
}

/// The imports of a component that no provider serves, with the reason for each.
pub fn unresolved(c: &LoadedComponent) -> Vec<(String, String)> {
    c.links.iter().filter_map(|l| Some((l.interface.full_name.clone(), l.unresolved_reason()?))).collect()
}
