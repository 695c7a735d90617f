//! The services report: every component with its exports, imports, links and breakers, and
//! every file that failed to load. One serde type, served by the admin API as
//! `/_trellis/services`, read back by `trellis status` and the tests.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::breaker;
use crate::cluster::{self, Cluster};
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
    /// For a provider on other hosts: the hosts that run it. Absent for a local provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_hosts: Option<Vec<String>>,
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
                remote_hosts: target.callee.hosts(),
                breaker: Some(target.breaker.snapshot()),
                reason: None,
            },
            None => Self {
                interface,
                resolved: false,
                provider: None,
                export: None,
                remote_hosts: None,
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

/// `GET /_trellis/cluster`: this host's view of the cluster, and the links that leave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterReport {
    /// False on a single host (no `--cluster`, no `[cluster] nats`).
    pub enabled: bool,
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub status: Option<cluster::Status>,
    /// Every import of a component here that another host serves.
    #[serde(default)]
    pub remote_links: Vec<RemoteLink>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteLink {
    pub caller: String,
    pub interface: String,
    pub provider: String,
    pub export: String,
    pub hosts: Vec<String>,
    pub breaker: breaker::Snapshot,
}

impl ClusterReport {
    pub fn of(cluster: Option<&Cluster>, snapshot: &Snapshot) -> Self {
        let mut remote_links = Vec::new();
        for component in snapshot.components.values() {
            for link in &component.links {
                let Some(target) = link.target() else { continue };
                let Some(hosts) = target.callee.hosts() else { continue };
                remote_links.push(RemoteLink {
                    caller: component.name.to_string(),
                    interface: link.interface.full_name.clone(),
                    provider: target.callee.provider().name.to_string(),
                    export: target.export.clone(),
                    hosts,
                    breaker: target.breaker.snapshot(),
                });
            }
        }
        Self { enabled: cluster.is_some(), status: cluster.map(Cluster::status), remote_links }
    }
}
