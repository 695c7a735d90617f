//! A component on other hosts as the callee of a link: each call is a NATS request on the
//! component's subject, answered by one of its replicas (they share a queue group), with the
//! caller's remaining deadline, depth and correlation id in its headers. No responders, a
//! timeout or a lost connection are faults, which the link's breaker counts; while this host
//! is not connected to NATS, calls fail at once.

use std::time::Instant;

use async_nats::client::{Request, RequestErrorKind};
use async_nats::connection::State;
use wasmtime::component::Val;
use wasmtime::component::types::ComponentFunc;

use super::{Cluster, wire};
use crate::discovery::Interface;
use crate::linking::{CallFuture, Callee, ProviderId};
use crate::ops::metrics::METRICS;
use crate::runtime::{CallContext, Fault, Unavailable};

/// One export of a component running on other hosts, serving one import here.
pub(crate) struct RemoteCallee {
    cluster: Cluster,
    id: ProviderId,
    export: String,
    subject: String,
    /// The import's functions (name, and the importer's type to read results with), in order.
    functions: Vec<(String, ComponentFunc)>,
}

impl RemoteCallee {
    /// Serves `import` from `component`'s `export` on other hosts; `None` if the import was
    /// not read from a component loaded here (it always is).
    pub(super) fn new(cluster: Cluster, component: &str, export: &str, import: &Interface) -> Option<Self> {
        let functions =
            import.functions.iter().map(|f| Some((f.name.clone(), f.func.clone()?))).collect::<Option<_>>()?;
        Some(Self {
            subject: wire::call_subject(&cluster.settings().name, component),
            id: ProviderId::remote(component),
            export: export.to_string(),
            functions,
            cluster,
        })
    }

    fn unavailable(&self, reason: String) -> Fault {
        Fault::Unavailable(Unavailable { interface: self.export.clone(), reason })
    }

    async fn request(&self, index: usize, call: CallContext, params: &[Val], results: &mut [Val]) -> Result<(), Fault> {
        let client = self.cluster.client();
        if client.connection_state() != State::Connected {
            return Err(self.unavailable("this host is not connected to the cluster's NATS servers".to_string()));
        }
        let left = call.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fault::Timeout(self.id.name.to_string()));
        }
        let (function, ty) = &self.functions[index];
        let headers = wire::call_headers(&self.export, &call, self.cluster.host_id());
        let payload = wire::encode_call(function, params);
        let request = Request::new().headers(headers).payload(payload.into()).timeout(Some(left));
        let started = Instant::now();
        let reply = client.send_request(self.subject.clone(), request).await;
        let (answered_by, result) = match reply {
            Ok(reply) => {
                let header = |name| reply.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
                let outcome = header(wire::OUTCOME).unwrap_or_default();
                let result = match outcome.as_str() {
                    "ok" => wire::decode_results(&reply.payload, ty, results)
                        .map_err(|why| Fault::Trap { component: self.id.name.to_string(), reason: why }),
                    "" => Err(self.unavailable("the reply carries no outcome".to_string())),
                    failed => Err(wire::fault_of(failed, &reply.payload, &self.id.name, &self.export)),
                };
                (header(wire::HOST), result)
            }
            Err(e) => (
                None,
                Err(match e.kind() {
                    RequestErrorKind::NoResponders => {
                        self.unavailable(format!("no host of the cluster runs '{}'", self.id.name))
                    }
                    RequestErrorKind::TimedOut => Fault::Timeout(self.id.name.to_string()),
                    _ => self.unavailable(format!("the request to '{}' failed: {e}", self.id.name)),
                }),
            ),
        };
        let outcome = result.as_ref().err().map_or("ok", wire::outcome_of);
        METRICS.record_remote_call(&self.id.name, answered_by.as_deref().unwrap_or("-"), outcome, started.elapsed());
        result
    }
}

impl Callee for RemoteCallee {
    fn provider(&self) -> &ProviderId {
        &self.id
    }

    fn call<'a>(
        &'a self,
        index: usize,
        call: CallContext,
        params: &'a [Val],
        results: &'a mut [Val],
    ) -> CallFuture<'a> {
        Box::pin(self.request(index, call, params, results))
    }

    fn hosts(&self) -> Option<Vec<String>> {
        Some(self.cluster.hosts_of(&self.id.name))
    }
}

impl std::fmt::Debug for RemoteCallee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCallee").field("provider", &self.id).field("export", &self.export).finish()
    }
}
