//! Test provider of `test:greet/api@1.2.0`: greets, counts its calls, and misbehaves on
//! demand (trap, spin, slow, oom, recurse) so tests can watch Trellis contain each fault.

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

    fn misbehave(how: Fault, ms: u32) -> Result<String, Error> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        match how {
            Fault::None => Ok("fine".to_string()),
            Fault::Trap => panic!("asked to trap"),
            Fault::Spin => spin(),
            Fault::Slow => {
                std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
                Ok(format!("slept {ms} ms"))
            }
            Fault::Oom => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Fault::Recurse => Ok(format!("depth {}", recurse(0))),
        }
    }

    fn counter() -> u64 {
        CALLS.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    frame[0] + recurse(depth + 1) + std::hint::black_box(1)
}
