//! Test provider of `test:greet/api@1.2.0`: greets, counts its calls, and misbehaves on
//! demand (trap, spin, slow, oom, recurse, flaky) so tests can watch Trellis contain each fault.

use std::sync::atomic::{AtomicU64, Ordering};

use exports::test::greet::api::{Error, Fault, Guest};

wit_bindgen::generate!({ world: "provider" });

struct Provider;

export!(Provider);

/// Calls served by this instance: tells a warm instance from a fresh one.
static CALLS: AtomicU64 = AtomicU64::new(0);

impl Guest for Provider {
    fn greet(name: String) -> Result<String, Error> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        if name.is_empty() {
            return Err(Error::Invalid("the name is empty".to_string()));
        }
        Ok(format!("Hello, {name}!"))
    }

    fn misbehave(how: Fault, amount: u32) -> Result<String, Error> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        match how {
            Fault::None => Ok("fine".to_string()),
            Fault::Trap => panic!("asked to trap"),
            Fault::Spin => faults::spin(),
            Fault::Slow => {
                faults::sleep(amount);
                Ok(format!("slept {amount} ms"))
            }
            Fault::Oom => faults::exhaust_memory(),
            Fault::Recurse => Ok(format!("depth {}", faults::recurse(0))),
            Fault::Flaky if faults::flaky(amount) => panic!("flaky failure"),
            Fault::Flaky => Ok("lucky".to_string()),
        }
    }

    fn counter() -> u64 {
        CALLS.fetch_add(1, Ordering::Relaxed) + 1
    }
}
