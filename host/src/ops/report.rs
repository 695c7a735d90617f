//! The services report: every component with its exports, imports, links and breakers, and
//! every file that failed to load. One serde type, served by the admin API as
//! `/_trellis/services`, read back by `trellis status` and the tests.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::breaker;
use crate::component::LoadedComponent;
use crate::linking::Link;
use crate::registry::{Failure, Snapshot};

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServicesReport {
    pub components: Vec<ComponentReport>,
    pub failed: Vec<FailureReport>,
}

/// Whether every import of a component is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    Ready,
    Degraded,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentReport {
    pub name: String,
    /// The highest version among the interfaces it exports, if any carries one.
    pub version: Option<String>,
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub digest: String,
    /// When it was loaded, in milliseconds since the Unix epoch.
    pub loaded_at: u64,
    pub state: ComponentState,
    pub serves_http: bool,
    /// `METHOD /pattern`, or `* /pattern` for any method.
    pub routes: Vec<String>,
    pub exports: Vec<ExportReport>,
    pub imports: Vec<ImportReport>,
    pub idle_instances: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportReport {
    pub interface: String,
    /// Each function in WIT syntax.
    pub functions: Vec<String>,
}

/// One import and where it leads: a provider with its breaker, or the reason there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportReport {
    pub interface: String,
    pub resolved: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<breaker::Snapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureReport {
    pub name: String,
    pub path: PathBuf,
    pub error: String,
}

impl ServicesReport {
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            components: snapshot.components.values().map(|c| ComponentReport::of(c)).collect(),
            failed: snapshot.failures.values().map(FailureReport::of).collect(),
        }
    }
}

impl ComponentState {
    pub fn of(component: &LoadedComponent) -> Self {
        if component.is_ready() { Self::Ready } else { Self::Degraded }
    }
}

impl ComponentReport {
    fn of(c: &LoadedComponent) -> Self {
        let exports = c
            .description
            .exports
            .iter()
            .map(|e| ExportReport {
                interface: e.full_name.clone(),
                functions: e.functions.iter().map(|f| f.to_wit()).collect(),
            })
            .collect();
        let routes = c
            .routes
            .iter()
            .map(|r| match &r.method {
                Some(m) => format!("{m} {}", r.pattern),
                None => format!("* {}", r.pattern),
            })
            .collect();
        Self {
            name: c.name.to_string(),
            version: c.version(),
            path: c.path.clone(),
            digest: c.digest.clone(),
            loaded_at: c.loaded_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            state: ComponentState::of(c),
            serves_http: c.serves_http(),
            routes,
            exports,
            imports: c.links.iter().map(|l| ImportReport::of(l)).collect(),
            idle_instances: c.idle_instances(),
        }
    }
}

impl ImportReport {
    fn of(link: &Link) -> Self {
        let interface = link.interface.full_name.clone();
        match link.target() {
            Some(target) => Self {
                interface,
                resolved: true,
                provider: Some(target.callee.provider().name.to_string()),
                export: Some(target.export.clone()),
                breaker: Some(target.breaker.snapshot()),
                reason: None,
            },
            None => Self {
                interface,
                resolved: false,
                provider: None,
                export: None,
                breaker: None,
                reason: link.unresolved_reason(),
            },
        }
    }
}

impl FailureReport {
    pub(crate) fn of(failure: &Failure) -> Self {
        Self { name: failure.name.clone(), path: failure.path.clone(), error: failure.error.clone() }
    }
}
