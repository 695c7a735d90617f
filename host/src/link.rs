//! Run-time linking between components: every function a component imports from another is
//! a host function that forwards the call, as dynamic values, into a provider instance in its
//! own Store, through the link's circuit breaker. The registry decides which provider a link
//! points at; this module owns what happens on each call.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use wasmtime::component::{ComponentExportIndex, Linker, Val};

use crate::breaker::{Breaker, Outcome, Rejected};
use crate::discovery::Interface;
use crate::loaded::{Checkout, LoadedComponent};
use crate::metrics::METRICS;
use crate::state::{CallContext, DeadlineExceeded, HostState};

/// Why a forwarded call gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallFailure {
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Rejected(Rejected),
    #[error("calls nested deeper than {0} levels (is there a cycle between components?)")]
    TooDeep(u32),
    #[error("{0}")]
    Busy(String),
    #[error("provider '{provider}' could not be instantiated: {reason}")]
    Instantiation { provider: String, reason: String },
    #[error("provider '{provider}' trapped: {reason}")]
    Trap { provider: String, reason: String },
    #[error("provider '{0}' ran out of its memory limit")]
    OutOfMemory(String),
    #[error("provider '{0}' did not answer within the deadline")]
    Timeout(String),
}

impl CallFailure {
    fn outcome(&self) -> Outcome {
        match self {
            CallFailure::Missing(_) | CallFailure::Rejected(_) | CallFailure::TooDeep(_) | CallFailure::Busy(_) => {
                Outcome::Rejected
            }
            CallFailure::Instantiation { .. } => Outcome::InstantiationFailure,
            CallFailure::Trap { .. } => Outcome::Trap,
            CallFailure::OutOfMemory(_) => Outcome::OutOfMemory,
            CallFailure::Timeout(_) => Outcome::Timeout,
        }
    }
}

/// The error a caller traps with when its import failed and the function's signature has no
/// way to say "unavailable" in-band. The HTTP layer turns it into a 503 naming the interface.
#[derive(Debug, thiserror::Error)]
#[error("{interface} is unavailable: {reason}")]
pub struct Unavailable {
    pub interface: String,
    pub reason: String,
}

/// Where a link currently leads.
pub struct Target {
    pub provider: Arc<LoadedComponent>,
    /// The provider's export that serves the import, e.g. `shop:users/api@0.1.2`.
    pub export: String,
    /// Export indices, in the order of the import's functions.
    functions: Vec<ComponentExportIndex>,
    /// Fresh for each provider version: a new version starts with a clean history.
    pub breaker: Arc<Breaker>,
}

impl Target {
    /// Points at `provider`'s `export`; `None` if it lacks one of the functions.
    pub fn new(
        import: &Interface,
        provider: Arc<LoadedComponent>,
        export: &str,
        breaker: Arc<Breaker>,
    ) -> Option<Self> {
        let functions =
            import.functions.iter().map(|f| provider.export_function(export, &f.name)).collect::<Option<Vec<_>>>()?;
        Some(Self { provider, export: export.to_string(), functions, breaker })
    }
}

/// One importing component's link to one interface.
pub struct Link {
    pub caller: Arc<str>,
    pub interface: Interface,
    target: ArcSwapOption<Target>,
    /// Why there is no target, when there is none.
    unresolved: Mutex<String>,
    /// How deep calls may nest before this link refuses one (`limits.max_call_depth`).
    max_call_depth: u32,
}

impl Link {
    pub fn new(caller: Arc<str>, interface: Interface, max_call_depth: u32) -> Arc<Self> {
        let unresolved = Mutex::new(format!("no loaded component provides {}", interface.full_name));
        Arc::new(Self { caller, interface, target: ArcSwapOption::empty(), unresolved, max_call_depth })
    }

    pub fn target(&self) -> Option<Arc<Target>> {
        self.target.load_full()
    }

    pub fn set_target(&self, target: Target) {
        self.target.store(Some(Arc::new(target)));
    }

    pub fn clear_target(&self, why: String) {
        self.target.store(None);
        *self.unresolved.lock().unwrap() = why;
    }

    pub fn unresolved_reason(&self) -> Option<String> {
        self.target.load().is_none().then(|| self.unresolved.lock().unwrap().clone())
    }

    /// Adds one forwarding host function per imported function to the caller's linker.
    pub fn define(self: &Arc<Self>, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        let mut instance = linker.instance(&self.interface.full_name)?;
        for (index, function) in self.interface.functions.iter().enumerate() {
            let link = Arc::clone(self);
            instance.func_new_async(&function.name, move |store, _ty, params, results| {
                let link = Arc::clone(&link);
                let call = store.data().call.clone();
                Box::new(async move {
                    match link.call(index, &call, params, results).await {
                        Ok(()) => Ok(()),
                        Err(failure) => link.answer_failure(index, failure, results),
                    }
                })
            })?;
        }
        Ok(())
    }

    /// Forwards one call and records it in the metrics, whatever its outcome.
    async fn call(
        &self,
        index: usize,
        caller: &CallContext,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), CallFailure> {
        let started = Instant::now();
        let result = self.forward(index, caller, params, results).await;
        let outcome = outcome(&result, results);
        let function = &self.interface.functions[index].name;
        METRICS.record_call(&self.caller, &self.interface.full_name, function, outcome.as_str(), started.elapsed());
        result
    }

    /// Forwards one call: breaker permit, a callee instance in its own Store with what is left
    /// of the caller's deadline, the call, and the outcome back to the breaker.
    async fn forward(
        &self,
        index: usize,
        caller: &CallContext,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), CallFailure> {
        let Some(target) = self.target() else {
            return Err(CallFailure::Missing(self.unresolved.lock().unwrap().clone()));
        };
        if caller.depth >= self.max_call_depth {
            return Err(CallFailure::TooDeep(self.max_call_depth));
        }
        let permit = target.breaker.try_acquire().map_err(CallFailure::Rejected)?;
        let provider = &target.provider;
        let deadline = caller.deadline.min(Instant::now() + provider.limits.call_timeout);
        let call = CallContext { deadline, depth: caller.depth + 1, correlation_id: caller.correlation_id.clone() };
        let result = async {
            let mut warm = provider.checkout(call).await.map_err(|e| match e {
                Checkout::Busy(why) => CallFailure::Busy(why),
                Checkout::Failed(e) => {
                    CallFailure::Instantiation { provider: provider.name.to_string(), reason: reason(&e) }
                }
            })?;
            let func = warm.instance.get_func(&mut warm.store, target.functions[index]).ok_or_else(|| {
                CallFailure::Trap { provider: provider.name.to_string(), reason: "export disappeared".into() }
            })?;
            match tokio::time::timeout_at(deadline.into(), func.call_async(&mut warm.store, params, results)).await {
                Ok(Ok(())) => {
                    provider.checkin(warm);
                    Ok(())
                }
                Ok(Err(e)) => Err(classify(&e, provider, warm.store.data().limiter.exceeded)),
                Err(_) => Err(CallFailure::Timeout(provider.name.to_string())),
            }
        }
        .await;
        permit.record(outcome(&result, results));
        result
    }

    /// Tells the caller its call failed: in-band as `err(unavailable(..))` when the function's
    /// result type allows it, otherwise by trapping the caller with [`Unavailable`].
    fn answer_failure(&self, index: usize, failure: CallFailure, results: &mut [Val]) -> wasmtime::Result<()> {
        let interface = self.interface.full_name.clone();
        let reason = failure.to_string();
        tracing::warn!(caller = &*self.caller, interface, %reason, "inter-component call failed");
        if self.interface.functions[index].speaks_unavailable() {
            let message = format!("{interface} is unavailable: {reason}");
            let unavailable = Val::Variant("unavailable".into(), Some(Box::new(Val::String(message))));
            results[0] = Val::Result(Err(Some(Box::new(unavailable))));
            return Ok(());
        }
        Err(wasmtime::Error::new(Unavailable { interface, reason }))
    }
}

/// How a finished call ended: a returned `err` is a business error, not a failure.
fn outcome(result: &Result<(), CallFailure>, results: &[Val]) -> Outcome {
    match result {
        Ok(()) if matches!(results, [Val::Result(Err(_))]) => Outcome::BusinessError,
        Ok(()) => Outcome::Success,
        Err(failure) => failure.outcome(),
    }
}

fn classify(error: &wasmtime::Error, provider: &LoadedComponent, out_of_memory: bool) -> CallFailure {
    let name = provider.name.to_string();
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        CallFailure::Timeout(name)
    } else if out_of_memory {
        CallFailure::OutOfMemory(name)
    } else {
        CallFailure::Trap { provider: name, reason: reason(error) }
    }
}

/// A readable one-line reason for a wasmtime error: the trap or host error, not the backtrace.
pub fn reason(error: &wasmtime::Error) -> String {
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return trap.to_string();
    }
    if let Some(unavailable) = error.downcast_ref::<Unavailable>() {
        return unavailable.to_string();
    }
    error.root_cause().to_string()
}
