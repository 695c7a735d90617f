//! The instances of one WASI 0.3 component: the idle ones, and the workers. A worker is an
//! instance running its Store's event loop for as long as it has requests: it starts each
//! request it is sent as a task of the instance, answers each at its deadline at the latest,
//! and ends when it has none left and the instance's background work (a body still
//! streaming) is done. The instance then goes back to the idle ones, unless it may not be
//! reused (a request expired and its guest task runs on, reuse is off, it grew too large, or
//! it trapped).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::oneshot;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use wasmtime::component::Accessor;
use wasmtime::{AsContextMut, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{self, Prepared, Proxy};
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::component::pool::{Alive, Recipe};
use crate::runtime::{CallContext, Fault, HostState, reason};

/// How long past the request timeout an instance's background work may run once it has no
/// request left and may not be reused.
const GRACE: Duration = Duration::from_secs(1);

/// The instances of one component, and what making one takes.
pub(super) struct Instances {
    pub(super) recipe: Arc<Recipe>,
    pub(super) pre: ServicePre<HostState>,
    pub(super) workers: Mutex<Vec<Arc<Worker>>>,
    /// Instances with nothing to do, the most recently used last.
    pub(super) idle: Mutex<Vec<(Instance, Instant)>>,
    /// Workers that run work needing the CPU in parallel before requests share one.
    pub(super) parallel: usize,
}

/// One worker as the dispatcher sees it.
pub(super) struct Worker {
    pub(super) jobs: mpsc::UnboundedSender<Box<Job>>,
    /// Requests sent to it and not yet answered or failed.
    pub(super) held: AtomicUsize,
    /// False once it takes no more requests (a request expired, reuse is off, or it ends).
    pub(super) accepting: AtomicBool,
    /// True while its task is not running: every request it holds is waiting.
    pub(super) parked: AtomicBool,
}

/// One request for a worker.
pub(super) struct Job {
    pub(super) request: handler::Request,
    pub(super) call: CallContext,
    pub(super) reply: oneshot::Sender<wasmtime::Result<handler::Response>>,
}

/// A worker to drive: started for a request, run by the request's own task until answered.
pub(super) type Driven = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Instances {
    /// Takes a worker out of the registry as it ends; `None` if a request reached it meanwhile.
    pub(super) fn leave(&self, worker: &Worker, jobs: &mut mpsc::UnboundedReceiver<Box<Job>>) -> Option<()> {
        let mut workers = self.workers.lock().unwrap();
        if !jobs.is_empty() {
            return None;
        }
        workers.retain(|w| !std::ptr::eq(&**w, worker));
        jobs.close();
        Some(())
    }

    /// Keeps an instance that finished cleanly for later requests, if there is room.
    pub(super) fn keep(&self, instance: Instance) {
        let limits = &self.recipe.limits;
        let fits = instance.store.data().memory_used() <= crate::config::mib(limits.max_idle_instance_mib);
        let mut idle = self.idle.lock().unwrap();
        if limits.instance_reuse && fits && idle.len() < limits.max_idle_instances {
            idle.push((instance, Instant::now()));
        }
    }
}

impl Worker {
    /// Sends it a request it has room for; gives the request back if it ended meanwhile.
    pub(super) fn send(&self, job: Box<Job>) -> Result<(), Box<Job>> {
        self.held.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).map_err(|mpsc::error::SendError(job)| {
            self.held.fetch_sub(1, Ordering::Relaxed);
            job
        })
    }
}

/// Why a request got no instance: instantiating one failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Uninstantiable(pub(super) String);

/// An instance with its Store.
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    proxy: Proxy,
    _alive: Alive,
}

/// Starts a worker on `idle` (or a new instance) with its first request.
pub(super) fn start(instances: Arc<Instances>, idle: Option<Instance>, first: Box<Job>) -> (Arc<Worker>, Driven) {
    let (jobs, receiver) = mpsc::unbounded_channel();
    let worker = Arc::new(Worker {
        jobs,
        held: AtomicUsize::new(1),
        accepting: AtomicBool::new(true),
        parked: AtomicBool::new(false),
    });
    let _ = worker.jobs.send(first);
    let driven = Box::pin(run(instances, worker.clone(), receiver, idle));
    (worker, driven)
}

async fn run(
    instances: Arc<Instances>,
    me: Arc<Worker>,
    mut jobs: mpsc::UnboundedReceiver<Box<Job>>,
    idle: Option<Instance>,
) {
    let instance = match idle {
        Some(instance) => Ok(instance),
        None => instantiate(&instances).await,
    };
    let mut instance = match instance {
        Ok(instance) => instance,
        Err(error) => {
            let why = reason(&error);
            tracing::warn!(component = &*instances.recipe.name, reason = why, "cannot instantiate a WASI 0.3 instance");
            me.accepting.store(false, Ordering::Relaxed);
            while instances.leave(&me, &mut jobs).is_none() {
                while let Ok(job) = jobs.try_recv() {
                    let _ = job.reply.send(Err(wasmtime::Error::new(Uninstantiable(why.clone()))));
                }
            }
            return;
        }
    };
    let Instance { store, proxy, .. } = &mut instance;
    let serving = store.run_concurrent(async |accessor| serve(accessor, &instances, &me, &mut jobs, proxy).await);
    match while_parked(&me, serving).await.and_then(|served| served) {
        Ok(true) => instances.keep(instance),
        Ok(false) => {}
        Err(error) => {
            let name = &instances.recipe.name;
            let fault = Fault::classify(name, &error, instance.store.data().ran_out_of_memory());
            tracing::warn!(component = &**name, reason = %fault, "a WASI 0.3 instance ended with a fault");
            // The requests it still held get no answer: their callers say the instance failed.
            me.accepting.store(false, Ordering::Relaxed);
            while instances.leave(&me, &mut jobs).is_none() {
                while jobs.try_recv().is_ok() {}
            }
        }
    }
}

/// A new instance in a Store of its own, within the request timeout.
async fn instantiate(instances: &Instances) -> wasmtime::Result<Instance> {
    let (recipe, timeout) = (&instances.recipe, instances.recipe.limits.request_timeout);
    let call = CallContext { deadline: Instant::now() + timeout, depth: 0, correlation_id: Arc::from("-") };
    let mut store = recipe.store(instances.pre.engine(), call);
    let started = Instant::now();
    let instantiated = tokio::time::timeout(timeout, instances.pre.instantiate_async(&mut store)).await;
    let service = instantiated.map_err(|_| wasmtime::format_err!("it did not finish within the request timeout"))??;
    Ok(Instance { store, proxy: Proxy::P3(service), _alive: recipe.made(started) })
}

/// The worker's loop inside its Store's event loop: whether the instance may be reused.
async fn serve(
    accessor: &Accessor<HostState>,
    instances: &Instances,
    me: &Worker,
    jobs: &mut mpsc::UnboundedReceiver<Box<Job>>,
    proxy: &Proxy,
) -> wasmtime::Result<bool> {
    let limits = &instances.recipe.limits;
    let mut running = FuturesUnordered::new();
    loop {
        let idle = running.is_empty();
        let reusable = me.accepting.load(Ordering::Relaxed);
        let quiet = poll_fn(|cx| accessor.poll_no_interesting_tasks(cx));
        // Background work may run past the last response, and past its deadline only for a
        // little while when the instance will not be reused.
        let give_up = if reusable { limits.idle_instance_timeout } else { limits.request_timeout + GRACE };
        tokio::select! {
            biased;
            Some(done) = running.next(), if !idle => {
                me.held.fetch_sub(1, Ordering::Relaxed);
                // An expired request's guest task runs on: the instance takes no more.
                if !done? {
                    me.accepting.store(false, Ordering::Relaxed);
                }
            }
            Some(job) = jobs.recv() => {
                if !limits.instance_reuse {
                    me.accepting.store(false, Ordering::Relaxed);
                }
                running.push(begin(accessor, proxy, job));
            }
            () = quiet, if idle => {
                if instances.leave(me, jobs).is_some() {
                    return Ok(reusable);
                }
            }
            () = tokio::time::sleep(give_up), if idle => {
                me.accepting.store(false, Ordering::Relaxed);
                if instances.leave(me, jobs).is_some() {
                    return Ok(false);
                }
            }
        }
    }
}

/// Starts one request as a task of the instance; the future answers whether its response
/// was sent before its deadline.
fn begin<'a>(
    accessor: &'a Accessor<HostState>,
    proxy: &'a Proxy,
    job: Box<Job>,
) -> impl Future<Output = wasmtime::Result<bool>> + 'a {
    let Job { request, call, reply } = *job;
    let deadline = call.deadline;
    let prepared = accessor.with(|mut access| {
        access.data_mut().begin_concurrent(call);
        Prepared::new(access.as_context_mut(), proxy, request, <HostState as WasiHttpView>::http, reply)
    });
    async move { prepared?.run(accessor, tokio::time::sleep_until(deadline.into())).await }
}

/// Runs `future`, telling the dispatcher whether it is parked (every request it holds
/// waiting) or running.
async fn while_parked<F: Future>(me: &Worker, future: F) -> F::Output {
    let mut future = pin!(future);
    poll_fn(|cx| {
        me.parked.store(false, Ordering::Relaxed);
        let poll = future.as_mut().poll(cx);
        me.parked.store(poll.is_pending(), Ordering::Relaxed);
        poll
    })
    .await
}
