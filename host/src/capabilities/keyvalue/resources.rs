//! The resources a component holds through `wasi:keyvalue`, kept in its Store's resource table.
//! They are `pub` because the generated bindings re-export them with `pub use`.
#![allow(unreachable_pub)]

/// A bucket a component opened.
#[derive(Debug)]
pub struct Bucket {
    pub(super) name: String,
}

/// A compare-and-swap handle: the key and the value it held when the handle was made.
#[derive(Debug)]
pub struct Cas {
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) current: Option<Vec<u8>>,
}
