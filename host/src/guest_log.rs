//! The host side of `wasi:logging`: guest log lines become `tracing` events tagged with the
//! component and the correlation id of the request they belong to.

use crate::bindings::logging::{self, Level};
use crate::state::HostState;

impl logging::Host for HostState {
    async fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let component = &*self.component;
        let correlation_id = &*self.call.correlation_id;
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(target: "guest", component, correlation_id, context, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error | Level::Critical => emit!(error),
        }
        Ok(())
    }
}

pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    logging::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(linker, |s| s)
}
