//! What a component provides and needs, read from its own component type (no manifest):
//! the interfaces it imports and exports with their functions, whether it serves HTTP,
//! whether it declares its routes, and whether it receives messages; and whether two components agree on a function's type
//! (`typecheck`). Deciding who provides what to whom is the registry's job.

mod typecheck;
mod types;

pub(crate) use typecheck::Signature;
pub(crate) use types::ValueType;

use std::fmt;

use serde::{Deserialize, Serialize};

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The interface a WASI 0.2 HTTP-serving component exports (any 0.2.x version).
pub(crate) const HTTP_HANDLER: &str = "wasi:http/incoming-handler";
/// The interface a WASI 0.3 HTTP-serving component exports: an async handler.
pub(crate) const HTTP_HANDLER_0_3: &str = "wasi:http/handler";

/// Which `wasi:http` a component serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasiHttp {
    /// `wasi:http/incoming-handler@0.2.x`: one request per instance at a time.
    V0_2,
    /// `wasi:http/handler@0.3.x`: an async handler; one instance may answer several at once.
    V0_3,
}
/// The export through which a component declares its routes.
pub(crate) const ROUTES_INTERFACE: &str = "trellis:http/routes";
/// The interface through which a component hands the host its OpenAPI document.
pub(crate) const OPENAPI_INTERFACE: &str = "trellis:http/openapi";
/// The interface a component exports to receive messages.
pub(crate) const MESSAGE_HANDLER: &str = "wasi:messaging/incoming-handler";
/// The export through which a component declares the topics it receives.
pub(crate) const SUBSCRIPTIONS_INTERFACE: &str = "trellis:messaging/subscriptions";
/// The host's own interfaces next to WASI's, which it provides to every component.
const HOST_INTERFACES: &[&str] =
    &["trellis:keyvalue/ordered", "trellis:keyvalue/sequences", "trellis:messaging/outbox"];

/// A fully qualified interface name split into its parts: `shop:users/api@0.1.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub struct InterfaceName {
    /// `shop:users/api`
    pub base: String,
    pub version: Option<semver::Version>,
}

impl InterfaceName {
    pub fn parse(full: &str) -> Self {
        match full.split_once('@') {
            Some((base, version)) => match semver::Version::parse(version) {
                Ok(v) => Self { base: base.to_string(), version: Some(v) },
                Err(_) => Self { base: full.to_string(), version: None },
            },
            None => Self { base: full.to_string(), version: None },
        }
    }

    /// Whether an export named `self` can serve an import named `wanted`: same interface, and
    /// a semver-compatible version at least as new (`1.2.0` serves `1.1.0`, not `2.0.0`; in
    /// `0.x`, the minor version must match).
    pub fn satisfies(&self, wanted: &InterfaceName) -> bool {
        if self.base != wanted.base {
            return false;
        }
        match (&self.version, &wanted.version) {
            (Some(have), Some(want)) => semver::Comparator {
                op: semver::Op::Caret,
                major: want.major,
                minor: Some(want.minor),
                patch: Some(want.patch),
                pre: want.pre.clone(),
            }
            .matches(have),
            (None, None) => true,
            _ => false,
        }
    }

    /// WASI interfaces, and the host's own additions to them, are the host's to provide.
    pub fn is_host_provided(&self) -> bool {
        self.base.starts_with("wasi:") || HOST_INTERFACES.contains(&self.base.as_str())
    }
}

impl From<String> for InterfaceName {
    fn from(full: String) -> Self {
        Self::parse(&full)
    }
}

impl From<InterfaceName> for String {
    fn from(name: InterfaceName) -> Self {
        name.to_string()
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.base),
            None => f.write_str(&self.base),
        }
    }
}

/// One imported or exported interface and the functions in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interface {
    pub name: InterfaceName,
    /// The name exactly as it appears in the component.
    pub full_name: String,
    pub functions: Vec<Signature>,
    /// Resource types the interface defines; they cannot cross between components.
    pub resources: Vec<String>,
}

impl Interface {
    pub fn function(&self, name: &str) -> Option<&Signature> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// Why this interface cannot be linked between components, if it cannot.
    pub fn unlinkable(&self) -> Option<String> {
        if let Some(resource) = self.resources.first() {
            return Some(format!("it defines resource `{resource}`, and resources cannot cross between components"));
        }
        self.functions
            .iter()
            .find(|f| f.params.iter().map(|(_, t)| t).chain(&f.results).any(ValueType::has_resource))
            .map(|f| {
                format!("function `{}` passes a resource handle, and resources cannot cross between components", f.name)
            })
    }
}

/// Everything Trellis needs to know about one component's shape.
#[derive(Debug, Clone, Default)]
pub struct Description {
    pub imports: Vec<Interface>,
    pub exports: Vec<Interface>,
    /// Imports that are not interfaces (bare functions, types...), which Trellis cannot link.
    pub other_imports: Vec<String>,
}

impl Description {
    pub fn of(component: &Component, engine: &Engine) -> Self {
        let ty = component.component_type();
        let mut description = Description::default();
        for (name, item) in ty.imports(engine) {
            match item.ty {
                ComponentItem::ComponentInstance(instance) => {
                    description.imports.push(interface(name, instance.exports(engine).map(|(n, e)| (n, e.ty))));
                }
                _ => description.other_imports.push(name.to_string()),
            }
        }
        for (name, item) in ty.exports(engine) {
            if let ComponentItem::ComponentInstance(instance) = item.ty {
                description.exports.push(interface(name, instance.exports(engine).map(|(n, e)| (n, e.ty))));
            }
        }
        description
    }

    pub fn serves_http(&self) -> bool {
        self.http().is_some()
    }

    /// Which `wasi:http` handler it exports, if any.
    pub fn http(&self) -> Option<WasiHttp> {
        if self.export_named(HTTP_HANDLER_0_3).is_some() {
            Some(WasiHttp::V0_3)
        } else {
            self.export_named(HTTP_HANDLER).map(|_| WasiHttp::V0_2)
        }
    }

    pub fn declares_routes(&self) -> bool {
        self.export_named(ROUTES_INTERFACE).is_some()
    }

    pub fn receives_messages(&self) -> bool {
        self.export_named(MESSAGE_HANDLER).is_some()
    }

    pub fn declares_subscriptions(&self) -> bool {
        self.export_named(SUBSCRIPTIONS_INTERFACE).is_some()
    }

    /// Whether it imports `function` of `interface` (its full name) as an `async func`.
    pub fn awaits(&self, interface: &str, function: &str) -> bool {
        let import = self.imports.iter().find(|i| i.full_name == interface);
        let func = import.and_then(|i| i.functions.iter().find(|f| f.name == function));
        func.and_then(|f| f.func.as_ref()).is_some_and(|f| f.async_())
    }

    pub fn export_named(&self, base: &str) -> Option<&Interface> {
        self.exports.iter().find(|e| e.name.base == base)
    }

    /// The imports another component must provide (everything but WASI).
    pub fn component_imports(&self) -> impl Iterator<Item = &Interface> {
        self.imports.iter().filter(|i| !i.name.is_host_provided())
    }
}

fn interface<'a>(full_name: &str, items: impl Iterator<Item = (&'a str, ComponentItem)>) -> Interface {
    let mut functions = Vec::new();
    let mut resources = Vec::new();
    for (name, item) in items {
        match item {
            ComponentItem::ComponentFunc(func) => functions.push(Signature::of(name, &func)),
            ComponentItem::Resource(_) => resources.push(name.to_string()),
            _ => {}
        }
    }
    Interface { name: InterfaceName::parse(full_name), full_name: full_name.to_string(), functions, resources }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> InterfaceName {
        InterfaceName::parse(s)
    }

    #[test]
    fn a_newer_minor_version_serves_an_older_import() {
        assert!(name("pkg:name/iface@1.2.0").satisfies(&name("pkg:name/iface@1.1.0")));
        assert!(name("pkg:name/iface@1.1.0").satisfies(&name("pkg:name/iface@1.1.0")));
        assert!(!name("pkg:name/iface@1.0.9").satisfies(&name("pkg:name/iface@1.1.0")));
        assert!(!name("pkg:name/iface@2.0.0").satisfies(&name("pkg:name/iface@1.1.0")));
        assert!(!name("pkg:name/other@1.2.0").satisfies(&name("pkg:name/iface@1.1.0")));
    }

    #[test]
    fn in_zero_versions_the_minor_is_the_breaking_number() {
        assert!(name("shop:users/api@0.1.3").satisfies(&name("shop:users/api@0.1.0")));
        assert!(!name("shop:users/api@0.2.0").satisfies(&name("shop:users/api@0.1.0")));
    }

    #[test]
    fn unversioned_names_match_only_unversioned_names() {
        assert!(name("pkg:a/b").satisfies(&name("pkg:a/b")));
        assert!(!name("pkg:a/b@1.0.0").satisfies(&name("pkg:a/b")));
    }

    #[test]
    fn wasi_is_the_hosts_to_provide() {
        assert!(name("wasi:keyvalue/store@0.2.0-draft2").is_host_provided());
        assert!(name("trellis:keyvalue/ordered@0.1.0").is_host_provided());
        assert!(!name("shop:users/api@0.1.0").is_host_provided());
    }
}
