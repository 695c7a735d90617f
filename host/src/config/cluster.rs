//! The `[cluster]` settings: which NATS servers to join, under which cluster name and host
//! id, and how often this host says it is alive. Read from the config file and from
//! `trellis serve --cluster URLS --host-id ID`, the flags over the file.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::{DurationMilliSeconds, serde_as};

/// Hosts of one cluster share this name unless the file says otherwise.
const DEFAULT_NAME: &str = "trellis";
/// A host says it is alive this often; it is gone after `EXPIRY_HEARTBEATS` missed ones.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// `[cluster]`: empty `nats` (the default) means a single host with embedded storage.
#[serde_as]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// NATS server URLs, e.g. `["nats://a:4222", "nats://b:4222"]`.
    pub nats: Vec<String>,
    /// The cluster's name: hosts with the same name over the same NATS form one system.
    pub name: String,
    /// This host's id in the directory [default: the machine's name and a random suffix].
    pub host_id: Option<String>,
    /// How often this host refreshes its directory entry, in milliseconds.
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub heartbeat: Duration,
    /// The HTTP address other hosts are told to reach this one at [default: the bound public address].
    pub advertise: Option<String>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            nats: Vec::new(),
            name: DEFAULT_NAME.to_string(),
            host_id: None,
            heartbeat: DEFAULT_HEARTBEAT,
            advertise: None,
        }
    }
}

impl Cluster {
    /// A host whose entry was not refreshed for this long has left the cluster.
    pub fn expiry(&self) -> Duration {
        self.heartbeat * EXPIRY_HEARTBEATS
    }

    /// Whether this host joins a cluster at all.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    /// Why the settings cannot work, if they cannot: names go into NATS subjects and keys.
    pub fn check(&self) -> Result<(), String> {
        let token = |what: &str, value: &str| {
            let fine = !value.is_empty()
                && value.len() <= 64
                && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if fine {
                Ok(())
            } else {
                Err(format!(
                    "[cluster] {what} {value:?} must be 1 to 64 ASCII letters, digits, '-' or '_' \
                     (it names NATS subjects and keys)"
                ))
            }
        };
        token("name", &self.name)?;
        if let Some(id) = &self.host_id {
            token("host_id", id)?;
        }
        if self.heartbeat < Duration::from_millis(100) {
            return Err("[cluster] heartbeat must be at least 100 ms".to_string());
        }
        Ok(())
    }
}

/// Missed heartbeats after which a host is taken out of the directory.
const EXPIRY_HEARTBEATS: u32 = 3;

/// `[storage]`: where the components' `wasi:keyvalue` data lives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    pub backend: StorageBackend,
}

/// `"redb"`: the embedded database, this host's own (the default). `"nats"`: JetStream
/// key-value buckets, shared by every host of the cluster (needs `[cluster] nats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Redb,
    Nats,
}
