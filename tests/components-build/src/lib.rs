//! Where the guest components the tests run are: built by this crate's build script (which
//! runs `components/build.sh` when a component is missing or older than its sources).

/// The folder `components/build.sh` builds into: `NAME.wasm`, and `testing/NAME.wasm`.
pub const DIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist");
