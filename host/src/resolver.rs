//! Discovery's decisions: which loaded component provides each import (semver-compatible,
//! highest version, config pins, types checked), whether a replacement would break what is
//! linked, and a fresh breaker for each new link. Loading components is the registry's job.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::breaker::{Breaker, StateName};
use crate::link::{Link, Target};
use crate::loaded::LoadedComponent;
use crate::metrics::{LinkLabels, METRICS};
use crate::registry::Registry;

impl Registry {
    /// A replacement must not break what worked: every import the old version had linked must
    /// still link, and every other component's link to the old version must find a provider.
    pub(crate) fn check_replacement(
        &self,
        old: &LoadedComponent,
        new: &LoadedComponent,
        components: &BTreeMap<String, Arc<LoadedComponent>>,
    ) -> Result<(), String> {
        for link in &new.links {
            let was_linked =
                old.links.iter().any(|l| l.interface.full_name == link.interface.full_name && l.target().is_some());
            if was_linked && let Err(why) = self.choose_provider(link, components) {
                return Err(format!("its import {} would be unresolved: {why}", link.interface.full_name));
            }
        }
        for caller in components.values().filter(|c| c.name != new.name) {
            for link in &caller.links {
                let uses_old = link.target().is_some_and(|t| std::ptr::eq(Arc::as_ptr(&t.provider), old));
                if uses_old && let Err(why) = self.choose_provider(link, components) {
                    return Err(format!("'{}' imports {} from it: {why}", caller.name, link.interface.full_name));
                }
            }
        }
        Ok(())
    }

    /// Points every link at its best provider, or records why there is none. A link whose
    /// provider did not change keeps its target, and so its breaker's history.
    pub(crate) fn resolve(&self, components: &BTreeMap<String, Arc<LoadedComponent>>) {
        for caller in components.values() {
            for link in &caller.links {
                match self.choose_provider(link, components) {
                    Ok((provider, export)) => {
                        let unchanged =
                            link.target().is_some_and(|t| Arc::ptr_eq(&t.provider, &provider) && t.export == export);
                        if unchanged {
                            continue;
                        }
                        let breaker = self.breaker_for(&caller.name, &link.interface.full_name);
                        match Target::new(&link.interface, provider.clone(), &export, breaker) {
                            Some(target) => {
                                tracing::info!(caller = &*caller.name, import = %link.interface.full_name, provider = &*provider.name, export, "linked");
                                link.set_target(target);
                            }
                            None => link.clear_target(format!("'{}' lacks a function of {export}", provider.name)),
                        }
                    }
                    Err(why) => {
                        if link.target().is_some() || link.unresolved_reason().as_deref() != Some(why.as_str()) {
                            tracing::warn!(caller = &*caller.name, import = %link.interface.full_name, reason = %why, "import unresolved");
                        }
                        link.clear_target(why);
                    }
                }
            }
        }
    }

    /// A fresh breaker for one link, reporting its state changes to the log and metrics.
    fn breaker_for(&self, caller: &str, interface: &str) -> Arc<Breaker> {
        let (caller, interface) = (caller.to_string(), interface.to_string());
        METRICS
            .breaker_state
            .get_or_create(&LinkLabels { caller: caller.clone(), interface: interface.clone() })
            .set(0);
        let observer = move |to: StateName| {
            tracing::info!(caller, interface, state = to.as_str(), "circuit breaker changed state");
            METRICS.record_breaker(&caller, &interface, to);
        };
        Breaker::observed(self.shared.config.breaker.clone(), self.shared.clock.clone(), Some(Box::new(observer)))
    }

    /// The provider of a link's interface: the pinned one if the config names one, else the
    /// highest compatible version; only providers whose function types match are considered.
    fn choose_provider(
        &self,
        link: &Link,
        components: &BTreeMap<String, Arc<LoadedComponent>>,
    ) -> Result<(Arc<LoadedComponent>, String), String> {
        let wanted = &link.interface;
        let providers = &self.shared.config.providers;
        let pinned = providers.get(&wanted.full_name).or_else(|| providers.get(&wanted.name.base));
        let mut candidates: Vec<_> = components
            .values()
            .filter(|p| pinned.is_none_or(|pin| *pin == *p.name))
            .flat_map(|p| p.description.exports.iter().map(move |e| (p, e)))
            .filter(|(_, export)| export.name.satisfies(&wanted.name))
            .collect();
        candidates.sort_by(|(_, a), (_, b)| b.name.version.cmp(&a.name.version));
        let mut mismatches = Vec::new();
        for (provider, export) in candidates {
            let mismatch = wanted.functions.iter().find_map(|f| match export.function(&f.name) {
                None => Some(format!("function `{}` is missing", f.name)),
                Some(provided) => f.mismatch(provided).map(|why| format!("function `{}`: {why}", f.name)),
            });
            match mismatch {
                None => return Ok((provider.clone(), export.full_name.clone())),
                Some(why) => mismatches.push(format!(
                    "type mismatch between '{}' (imports {}) and '{}' (exports {}): {why}",
                    link.caller, wanted.full_name, provider.name, export.full_name
                )),
            }
        }
        if !mismatches.is_empty() {
            return Err(mismatches.join("; "));
        }
        Err(match pinned {
            Some(pin) => format!("no loaded component provides {} (pinned to '{pin}')", wanted.full_name),
            None => format!("no loaded component provides {}", wanted.full_name),
        })
    }
}
