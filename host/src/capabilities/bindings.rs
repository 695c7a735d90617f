//! Every binding the host generates from WIT, in one place: the interfaces Trellis provides
//! to components besides WASI (`wasi:keyvalue`, `trellis:keyvalue`, `wasi:logging`). Calls between components
//! use no generated bindings: the linker forwards them as dynamic values.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "trellis:worlds/host",
    imports: { default: async | trappable },
    with: {
        "wasi:keyvalue/store.bucket": crate::capabilities::keyvalue::resources::Bucket,
        "wasi:keyvalue/atomics.cas": crate::capabilities::keyvalue::resources::Cas,
    },
    require_store_data_send: true,
});

pub(crate) use trellis::keyvalue::{ordered, sequences};
pub(crate) use wasi::keyvalue::{atomics, batch, store};
pub(crate) use wasi::logging::logging;
