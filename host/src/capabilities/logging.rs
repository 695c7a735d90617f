//! `wasi:logging` for every component: guest log lines become `tracing` events tagged with
//! the component and the correlation id of the request they belong to. The view borrows both
//! from the Store's data for one call.

use wasmtime::component::{HasData, Linker};

use crate::capabilities::bindings::logging::{self, Level};

/// Who is logging: the component and the unit of work it is serving.
pub(crate) struct LoggingView<'a> {
    pub component: &'a str,
    pub correlation_id: &'a str,
}

impl logging::Host for LoggingView<'_> {
    async fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let (component, correlation_id) = (self.component, self.correlation_id);
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

/// Names the view type for wasmtime's generated `add_to_linker`.
struct Logging;

impl HasData for Logging {
    type Data<'a> = LoggingView<'a>;
}

pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LoggingView<'_>,
) -> wasmtime::Result<()> {
    logging::add_to_linker::<T, Logging>(linker, view)
}
