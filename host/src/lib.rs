//! Trellis runs microservices as WebAssembly components: it loads every component in a
//! folder, discovers from their WIT types what each provides and needs, links imports to
//! exports at run time through a circuit breaker, and serves HTTP into them.
//!
//! # Layout
//! - [`serve`] and [`server`]: `trellis serve`, the two listeners, and `run(.., shutdown)`.
//! - [`incoming`]: one HTTP request into a `wasi:http` component.
//! - [`router`]: which component answers which path.
//! - [`registry`] and [`resolver`]: loading components, and deciding who provides each import.
//! - [`watcher`]: live drop-in, applying the components folder's changes as they happen.
//! - [`discovery`] and [`typecheck`]: what a component imports and exports, and whether two agree.
//! - [`link`]: forwarding a call from one component into another, through its [`breaker`].
//! - [`loaded`] and [`state`]: a loaded component, its warm instances, and each Store's data.
//! - [`engine`]: the wasmtime engine, its epoch ticker and compile cache.
//! - [`keyvalue`] and [`guest_log`]: the host's `wasi:keyvalue` and `wasi:logging`, from [`bindings`].
//! - [`admin`], [`health`], [`status`], [`responses`]: the host's own endpoints and errors.
//! - [`cli`], [`config`], [`inspect`], [`status_table`]: the command line and the config file.
//! - [`metrics`]: the Prometheus metrics every layer records.

pub mod admin;
pub mod bindings;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod engine;
pub mod guest_log;
pub mod health;
pub mod incoming;
pub mod inspect;
pub mod keyvalue;
pub mod link;
pub mod loaded;
pub mod metrics;
pub mod registry;
pub mod resolver;
pub mod responses;
pub mod router;
pub mod serve;
pub mod server;
pub mod state;
pub mod status;
pub mod status_table;
pub mod typecheck;
pub mod watcher;
