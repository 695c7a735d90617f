//! What it means when guest code fails: the one classification of a wasmtime error (trap,
//! deadline, out of memory) or a failure to get an instance (busy, instantiation), used
//! alike by HTTP requests, calls between components and load-time exports. How a fault is
//! answered (an HTTP status, an `unavailable` error) is each caller's business.

use crate::breaker::Outcome;

/// Why a call or request ran out of time; returned from the epoch callback so that the
/// trap it causes can be told apart from any other.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub(super) struct DeadlineExceeded;

/// The error a caller traps with when its import failed and the function's signature has no
/// way to say "unavailable" in-band. The HTTP layer turns it into a 503 naming the interface.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{interface} is unavailable: {reason}")]
pub struct Unavailable {
    pub interface: String,
    pub reason: String,
}

/// Why guest code gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fault {
    /// The component's bulkhead is full and so is its queue, or the wait outlasted the deadline.
    #[error("{0}")]
    Busy(String),
    #[error("component '{component}' could not be instantiated: {reason}")]
    Instantiation { component: String, reason: String },
    #[error("component '{component}' trapped: {reason}")]
    Trap { component: String, reason: String },
    #[error("component '{0}' ran out of its memory limit")]
    OutOfMemory(String),
    #[error("component '{0}' did not answer within the deadline")]
    Timeout(String),
    /// The guest trapped because something it imports was unavailable.
    #[error("{0}")]
    Unavailable(Unavailable),
}

impl Fault {
    /// Classifies an error that guest code of `component` ended with; `out_of_memory` says
    /// whether its Store had just been denied memory.
    pub fn classify(component: &str, error: &wasmtime::Error, out_of_memory: bool) -> Self {
        let component = component.to_string();
        if let Some(unavailable) = error.downcast_ref::<Unavailable>() {
            Fault::Unavailable(unavailable.clone())
        } else if error.downcast_ref::<DeadlineExceeded>().is_some() {
            Fault::Timeout(component)
        } else if out_of_memory {
            Fault::OutOfMemory(component)
        } else {
            Fault::Trap { component, reason: reason(error) }
        }
    }

    /// What the fault counts as in a breaker and the call metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            Fault::Busy(_) => Outcome::Rejected,
            Fault::Instantiation { .. } => Outcome::InstantiationFailure,
            Fault::Trap { .. } | Fault::Unavailable(_) => Outcome::Trap,
            Fault::OutOfMemory(_) => Outcome::OutOfMemory,
            Fault::Timeout(_) => Outcome::Timeout,
        }
    }
}

/// A readable one-line reason for a wasmtime error: the trap or host error, not the backtrace.
pub(crate) fn reason(error: &wasmtime::Error) -> String {
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return trap.to_string();
    }
    if let Some(unavailable) = error.downcast_ref::<Unavailable>() {
        return unavailable.to_string();
    }
    error.root_cause().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_is_told_apart() {
        let deadline = wasmtime::Error::new(DeadlineExceeded);
        assert!(matches!(Fault::classify("c", &deadline, false), Fault::Timeout(_)));
        let unavailable = wasmtime::Error::new(Unavailable { interface: "a:b/c".into(), reason: "gone".into() });
        let fault = Fault::classify("c", &unavailable, false);
        assert_eq!(fault.to_string(), "a:b/c is unavailable: gone");
        let trap = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        assert!(matches!(Fault::classify("c", &trap, true), Fault::OutOfMemory(_)));
        let Fault::Trap { reason, .. } = Fault::classify("c", &trap, false) else { panic!("a trap") };
        assert!(reason.contains("unreachable"), "{reason}");
    }
}
