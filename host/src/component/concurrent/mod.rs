//! HTTP into a WASI 0.3 component (`wasi:http/handler@0.3`). Each instance, while it has
//! requests, is a worker running its Store's event loop: it takes more requests while those
//! it holds wait on I/O or timers, up to `limits.instance_concurrency` at once. When it has
//! none left and no background work, it goes back to the idle instances, kept for later
//! requests (`limits.instance_reuse`, `max_idle_instances`, `idle_instance_timeout`). This
//! module assigns each request and answers it; `instances` keeps the instances and runs
//! the workers.
//!
//! A request goes to a parked worker (all it holds are waiting) with room; else it takes an
//! idle instance, or while fewer workers run than cores a new one, and drives it in its own
//! task until answered: a guest that answers at once needs no task of its own, and only one
//! that keeps waiting moves to one. Else it goes to the least loaded worker with room, else to
//! a new instance. In flight a component has at most `max_instances` × `instance_concurrency`
//! requests, and `max_queue` more may wait (503 `busy` beyond).

mod instances;

use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::handler::{self, ExpirationError};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

use super::pool::{Bulkhead, Recipe};
use crate::runtime::{CallContext, Fault, HostState};
use instances::{Driven, Instances, Job, Worker};

/// Turns a request's own task keeps driving its instance after the answer before handing
/// it to a task of its own.
const FINISH_TURNS: usize = 3;
/// A response whose declared body is at most this is gathered before it is sent.
const GATHER_LIMIT: u64 = 64 * 1024;

/// What a WASI 0.3 component's HTTP requests go through.
pub(crate) struct ConcurrentHttp {
    instances: Arc<Instances>,
    /// Requests in flight, up to `max_instances` × `instance_concurrency`, and those waiting.
    gate: Bulkhead,
}

/// A driven worker that moves to a task of its own when dropped unfinished: its request was
/// answered or timed out, or its client went away, and the instance may hold other requests.
struct Handoff(Option<Driven>);

impl Handoff {
    fn running(&self) -> bool {
        self.0.is_some()
    }
}

impl Future for Handoff {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(driven) = self.0.as_mut() else { return Poll::Ready(()) };
        let poll = driven.as_mut().poll(cx);
        if poll.is_ready() {
            self.0 = None;
        }
        poll
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let Some(driven) = self.0.take() {
            tokio::spawn(driven);
        }
    }
}

/// The answer to one request, from the worker serving it.
type Answer = oneshot::Receiver<wasmtime::Result<handler::Response>>;

/// Why a WASI 0.3 component sent no response.
pub(crate) enum Unanswered {
    /// Its handler returned this `error-code`.
    ErrorCode(String),
    Fault(Fault),
}

impl ConcurrentHttp {
    pub(crate) fn new(recipe: Arc<Recipe>, pre: ServicePre<HostState>) -> Self {
        let limits = &recipe.limits;
        let in_flight = limits.max_instances.saturating_mul(limits.instance_concurrency.max(1));
        let gate = Bulkhead::new(in_flight, limits.max_queue);
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()).min(limits.max_instances.max(1));
        let (workers, idle) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
        let instances = Instances { recipe, pre, workers, idle, parallel };
        Self { instances: Arc::new(instances), gate }
    }

    /// Serves one request within `call`'s deadline.
    pub(crate) async fn handle(
        &self,
        request: handler::Request,
        call: CallContext,
    ) -> Result<handler::Response, Unanswered> {
        let deadline = call.deadline;
        let name = &*self.instances.recipe.name;
        let busy = |why| Unanswered::Fault(Fault::Busy(format!("component '{name}' is busy: {why}")));
        let _slot = self.gate.enter(deadline).await.map_err(busy)?;
        let (reply, answer) = oneshot::channel();
        match assign(&self.instances, Box::new(Job { request, call, reply })) {
            Some(driven) => self.drive(driven, answer, deadline).await,
            None => self.answered(tokio::time::timeout_at(deadline.into(), answer).await.map_err(|_| ())),
        }
    }

    /// Drives a worker started for this request, here, until the request is answered and
    /// its body gathered (a small one: at most [`GATHER_LIMIT`] declared), and a few turns
    /// more: most guests are then done, and their instance goes back to the idle ones
    /// without a task of its own. One still busy moves to a task of its own.
    async fn drive(
        &self,
        driven: Driven,
        mut answer: Answer,
        deadline: Instant,
    ) -> Result<handler::Response, Unanswered> {
        let mut worker = Handoff(Some(driven));
        let mut late = pin!(tokio::time::sleep_until(deadline.into()));
        let got = tokio::select! {
            biased;
            () = &mut worker => (&mut answer).await,
            got = &mut answer => got,
            () = &mut late => return Err(Unanswered::Fault(Fault::Timeout(self.instances.recipe.name.to_string()))),
        };
        let result = match self.answered(Ok(got)) {
            Ok(response) if worker.running() => {
                let (parts, body) = response.into_parts();
                let body = if content_length(&parts.headers).is_some_and(|len| len <= GATHER_LIMIT) {
                    let mut gather = pin!(body.collect());
                    let gathered = loop {
                        tokio::select! {
                            biased;
                            () = &mut worker, if worker.running() => {}
                            gathered = &mut gather => break gathered.map(|all| all.to_bytes()).map_err(|e| format!("{e:?}")),
                            () = &mut late => break Err("it did not arrive before the deadline".to_string()),
                        }
                    };
                    gathered.map(|bytes| Full::new(bytes).map_err(|never| match never {}).boxed_unsync())
                } else {
                    Ok(body)
                };
                body.map(|body| handler::Response::from_parts(parts, body))
                    .map_err(|error| Unanswered::ErrorCode(format!("the response body failed: {error}")))
            }
            other => other,
        };
        for _ in 0..FINISH_TURNS {
            if !worker.running() || futures::poll!(&mut worker).is_ready() {
                break;
            }
            tokio::task::yield_now().await;
        }
        result
    }

    fn answered(
        &self,
        got: Result<Result<wasmtime::Result<handler::Response>, oneshot::Canceled>, ()>,
    ) -> Result<handler::Response, Unanswered> {
        let name = &*self.instances.recipe.name;
        match got {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(error))) => Err(unanswered(name, &error)),
            Ok(Err(_)) => {
                let reason = "the instance serving it failed (the host's log says why)".to_string();
                Err(Unanswered::Fault(Fault::Trap { component: name.to_string(), reason }))
            }
            Err(()) => Err(Unanswered::Fault(Fault::Timeout(name.to_string()))),
        }
    }

    /// Drops the instances idle for longer than `idle_for`, all but the most recently used.
    pub(crate) fn trim(&self, idle_for: Duration) {
        let stale: Vec<_> = {
            let mut idle = self.instances.idle.lock().unwrap();
            let older = idle.len().saturating_sub(1);
            idle.extract_if(..older, |(_, since)| since.elapsed() > idle_for).collect()
        };
        drop(stale);
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn unanswered(component: &str, error: &wasmtime::Error) -> Unanswered {
    if let Some(instances::Uninstantiable(reason)) = error.downcast_ref() {
        Unanswered::Fault(Fault::Instantiation { component: component.to_string(), reason: reason.clone() })
    } else if let Some(code) = error.downcast_ref::<ErrorCode>() {
        Unanswered::ErrorCode(format!("{code:?}"))
    } else if error.downcast_ref::<ExpirationError>().is_some() {
        Unanswered::Fault(Fault::Timeout(component.to_string()))
    } else {
        Unanswered::Fault(Fault::classify(component, error, false))
    }
}

/// Sends `job` to a running worker, or starts one for it and returns it to drive.
fn assign(this: &Arc<Instances>, job: Box<Job>) -> Option<Driven> {
    let room = this.recipe.limits.instance_concurrency.max(1);
    let mut workers = this.workers.lock().unwrap();
    workers.retain(|w| !w.jobs.is_closed());
    let open = |w: &&Arc<Worker>| w.accepting.load(Ordering::Relaxed) && w.held.load(Ordering::Relaxed) < room;
    let mut job = job;
    let parked = workers.iter().filter(open).find(|w| w.parked.load(Ordering::Relaxed)).cloned();
    if let Some(worker) = parked {
        match worker.send(job) {
            Ok(()) => return None,
            Err(back) => job = back,
        }
    }
    let idle = this.idle.lock().unwrap().pop().map(|(instance, _)| instance);
    if idle.is_none() && workers.len() >= this.parallel {
        let least_held = workers.iter().filter(open).min_by_key(|w| w.held.load(Ordering::Relaxed)).cloned();
        if let Some(worker) = least_held {
            match worker.send(job) {
                Ok(()) => return None,
                Err(back) => job = back,
            }
        }
    }
    let (worker, driven) = instances::start(this.clone(), idle, job);
    workers.push(worker);
    Some(driven)
}
