//! Answering calls from other hosts: for each component loaded here, one subscription to its
//! call subject in the queue group its replicas share, and for each call, the export's
//! function run through the component's pool and bulkhead with the caller's remaining
//! deadline, depth and correlation id, as a call from a local component would be. Each call
//! served leaves one log line under the caller's correlation id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_nats::{HeaderMap, Message};
use futures::StreamExt;
use tracing::Instrument;
use wasmtime::component::Val;

use super::{Cluster, wire};
use crate::component::{ExportCallee, LoadedComponent};
use crate::discovery::Interface;
use crate::linking::Callee;
use crate::runtime::{Fault, Unavailable};

/// Answers calls to component `name` until the task is aborted (when it is unloaded).
pub(super) async fn serve(cluster: Cluster, name: String) {
    let subject = wire::call_subject(&cluster.settings().name, &name);
    loop {
        match cluster.client().queue_subscribe(subject.clone(), subject.clone()).await {
            Ok(mut calls) => {
                while let Some(message) = calls.next().await {
                    tokio::spawn(answer(cluster.clone(), name.clone(), message));
                }
            }
            Err(e) => tracing::warn!(component = name, error = %e, "cannot take calls from other hosts"),
        }
        tokio::time::sleep(cluster.settings().heartbeat).await;
    }
}

/// Runs one call and sends its reply.
async fn answer(cluster: Cluster, name: String, message: Message) {
    let Some(reply) = message.reply.clone() else { return };
    let headers = message.headers.clone().unwrap_or_default();
    let correlation_id = headers.get(wire::CORRELATION_ID).map_or("-", |v| v.as_str()).to_string();
    let caller = headers.get(wire::CALLER_HOST).map_or("-", |v| v.as_str()).to_string();
    let span = tracing::info_span!("remote call", correlation_id);
    let started = Instant::now();
    let (outcome, body) = match run(&cluster, &name, &headers, &message.payload).instrument(span.clone()).await {
        Ok(results) => ("ok", wire::encode_results(&results)),
        Err(Answer::Invalid(why)) => ("invalid", why),
        Err(Answer::Fault(fault)) => (wire::outcome_of(&fault), fault.to_string()),
    };
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(component = name, caller_host = caller, outcome, elapsed_ms, "remote call served");
    });
    let mut answer = HeaderMap::new();
    answer.insert(wire::OUTCOME, outcome);
    answer.insert(wire::HOST, cluster.host_id());
    if let Err(e) = cluster.client().publish_with_headers(reply, answer, body.into()).await {
        tracing::warn!(component = name, error = %e, "cannot send a remote call's reply");
    }
}

/// Why a call from another host has no results.
enum Answer {
    /// The call itself is wrong: it never reached the component.
    Invalid(String),
    Fault(Fault),
}

async fn run(cluster: &Cluster, name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Val>, Answer> {
    let call = wire::call_context(headers).map_err(Answer::Invalid)?;
    let export = headers.get(wire::EXPORT).map(|v| v.as_str().to_string()).unwrap_or_default();
    let Some(component) = cluster.local(name) else {
        let reason = format!("'{name}' is not loaded on host '{}'", cluster.host_id());
        return Err(Answer::Fault(Fault::Unavailable(Unavailable { interface: export, reason })));
    };
    let interface = component
        .description
        .exports
        .iter()
        .find(|e| e.full_name == export)
        .ok_or_else(|| Answer::Invalid(format!("'{name}' does not export {export:?}")))?;
    let (index, params) = wire::decode_call(body, interface).map_err(Answer::Invalid)?;
    let callee = cluster
        .callees()
        .get(&component, &export, interface)
        .ok_or_else(|| Answer::Invalid(format!("'{name}' lacks a function of {export}")))?;
    let mut results = vec![Val::Bool(false); interface.functions[index].results.len()];
    callee.call(index, call, &params, &mut results).await.map_err(Answer::Fault)?;
    Ok(results)
}

/// The callees of the exports other hosts call, made once per loaded version and export.
#[derive(Default)]
pub(super) struct Callees(Mutex<HashMap<(u64, String), Arc<ExportCallee>>>);

impl Callees {
    fn get(&self, component: &Arc<LoadedComponent>, export: &str, interface: &Interface) -> Option<Arc<ExportCallee>> {
        let key = (component.id.version, export.to_string());
        let mut callees = self.0.lock().unwrap();
        if let Some(callee) = callees.get(&key) {
            return Some(callee.clone());
        }
        let callee = Arc::new(ExportCallee::new(component.clone(), export, interface)?);
        callees.insert(key, callee.clone());
        Some(callee)
    }

    /// Forgets them all, when the loaded set changes: none keeps an unloaded version alive.
    pub(super) fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}
