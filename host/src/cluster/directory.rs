//! The cluster directory: what each host runs, as it publishes it in the JetStream key-value
//! bucket (one key per host, refreshed every heartbeat), and this host's view of it, kept
//! from the bucket's watch. A host whose entry was deleted (a clean shutdown) leaves at once;
//! one whose entry stopped being refreshed (a crash, a lost network) after its expiry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::component::LoadedComponent;
use crate::discovery::Interface;

/// One host's entry in the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host: String,
    /// Where its public HTTP listener is reached.
    pub http: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    pub components: Vec<ComponentRecord>,
}

/// One component as its host publishes it: enough for another host to link to it, with the
/// function types compared as for a local provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub name: String,
    pub digest: String,
    pub exports: Vec<Interface>,
    /// The interfaces it imports from other components.
    pub imports: Vec<String>,
    /// Its routes, as `METHOD /pattern` (`*` for any method).
    pub routes: Vec<String>,
}

impl PartialEq for ComponentRecord {
    /// Two records of the same file are the same: the digest covers its exports and imports.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.digest == other.digest && self.routes == other.routes
    }
}

impl ComponentRecord {
    pub fn of(component: &LoadedComponent) -> Self {
        Self {
            name: component.name.to_string(),
            digest: component.digest.clone(),
            exports: component.description.exports.clone(),
            imports: component.description.component_imports().map(|i| i.full_name.clone()).collect(),
            routes: component
                .routes
                .iter()
                .map(|r| format!("{} {}", r.method.as_ref().map_or("*", |m| m.as_str()), r.pattern))
                .collect(),
        }
    }
}

/// The other hosts as this one last heard of them.
#[derive(Debug, Default)]
pub(super) struct Directory {
    hosts: BTreeMap<String, Known>,
}

#[derive(Debug)]
struct Known {
    record: HostRecord,
    /// When its entry was last written, by this host's clock.
    seen: Instant,
}

/// A component other hosts run, with where each of its replicas runs.
#[derive(Debug, Clone)]
pub struct RemoteComponent {
    pub name: String,
    pub exports: Vec<Interface>,
    /// Its routes, as its host publishes them (`METHOD /pattern`, `*` for any method).
    pub routes: Vec<String>,
    pub replicas: Vec<Replica>,
}

/// One host running a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub host: String,
    /// Its public HTTP address.
    pub http: String,
}

impl Directory {
    /// Records `host`'s entry; says whether what the other hosts provide changed.
    pub(super) fn put(&mut self, record: HostRecord, now: Instant) -> bool {
        let changed = self.hosts.get(&record.host).is_none_or(|known| known.record.components != record.components);
        self.hosts.insert(record.host.clone(), Known { record, seen: now });
        changed
    }

    pub(super) fn knows(&self, host: &str) -> bool {
        self.hosts.contains_key(host)
    }

    /// Forgets `host`; says whether it was known.
    pub(super) fn remove(&mut self, host: &str) -> bool {
        self.hosts.remove(host).is_some()
    }

    /// Forgets the hosts not heard of for `expiry`, and returns their ids.
    pub(super) fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, known)| now.saturating_duration_since(known.seen) > expiry)
            .map(|(host, _)| host.clone())
            .collect();
        gone.iter().for_each(|host| drop(self.hosts.remove(host)));
        gone
    }

    /// The hosts' entries, with how long ago each was refreshed.
    pub(super) fn hosts(&self, now: Instant) -> Vec<(HostRecord, Duration)> {
        self.hosts.values().map(|k| (k.record.clone(), now.saturating_duration_since(k.seen))).collect()
    }

    /// Every component the other hosts run, once per name, with the hosts that run it. When
    /// replicas differ, the entry of the first host (in id order) describes them.
    pub(super) fn components(&self) -> Vec<RemoteComponent> {
        let mut by_name: BTreeMap<&str, RemoteComponent> = BTreeMap::new();
        for known in self.hosts.values() {
            for c in &known.record.components {
                let first = || RemoteComponent {
                    name: c.name.clone(),
                    exports: c.exports.clone(),
                    routes: c.routes.clone(),
                    replicas: vec![],
                };
                let replica = Replica { host: known.record.host.clone(), http: known.record.http.clone() };
                by_name.entry(&c.name).or_insert_with(first).replicas.push(replica);
            }
        }
        by_name.into_values().collect()
    }

    /// The hosts that run component `name`.
    pub(super) fn hosts_of(&self, name: &str) -> Vec<String> {
        let runs = |k: &&Known| k.record.components.iter().any(|c| c.name == name);
        self.hosts.values().filter(runs).map(|k| k.record.host.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, components: &[&str]) -> HostRecord {
        let component = |name: &&str| ComponentRecord {
            name: name.to_string(),
            digest: format!("{name}-digest"),
            exports: vec![],
            imports: vec![],
            routes: vec![],
        };
        HostRecord {
            host: id.into(),
            http: "127.0.0.1:1".into(),
            started_ms: 0,
            components: components.iter().map(component).collect(),
        }
    }

    #[test]
    fn replicas_are_one_component_on_several_hosts() {
        let (mut directory, now) = (Directory::default(), Instant::now());
        assert!(directory.put(host("a", &["users"]), now));
        assert!(directory.put(host("c", &["users", "orders"]), now));
        assert!(!directory.put(host("a", &["users"]), now), "a heartbeat changes nothing");
        let components = directory.components();
        let hosts = |c: &RemoteComponent| c.replicas.iter().map(|r| r.host.clone()).collect::<Vec<_>>().join(",");
        let names: Vec<_> = components.iter().map(|c| (c.name.as_str(), hosts(c))).collect();
        assert_eq!(names, [("orders", "c".to_string()), ("users", "a,c".to_string())]);
    }

    #[test]
    fn a_host_not_heard_of_within_its_expiry_leaves() {
        let (mut directory, start) = (Directory::default(), Instant::now());
        directory.put(host("a", &["users"]), start);
        directory.put(host("b", &["orders"]), start + Duration::from_secs(2));
        let gone = directory.expire(start + Duration::from_millis(3500), Duration::from_secs(3));
        assert_eq!(gone, ["a"]);
        assert_eq!(directory.hosts_of("users"), Vec::<String>::new());
        assert_eq!(directory.hosts_of("orders"), ["b"]);
    }
}
