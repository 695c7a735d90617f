//! How guest code runs: the wasmtime engines and their epoch ticker (`engine`), the data of
//! each Store with its limits, deadline and capabilities (`store`), and what a failure of
//! guest code means (`fault`). Which instance runs when is the component's business; which
//! component is loaded is the registry's.

mod engine;
mod fault;
mod store;

pub use engine::Engines;
pub(crate) use engine::{release_freed_memory, return_large_buffers};
pub(crate) use fault::{Fault, Unavailable, reason};
pub use store::CallContext;
pub(crate) use store::{HostState, add_to_linker, new_store};
