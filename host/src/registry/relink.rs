//! Acting on the resolver's decisions: every link pointed at its chosen provider (with a
//! fresh breaker for each new target) or told why it has none, and a replacement refused
//! when it would unlink what worked. A provider loaded here is preferred; in cluster mode,
//! an import none serves goes to a component on other hosts, chosen by the same rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::resolver::{self, Choice, Provider};
use crate::breaker::{Breaker, BreakerConfig, Clock, StateName};
use crate::cluster::{Cluster, RemoteComponent};
use crate::component::{ExportCallee, LoadedComponent};
use crate::linking::{Callee, Link, ProviderId, Target};
use crate::ops::metrics::{LinkLabels, METRICS};

/// The loaded components by name.
pub(super) type Components = BTreeMap<String, Arc<LoadedComponent>>;

fn providers(components: &Components) -> impl Iterator<Item = Provider<'_>> {
    components.values().map(|c| Provider { name: &c.name, exports: &c.description.exports })
}

fn choose(link: &Link, components: &Components, pins: &BTreeMap<String, String>) -> Result<Choice, String> {
    resolver::choose(&link.caller, &link.interface, pins, providers(components))
}

/// A replacement must not break what worked: every import the old version had linked must
/// still link, and every other component's link to the old version must find a provider.
pub(super) fn check_replacement(
    old: &LoadedComponent,
    new: &LoadedComponent,
    components: &Components,
    pins: &BTreeMap<String, String>,
) -> Result<(), String> {
    for link in &new.links {
        let was_linked =
            old.links.iter().any(|l| l.interface.full_name == link.interface.full_name && l.target().is_some());
        if was_linked && let Err(why) = choose(link, components, pins) {
            return Err(format!("its import {} would be unresolved: {why}", link.interface.full_name));
        }
    }
    for caller in components.values().filter(|c| c.name != new.name) {
        for link in caller.links.iter().filter(|l| l.leads_to(&old.id)) {
            if let Err(why) = choose(link, components, pins) {
                return Err(format!("'{}' imports {} from it: {why}", caller.name, link.interface.full_name));
            }
        }
    }
    Ok(())
}

/// Where a link should lead.
enum Decision {
    Local(Choice),
    Remote(Choice),
}

/// The provider loaded here if one serves `link`, else one on another host; else why none.
fn decide(
    link: &Link,
    components: &Components,
    remote: &[RemoteComponent],
    pins: &BTreeMap<String, String>,
) -> Result<Decision, String> {
    let local_why = match choose(link, components, pins) {
        Ok(choice) => return Ok(Decision::Local(choice)),
        Err(why) => why,
    };
    if remote.is_empty() {
        return Err(local_why);
    }
    let others = remote.iter().map(|c| Provider { name: &c.name, exports: &c.exports });
    match resolver::choose(&link.caller, &link.interface, pins, others) {
        Ok(choice) => Ok(Decision::Remote(choice)),
        Err(remote_why) if remote_why.starts_with("type mismatch") => {
            Err(format!("{local_why}; on other hosts: {remote_why}"))
        }
        Err(_) => Err(local_why),
    }
}

/// Points every link at its chosen provider, or records why there is none. A link whose
/// provider did not change keeps its target, and so its breaker's history.
pub(super) fn relink(
    components: &Components,
    pins: &BTreeMap<String, String>,
    breaker: &BreakerConfig,
    clock: &Arc<dyn Clock>,
    cluster: Option<&Cluster>,
) {
    let remote = cluster.map(Cluster::providers).unwrap_or_default();
    for caller in components.values() {
        for link in &caller.links {
            let decision = match decide(link, components, &remote, pins) {
                Ok(decision) => decision,
                Err(why) => {
                    if link.target().is_some() || link.unresolved_reason().as_deref() != Some(why.as_str()) {
                        tracing::warn!(caller = &*caller.name, import = %link.interface.full_name, reason = %why, "import unresolved");
                    }
                    link.clear_target(why);
                    continue;
                }
            };
            let (choice, callee): (Choice, Option<Arc<dyn Callee>>) = match decision {
                Decision::Local(choice) => {
                    let provider = &components[&choice.provider];
                    if leads_to(link, &provider.id, &choice) {
                        continue;
                    }
                    let callee = ExportCallee::new(provider.clone(), &choice.export, &link.interface);
                    (choice, callee.map(|c| Arc::new(c) as Arc<dyn Callee>))
                }
                Decision::Remote(choice) => {
                    if leads_to(link, &ProviderId::remote(&choice.provider), &choice) {
                        continue;
                    }
                    let callee = cluster.and_then(|c| c.callee(&choice.provider, &choice.export, &link.interface));
                    (choice, callee.map(|c| Arc::new(c) as Arc<dyn Callee>))
                }
            };
            match callee {
                Some(callee) => {
                    let remote = callee.provider().remote;
                    tracing::info!(caller = &*caller.name, import = %link.interface.full_name, provider = choice.provider, export = choice.export, remote, "linked");
                    let breaker = observed_breaker(&caller.name, &link.interface.full_name, breaker, clock);
                    link.set_target(Target { callee, export: choice.export, breaker });
                }
                None => link.clear_target(format!("'{}' lacks a function of {}", choice.provider, choice.export)),
            }
        }
    }
}

/// Whether `link` already leads to `provider`'s chosen export.
fn leads_to(link: &Link, provider: &ProviderId, choice: &Choice) -> bool {
    link.target().is_some_and(|t| t.callee.provider() == provider && t.export == choice.export)
}

/// A fresh breaker for one link, reporting its state changes to the log and metrics.
fn observed_breaker(caller: &str, interface: &str, config: &BreakerConfig, clock: &Arc<dyn Clock>) -> Arc<Breaker> {
    let (caller, interface) = (caller.to_string(), interface.to_string());
    METRICS.breaker_state.get_or_create(&LinkLabels { caller: caller.clone(), interface: interface.clone() }).set(0);
    let observer = move |to: StateName| {
        tracing::info!(caller, interface, state = to.as_str(), "circuit breaker changed state");
        METRICS.record_breaker(&caller, &interface, to);
    };
    Breaker::observed(config.clone(), clock.clone(), Some(Box::new(observer)))
}
