//! The configuration file (`trellis.toml`): limits, breaker defaults, provider pins and
//! per-component overrides. Every field has a default, so an empty or absent file is valid;
//! command-line flags override what the file says.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub limits: Limits,
    /// Breaker settings for every link between components.
    pub breaker: BreakerConfig,
    /// Pins an interface (`"shop:users/api"`) to the component that must provide it, when
    /// several could.
    pub providers: BTreeMap<String, String>,
    /// Per-component settings, by component name (its file name without `.wasm`).
    pub components: BTreeMap<String, ComponentConfig>,
}

/// Limits that apply to every component unless its own section overrides them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory one instance may grow to. 256 MiB fits every service here with room,
    /// and keeps a runaway allocation far from the host's memory.
    pub memory_mib: u64,
    /// Deadline for one HTTP request, everything it causes included.
    #[serde(with = "crate::breaker::millis")]
    pub request_timeout: Duration,
    /// Deadline for one call from a component into another (never more than what is left of
    /// the caller's own deadline).
    #[serde(with = "crate::breaker::millis")]
    pub call_timeout: Duration,
    /// How deep calls may nest (A calls B calls C...), so that a cycle ends with an error
    /// instead of exhausting the host.
    pub max_call_depth: u32,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: u64,
    /// Serve later requests from a warm instance that finished cleanly instead of a fresh one.
    /// A trapped instance is always thrown away. Turn off for strict per-request isolation.
    pub instance_reuse: bool,
    /// Warm instances kept idle per component.
    pub max_idle_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: 256,
            request_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            max_call_depth: 16,
            max_body_bytes: 1024 * 1024,
            instance_reuse: true,
            max_idle_instances: 32,
        }
    }
}

/// Settings for one component.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentConfig {
    /// Replaces the routes the component declares (or the default `/NAME/{*rest}`), e.g.
    /// `["GET /hi", "/hello/{*rest}"]`.
    pub routes: Option<Vec<String>>,
    /// Overrides `limits.memory_mib` for this component.
    pub memory_mib: Option<u64>,
}

impl Config {
    /// Reads a config file; a missing optional file is the defaults.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read config file {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn memory_bytes(&self, component: &str) -> usize {
        let mib = self.components.get(component).and_then(|c| c.memory_mib).unwrap_or(self.limits.memory_mib);
        usize::try_from(mib * 1024 * 1024).unwrap_or(usize::MAX)
    }
}
