//! What happens on each call through a link: the depth check, a breaker permit, the call
//! into the callee with what is left of the caller's deadline, the outcome back to the
//! breaker and the metrics, and the "unavailable" convention when there is no answer.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Linker, Val};

use super::Link;
use crate::breaker::{Outcome, Rejected};
use crate::ops::metrics::METRICS;
use crate::runtime::{CallContext, Fault, HostState, Unavailable};

/// Why a forwarded call gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum CallFailure {
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Rejected(Rejected),
    #[error("calls nested deeper than {0} levels (is there a cycle between components?)")]
    TooDeep(u32),
    #[error("{0}")]
    Fault(Fault),
}

impl CallFailure {
    fn outcome(&self) -> Outcome {
        match self {
            CallFailure::Missing(_) | CallFailure::Rejected(_) | CallFailure::TooDeep(_) => Outcome::Rejected,
            CallFailure::Fault(fault) => fault.outcome(),
        }
    }
}

impl Link {
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

    /// Forwards one call: breaker permit, the callee with the caller's deadline one level
    /// deeper, and the outcome back to the breaker.
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
        let call = CallContext {
            deadline: caller.deadline,
            depth: caller.depth + 1,
            correlation_id: caller.correlation_id.clone(),
        };
        let result = target.callee.call(index, call, params, results).await.map_err(CallFailure::Fault);
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
