//! What the host provides to components besides WASI: `wasi:keyvalue` (durable storage),
//! `wasi:logging`, `wasi:messaging` (sending and receiving events through a broker the
//! events subsystem provides), and outgoing `wasi:http` limited to the origins granted
//! (`outbound`). Each capability is the same pieces: its host implementation of the WIT,
//! the view type that implementation runs on (borrowed from a Store's data, as
//! `wasmtime-wasi-http` does with `WasiHttpCtxView`), and its backends. The Store data that
//! holds the contexts, and the linker that registers them, are the runtime's.

pub(crate) mod bindings;
pub(crate) mod keyvalue;
pub(crate) mod logging;
pub(crate) mod messaging;
pub(crate) mod outbound;
