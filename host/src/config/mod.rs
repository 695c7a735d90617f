//! The configuration file (`trellis.toml`): limits, breaker defaults, provider pins and
//! per-component overrides. Every field has a default, so an empty or absent file is valid.
//! The `[server]` section and its merge with the command line live in [`server`]; using the
//! settings is every other module's business.

mod cluster;
mod policy;
mod server;

pub use cluster::{Cluster, Storage, StorageBackend};
pub use policy::{ApiKey, Auth, AuthMethod, Cors, Jwt, Per, Policy, RateLimit};
pub use server::{EdgeLimits, Server, Settings};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_with::{DurationMilliSeconds, serde_as};

use crate::breaker::BreakerConfig;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub limits: Limits,
    /// Breaker settings for every link between components.
    pub breaker: BreakerConfig,
    /// Pins an interface (`"shop:users/api"`) to the component that must provide it, when
    /// several could.
    pub providers: BTreeMap<String, String>,
    /// Per-component settings, by component name (its file name without `.wasm`).
    pub components: BTreeMap<String, ComponentConfig>,
    /// Events between components (`wasi:messaging`): delivery and retention.
    pub messaging: Messaging,
    /// Joining other hosts over NATS; off unless NATS servers are named.
    pub cluster: Cluster,
    /// Where the components' data lives: embedded, or shared by the cluster.
    pub storage: Storage,
    /// How clients authenticate at the edge: `[auth.jwt]`, `[[auth.api_keys]]`.
    pub auth: Auth,
    /// Authentication, scopes, rate limits and CORS per route or component.
    pub policies: Vec<Policy>,
}

/// How messages are delivered and how long they are kept. Durations are whole milliseconds.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Messaging {
    /// Deliveries under way at once per subscriber. 1 keeps each topic's publish order.
    pub max_in_flight: usize,
    /// Attempts to deliver one message (the first included) before it is dead-lettered.
    pub max_deliveries: u32,
    /// The wait before the first retry; each later one waits twice as long, with jitter.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub retry_backoff: Duration,
    /// The longest wait between two attempts.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub retry_backoff_max: Duration,
    /// How long a removed subscriber's position is kept: put back within it, it resumes
    /// where it stopped; later, it starts afresh and what only it still needed is let go.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub subscriber_retention: Duration,
    /// The most messages are kept, even when a subscriber has not acknowledged them.
    pub retention: Retention,
}

/// Bounds on the stored messages: the oldest go first past either.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub max_age: Duration,
    pub max_mib: u64,
}

impl Default for Messaging {
    fn default() -> Self {
        Self {
            max_in_flight: 1,
            max_deliveries: 5,
            retry_backoff: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(30),
            subscriber_retention: Duration::from_secs(24 * 3600),
            retention: Retention::default(),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(7 * 24 * 3600), max_mib: 1024 }
    }
}

/// Limits that apply to every component unless its own section overrides them. Durations
/// in the file are whole milliseconds.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory one instance may grow to. 256 MiB fits every service here with room,
    /// and keeps a runaway allocation far from the host's memory.
    pub memory_mib: u64,
    /// Deadline for one HTTP request, everything it causes included (504 past it).
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub request_timeout: Duration,
    /// Deadline for one call into a component from another (never more than what is left of
    /// the caller's own deadline).
    #[serde_as(as = "DurationMilliSeconds<u64>")]
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
    /// A warm instance unused for this long is dropped (one per component is kept), so the
    /// memory a burst of traffic needed returns within seconds.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub idle_instance_timeout: Duration,
    /// Instances of one component busy at once (the bulkhead): one component cannot take
    /// every instance slot and core from the others. 64 is far above what two cores serve.
    /// A quarter is kept for nested calls (calls from other components), which never wait:
    /// when none is free they fail at once, so chains of calls cannot wait on each other.
    pub max_instances: usize,
    /// Requests that may wait for a busy component; beyond that the caller is told
    /// "unavailable" at once instead of queueing.
    pub max_queue: usize,
    /// Requests one instance of a WASI 0.3 component answers at once (while the others wait
    /// on I/O or timers); such a component has at most `max_instances` × this in flight.
    /// WASI 0.2 components answer one at a time per instance.
    pub instance_concurrency: usize,
    /// Table elements (function references) one instance may have: generous for real code,
    /// and it bounds what a guest can make the host allocate.
    pub max_table_elements: usize,
    /// Lines a second a component may log (stdout, stderr and `wasi:logging` together), with
    /// bursts of twice that: plenty for a service's own logging, and a flood costs the host
    /// nothing but a counter (`trellis_guest_log_lines_dropped_total`).
    pub guest_log_lines_per_second: u32,
    /// Largest component file loaded, in MiB: 256 is ten times the largest real component
    /// here (CPython embedded, 18 MB), and keeps a stray file from being read into memory.
    pub max_component_mib: u64,
    /// Largest response body a component may receive from an outgoing request it was granted:
    /// 16 MiB is above any API answer a service should hold in memory at once.
    pub max_outbound_response_bytes: usize,
    /// Largest wasm stack, engine-wide (wasmtime sets it per engine). 512 KiB is wasmtime's
    /// default: deep enough for real code, and a runaway recursion traps quickly.
    pub max_wasm_stack_kib: usize,
    /// An instance whose memory grew past this (in MiB) is dropped when its work is done
    /// instead of being kept warm, so one large request does not keep its memory resident.
    pub max_idle_instance_mib: u64,
    /// Host-side objects (resource table entries: streams, fields, buckets, handles) one
    /// instance may hold at once. A request uses a few dozen.
    pub max_host_resources: usize,
    /// Bytes of stored values one instance may hold in `wasi:keyvalue` compare-and-swap
    /// handles at once, in MiB.
    pub max_host_mib: u64,
    /// Largest parameters or results of one call between components (strings and lists
    /// counted by their bytes). Past it the call fails as the caller's error (`invalid` when
    /// the function's error type has it), never counted against the callee's breaker.
    pub max_call_value_bytes: usize,
    /// Storage quota per component: the longest key, in bytes.
    pub max_key_bytes: usize,
    /// Storage quota per component: the largest value, in bytes.
    pub max_value_bytes: usize,
    /// Storage quota per component: how many keys it may keep.
    pub max_keys: u64,
    /// Storage quota per component: the bytes of its keys and values together, in MiB.
    pub max_storage_mib: u64,
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
            idle_instance_timeout: Duration::from_secs(5),
            max_instances: 64,
            max_queue: 256,
            instance_concurrency: 16,
            max_table_elements: 100_000,
            max_wasm_stack_kib: 512,
            max_outbound_response_bytes: 16 * 1024 * 1024,
            max_component_mib: 256,
            guest_log_lines_per_second: 100,
            max_idle_instance_mib: 64,
            max_host_resources: 10_000,
            max_host_mib: 64,
            max_call_value_bytes: 4 * 1024 * 1024,
            max_key_bytes: 1024,
            max_value_bytes: 2 * 1024 * 1024,
            max_keys: 100_000_000,
            max_storage_mib: 16 * 1024,
        }
    }
}

/// Settings for one component; each limit given here replaces the global one for it.
#[serde_as]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentConfig {
    /// Replaces the routes the component declares (or the default `/NAME/{*rest}`), e.g.
    /// `["GET /hi", "/hello/{*rest}"]`.
    pub routes: Option<Vec<String>>,
    /// The origins it may send HTTP requests to, e.g. `["https://api.example.com",
    /// "http://127.0.0.1:9000"]`. None by default: outgoing HTTP is a grant, never ambient.
    pub allowed_outbound_hosts: Vec<String>,
    pub memory_mib: Option<u64>,
    pub max_table_elements: Option<usize>,
    #[serde_as(as = "Option<DurationMilliSeconds<u64>>")]
    pub request_timeout: Option<Duration>,
    #[serde_as(as = "Option<DurationMilliSeconds<u64>>")]
    pub call_timeout: Option<Duration>,
    pub instance_reuse: Option<bool>,
    pub max_instances: Option<usize>,
    pub max_queue: Option<usize>,
    pub instance_concurrency: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub max_keys: Option<u64>,
    pub max_storage_mib: Option<u64>,
    /// Replaces the topic patterns the component subscribes to (its
    /// `trellis:messaging/subscriptions` export), e.g. `["orders.>"]`.
    pub subscribe: Option<Vec<String>>,
    /// Its own `messaging.max_in_flight`.
    pub max_in_flight: Option<usize>,
    /// Its own `messaging.max_deliveries`.
    pub max_deliveries: Option<u32>,
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

    /// The limits of one component: the global ones with its own overrides applied.
    pub fn limits_for(&self, component: &str) -> Limits {
        let mut limits = self.limits.clone();
        if let Some(own) = self.components.get(component) {
            limits.memory_mib = own.memory_mib.unwrap_or(limits.memory_mib);
            limits.max_table_elements = own.max_table_elements.unwrap_or(limits.max_table_elements);
            limits.request_timeout = own.request_timeout.unwrap_or(limits.request_timeout);
            limits.call_timeout = own.call_timeout.unwrap_or(limits.call_timeout);
            limits.instance_reuse = own.instance_reuse.unwrap_or(limits.instance_reuse);
            limits.max_instances = own.max_instances.unwrap_or(limits.max_instances);
            limits.max_queue = own.max_queue.unwrap_or(limits.max_queue);
            limits.instance_concurrency = own.instance_concurrency.unwrap_or(limits.instance_concurrency);
            limits.max_value_bytes = own.max_value_bytes.unwrap_or(limits.max_value_bytes);
            limits.max_keys = own.max_keys.unwrap_or(limits.max_keys);
            limits.max_storage_mib = own.max_storage_mib.unwrap_or(limits.max_storage_mib);
        }
        limits
    }

    /// The delivery settings of subscriber `component`: the global ones with its overrides.
    pub fn messaging_for(&self, component: &str) -> Messaging {
        let mut messaging = self.messaging.clone();
        if let Some(own) = self.components.get(component) {
            messaging.max_in_flight = own.max_in_flight.unwrap_or(messaging.max_in_flight).max(1);
            messaging.max_deliveries = own.max_deliveries.unwrap_or(messaging.max_deliveries).max(1);
        }
        messaging
    }

    /// The largest table any component may have, which sizes the engine's pool.
    pub fn max_table_elements(&self) -> usize {
        self.components
            .keys()
            .map(|c| self.limits_for(c).max_table_elements)
            .fold(self.limits.max_table_elements, usize::max)
    }

    /// The largest linear memory any component may have, which sizes the engine's pool.
    pub fn max_memory_bytes(&self) -> usize {
        let largest =
            self.components.keys().map(|c| self.limits_for(c).memory_mib).fold(self.limits.memory_mib, u64::max);
        mib(largest)
    }
}

pub(crate) fn mib(n: u64) -> usize {
    usize::try_from(n.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_components_own_limits_override_the_global_ones_and_nothing_else() {
        let config: Config = toml::from_str(
            r#"
            [limits]
            memory_mib = 128
            call_timeout = 2000
            [components.big]
            memory_mib = 512
            max_instances = 4
            "#,
        )
        .unwrap();
        let big = config.limits_for("big");
        assert_eq!((big.memory_mib, big.max_instances, big.call_timeout), (512, 4, Duration::from_secs(2)));
        let other = config.limits_for("other");
        assert_eq!((other.memory_mib, other.max_instances), (128, 64));
        assert_eq!(config.max_memory_bytes(), 512 * 1024 * 1024, "the engine's pool fits the largest");
    }

    #[test]
    fn the_edge_policy_of_the_issue_reads_as_written() {
        let config: Config = toml::from_str(
            r#"
            [auth.jwt]
            issuer = "https://id.example.com"
            audience = "shop"
            algorithms = ["HS256", "RS256", "ES256"]
            hs256_secret_env = "TRELLIS_JWT_SECRET"
            public_keys = "keys/jwks.json"
            leeway_seconds = 30

            [[auth.api_keys]]
            name = "billing-batch"
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

            [[policies]]
            routes = ["/api/v1/orders", "/api/v1/orders/{*rest}"]
            auth = "jwt"
            scopes = ["shop"]
            rate_limit = { per = "subject", requests = 100, per_seconds = 1, burst = 20 }
            cors = { origins = ["https://shop.example.com"], methods = ["GET", "POST"], headers = ["authorization"] }
            "#,
        )
        .unwrap();
        let policy = &config.policies[0];
        assert_eq!((policy.auth, policy.scopes.as_slice()), (AuthMethod::Jwt, &["shop".to_string()][..]));
        let limit = policy.rate_limit.as_ref().unwrap();
        assert_eq!((limit.per, limit.requests, limit.per_seconds, limit.burst), (Per::Subject, 100, 1, Some(20)));
        assert_eq!(config.auth.jwt.unwrap().leeway_seconds, 30);
        assert_eq!(config.auth.api_keys[0].name, "billing-batch");
    }

    #[test]
    fn an_unknown_field_is_an_error_naming_it() {
        let err = toml::from_str::<Config>("[limits]\nmemory_mb = 1\n").unwrap_err().to_string();
        assert!(err.contains("memory_mb"), "{err}");
    }
}
