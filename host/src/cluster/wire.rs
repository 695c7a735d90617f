//! How a call crosses hosts: the subject it is sent on, the headers that carry its context,
//! and its values in WAVE, the WebAssembly Value Encoding of the component model (wasmtime's
//! own support). The request body is a WAVE function call, `get-user(42)`; the reply body is
//! the WAVE result, or the fault's message when the outcome header says it failed.
//!
//! WAVE over wRPC's binary value encoding: wRPC's wasmtime codec (`wrpc-runtime-wasmtime`
//! 0.31) is built for wasmtime 45 and Trellis embeds 48, so using it would mean writing that
//! encoding again by hand; WAVE is a standard encoding wasmtime 48 reads and writes itself.
//! `make bench` measures what it costs against a bare NATS round trip.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use wasmtime::component::Val;
use wasmtime::component::types::ComponentFunc;
use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::wasm_wave::wasm::{DisplayFuncArgs, DisplayValue};

use crate::discovery::Interface;
use crate::runtime::{CallContext, Fault, Unavailable};

/// The export a call is for, e.g. `shop:users/api@0.1.2`.
pub(super) const EXPORT: &str = "Trellis-Export";
/// The milliseconds left of the caller's deadline when the call was sent.
pub(super) const DEADLINE_MS: &str = "Trellis-Deadline-Ms";
/// How deep the call is nested (the caller's depth plus one).
pub(super) const DEPTH: &str = "Trellis-Depth";
/// The correlation id of the request that caused the call.
pub(super) const CORRELATION_ID: &str = "Trellis-Correlation-Id";
/// The calling host's id, for the callee's log.
pub(super) const CALLER_HOST: &str = "Trellis-Caller-Host";
/// On a reply: the id of the host that answered.
pub(super) const HOST: &str = "Trellis-Host";
/// On a reply: `ok`, or the kind of fault (`busy`, `timeout`, `unavailable`, `trap`, `invalid`).
pub(super) const OUTCOME: &str = "Trellis-Outcome";

/// The subject the replicas of component `name` answer calls on. A component name may hold
/// `.`, which separates subject tokens; `~`, which no component name holds, stands for it.
pub(super) fn call_subject(cluster: &str, component: &str) -> String {
    format!("trellis.{cluster}.call.{}", component.replace('.', "~"))
}

/// The headers of a call made with `call`'s context to `export`.
pub(super) fn call_headers(export: &str, call: &CallContext, host: &str) -> HeaderMap {
    let left = call.deadline.saturating_duration_since(Instant::now());
    let mut headers = HeaderMap::new();
    headers.insert(EXPORT, export);
    headers.insert(DEADLINE_MS, left.as_millis().to_string().as_str());
    headers.insert(DEPTH, call.depth.to_string().as_str());
    headers.insert(CORRELATION_ID, &*call.correlation_id);
    headers.insert(CALLER_HOST, host);
    headers
}

/// The call context a callee runs a call from another host with: its deadline counted from
/// when it arrived, and the caller's depth and correlation id.
pub(super) fn call_context(headers: &HeaderMap) -> Result<CallContext, String> {
    let number = |name: &str| -> Result<u64, String> {
        let value = headers.get(name).ok_or_else(|| format!("the {name} header is missing"))?;
        value.as_str().parse().map_err(|_| format!("the {name} header is not a number"))
    };
    let deadline = Instant::now() + Duration::from_millis(number(DEADLINE_MS)?);
    let depth = u32::try_from(number(DEPTH)?).map_err(|_| "the depth is out of range".to_string())?;
    let correlation_id = headers.get(CORRELATION_ID).map_or("-", |v| v.as_str());
    Ok(CallContext { deadline, depth, correlation_id: correlation_id.into() })
}

/// `function(params...)` in WAVE.
pub(super) fn encode_call(function: &str, params: &[Val]) -> String {
    format!("{function}{}", DisplayFuncArgs(params))
}

/// Which function of `interface` a call is for, and its parameters, read with the callee's
/// own types of it.
pub(super) fn decode_call(body: &[u8], interface: &Interface) -> Result<(usize, Vec<Val>), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the call is not UTF-8".to_string())?;
    let call = UntypedFuncCall::parse(text).map_err(|e| format!("the call is not WAVE: {e}"))?;
    let name = call.name();
    let (index, ty) = interface
        .functions
        .iter()
        .enumerate()
        .find_map(|(i, f)| (f.name == name).then_some((i, f.func.as_ref()?)))
        .ok_or_else(|| format!("{} has no function `{name}`", interface.full_name))?;
    let types: Vec<_> = ty.params().map(|(_, t)| t).collect();
    let params =
        call.to_wasm_params::<Val>(types.iter()).map_err(|e| format!("the parameters do not fit `{name}`: {e}"))?;
    Ok((index, params))
}

/// A function's results (none or one, in the component model) in WAVE.
pub(super) fn encode_results(results: &[Val]) -> String {
    results.first().map(|v| DisplayValue(v).to_string()).unwrap_or_default()
}

/// Results read with the caller's own types of the function, into `results`.
pub(super) fn decode_results(body: &[u8], ty: &ComponentFunc, results: &mut [Val]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the results are not UTF-8".to_string())?;
    match (ty.results().next(), results) {
        (None, []) => Ok(()),
        (Some(result), [slot]) => {
            *slot = Val::from_wave(&result, text).map_err(|e| format!("the result does not fit: {e}"))?;
            Ok(())
        }
        _ => Err("the function's results do not match its type".to_string()),
    }
}

/// A fault as the outcome header names it.
pub(super) fn outcome_of(fault: &Fault) -> &'static str {
    match fault {
        Fault::Busy(_) => "busy",
        Fault::Timeout(_) => "timeout",
        Fault::Unavailable(_) => "unavailable",
        Fault::Trap { .. } | Fault::OutOfMemory(_) | Fault::Instantiation { .. } => "trap",
    }
}

/// The fault a failed reply stands for, named after the component that answered it.
pub(super) fn fault_of(outcome: &str, message: &[u8], component: &str, export: &str) -> Fault {
    let message = String::from_utf8_lossy(message).into_owned();
    match outcome {
        "busy" => Fault::Busy(message),
        "timeout" => Fault::Timeout(component.to_string()),
        "unavailable" => Fault::Unavailable(Unavailable { interface: export.to_string(), reason: message }),
        _ => Fault::Trap { component: component.to_string(), reason: message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotted_component_name_is_one_subject_token() {
        assert_eq!(call_subject("shop", "user-service.v2"), "trellis.shop.call.user-service~v2");
    }

    #[test]
    fn a_call_is_a_wave_function_call() {
        let params = [Val::U64(42), Val::String("a \"quoted\"\nname".into())];
        assert_eq!(encode_call("get-user", &params), r#"get-user(42, "a \"quoted\"\nname")"#);
        let record = Val::Record(vec![("id".into(), Val::U64(1)), ("tags".into(), Val::List(vec![]))]);
        assert_eq!(encode_results(&[Val::Result(Ok(Some(Box::new(record))))]), "ok({id: 1, tags: []})");
        assert_eq!(encode_results(&[]), "");
    }
}
