//! Trellis runs microservices as WebAssembly components: it loads every component in a
//! folder, discovers from their WIT types what each provides and needs, links imports to
//! exports at run time through a circuit breaker, and serves HTTP into them.
//!
//! # Layout
//! Each subsystem is a folder; its `mod.rs` says what it owns and what it leaves to others.
//! Arrows point one way only: a module never imports one that imports it back.
//! - [`cli`]: the command line; `serve` is the composition root that builds everything else.
//! - [`config`]: `trellis.toml` and the serve settings (flags over file over defaults).
//! - [`runtime`]: the wasmtime engine, each Store's data and limits, and fault classification.
//! - `discovery`: what a component imports and exports, read from its own type, and type checks.
//! - `component`: one loaded component: validation, its instance pool, bulkhead and invocation.
//! - [`registry`]: the loaded set: snapshot, loader, resolver, folder scan and watcher.
//! - `linking`: links between components: forwarding calls, the unavailable convention.
//! - [`breaker`]: the circuit breaker on every link.
//! - [`capabilities`]: what the host provides to guests besides WASI (`wasi:keyvalue`,
//!   `wasi:logging`, `wasi:messaging`).
//! - `events`: the durable bus behind `wasi:messaging`: the log, subscribers, delivery.
//! - `http`: the listeners, the router, and dispatching a request into a component.
//! - `docs`: `/openapi.json` merged from the components' own documents, and `/docs`.
//! - `policy`: the edge's policies: tokens, API keys, scopes, rate limits and CORS.
//! - `ops`: health, the admin API, metrics and the services report.

// Items are crate-visible unless the public API below re-exports them.
#![warn(unreachable_pub)]

pub mod breaker;
pub(crate) mod capabilities;
pub mod cli;
pub mod cluster;
pub(crate) mod component;
pub mod config;
pub(crate) mod discovery;
pub(crate) mod docs;
pub(crate) mod events;
pub(crate) mod http;
pub(crate) mod linking;
pub(crate) mod ops;
pub(crate) mod policy;
pub(crate) mod registry;
pub(crate) mod runtime;

// The public API: what the binary, the benchmarks and the tests use.
pub use capabilities::keyvalue::Storage;
pub use component::{LoadedComponent, Warm};
pub use events::Bus;
pub use ops::report;
pub use registry::{Registry, Shared};
pub use runtime::{CallContext, Engines};
