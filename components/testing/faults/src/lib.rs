//! The misbehaviours the fault-injection test components perform on request: each one is a
//! fault Trellis must contain without harming the host or other components.

use std::sync::atomic::{AtomicU64, Ordering};

/// Calls seen by this instance, for `flaky`.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Loops forever: only an interruption stops it.
pub fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB after 1 MiB, touching each, until memory runs out (then aborts: a trap).
pub fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Recurses until the stack overflows (a trap).
#[allow(unconditional_recursion)]
pub fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    frame[0] + recurse(depth + 1) + std::hint::black_box(1)
}

/// Sleeps, then returns: a slow but healthy answer.
pub fn sleep(ms: u32) {
    std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
}

/// Whether this call should fail, so that `percent` of calls fail: calls 1..=percent of
/// every hundred, counted per instance.
pub fn flaky(percent: u32) -> bool {
    let call = CALLS.fetch_add(1, Ordering::Relaxed) % 100;
    call < u64::from(percent)
}
