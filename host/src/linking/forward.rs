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
    /// The caller's mistake, or its request's: never counted against the callee.
    #[error("its {what} take more than limits.max_call_value_bytes ({limit} bytes)")]
    TooLarge { what: &'static str, limit: usize },
    #[error("{0}")]
    Fault(Fault),
}

impl CallFailure {
    fn outcome(&self) -> Outcome {
        match self {
            CallFailure::Missing(_) | CallFailure::Rejected(_) | CallFailure::TooDeep(_) => Outcome::Rejected,
            CallFailure::TooLarge { .. } => Outcome::BusinessError,
            CallFailure::Fault(fault) => fault.outcome(),
        }
    }
}

impl Link {
    /// Adds one forwarding host function per imported function to the caller's linker.
    pub fn define(self: &Arc<Self>, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        let concurrent = linker.engine().get_concurrency_support();
        let mut instance = linker.instance(&self.interface.full_name)?;
        for (index, function) in self.interface.functions.iter().enumerate() {
            let link = Arc::clone(self);
            instance.func_new_async(&function.name, move |store, _ty, params, results| {
                let link = Arc::clone(&link);
                let call = store.data().call.clone();
                Box::new(async move {
                    let result = if concurrent {
                        Arc::clone(&link).call_in_own_task(index, call, params, results).await
                    } else {
                        link.call(index, &call, params, results).await
                    };
                    match result {
                        Ok(()) => Ok(()),
                        Err(failure) => link.answer_failure(index, failure, results),
                    }
                })
            })?;
        }
        Ok(())
    }

    /// A call from a WASI 0.3 caller, which runs inside its Store's event loop: wasmtime does
    /// not let another Store's event loop run inside it, so the call runs in a task of its own.
    async fn call_in_own_task(
        self: Arc<Self>,
        index: usize,
        caller: CallContext,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), CallFailure> {
        let (params, mut answer) = (params.to_vec(), results.to_vec());
        let task = tokio::spawn(async move {
            let result = self.call(index, &caller, &params, &mut answer).await;
            (result, answer)
        });
        let (result, answer) =
            task.await.map_err(|e| CallFailure::Missing(format!("the call's task ended without an answer: {e}")))?;
        results.clone_from_slice(&answer);
        result
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
        self.check_size("parameters", params)?;
        let permit = target.breaker.try_acquire().map_err(CallFailure::Rejected)?;
        let call = CallContext {
            deadline: caller.deadline,
            depth: caller.depth + 1,
            correlation_id: caller.correlation_id.clone(),
        };
        let result = target.callee.call(index, call, params, results).await.map_err(CallFailure::Fault);
        let result = result.and_then(|()| self.check_size("results", results));
        permit.record(outcome(&result, results));
        result
    }

    /// Refuses values larger than the link allows, before they are copied into another
    /// component's memory.
    fn check_size(&self, what: &'static str, values: &[Val]) -> Result<(), CallFailure> {
        let limit = self.max_value_bytes;
        size_within(values, limit).map(|_| ()).ok_or(CallFailure::TooLarge { what, limit })
    }

    /// Tells the caller its call failed: in-band as `err(unavailable(..))` when the function's
    /// result type allows it, otherwise by trapping the caller with [`Unavailable`].
    fn answer_failure(&self, index: usize, failure: CallFailure, results: &mut [Val]) -> wasmtime::Result<()> {
        let interface = self.interface.full_name.clone();
        let reason = failure.to_string();
        tracing::warn!(caller = &*self.caller, interface, %reason, "inter-component call failed");
        let function = &self.interface.functions[index];
        if let CallFailure::TooLarge { .. } = failure {
            // The caller's own error: in-band as `too-large` or `invalid` if it has either.
            if let Some(case) = ["too-large", "invalid"].into_iter().find(|case| function.has_error_case(case)) {
                let message = format!("a call to {interface}.{}: {reason}", function.name);
                results[0] =
                    Val::Result(Err(Some(Box::new(Val::Variant(case.into(), Some(Box::new(Val::String(message))))))));
                return Ok(());
            }
            return Err(wasmtime::Error::new(Unavailable { interface, reason }));
        }
        if function.speaks_unavailable() {
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

/// The bytes `values` take (strings and lists by their contents, other values by a word
/// each), or None as soon as that passes `limit`.
fn size_within<'a>(values: impl IntoIterator<Item = &'a Val>, limit: usize) -> Option<usize> {
    values.into_iter().try_fold(0usize, |total, value| {
        let total = total + size_of(value, limit.checked_sub(total)?)?;
        (total <= limit).then_some(total)
    })
}

fn size_of(value: &Val, limit: usize) -> Option<usize> {
    match value {
        Val::String(s) => (s.len() <= limit).then_some(s.len()),
        Val::List(items) | Val::Tuple(items) => Some(8 + size_within(items, limit.checked_sub(8)?)?),
        Val::Record(fields) => size_within(fields.iter().map(|(_, v)| v), limit),
        Val::Variant(_, Some(v)) | Val::Option(Some(v)) | Val::Result(Ok(Some(v)) | Err(Some(v))) => {
            Some(8 + size_of(v, limit.checked_sub(8)?)?)
        }
        Val::Flags(names) => Some(names.iter().map(String::len).sum::<usize>()).filter(|len| *len <= limit),
        _ => (8 <= limit).then_some(8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_measured_by_their_contents_and_the_count_stops_past_the_limit() {
        let order = Val::Record(vec![
            ("id".into(), Val::U64(1)),
            ("items".into(), Val::List(vec![Val::String("x".repeat(100)); 10])),
        ]);
        assert_eq!(size_within(std::slice::from_ref(&order), 10_000), Some(8 + 8 + 1000));
        assert_eq!(size_within(&[order], 1000), None);
        let big = Val::Result(Err(Some(Box::new(Val::Variant(
            "invalid".into(),
            Some(Box::new(Val::String("e".repeat(50)))),
        )))));
        assert_eq!(size_within(&[big], 100), Some(16 + 50));
    }
}
