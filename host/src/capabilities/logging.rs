//! Guest output as host logs: `wasi:logging` lines and a component's stdout and stderr
//! become `tracing` events with target `guest`, tagged with the component (and, for
//! `wasi:logging`, the correlation id of the request they belong to). Every line is escaped
//! so that no newline or escape sequence can forge a log line, lines are rate-limited per
//! component (what is dropped is counted in `trellis_guest_log_lines_dropped_total`), and
//! writing never blocks a request: the log writer is the host's background thread.

use std::io;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::AsyncWrite;
use wasmtime::component::{HasData, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::capabilities::bindings::logging::{self, Level};
use crate::ops::escape::one_line;
use crate::ops::metrics::METRICS;

/// The longest line kept whole; a longer one is cut there and logged in parts.
const MAX_LINE_BYTES: usize = 4096;

/// One component's log: its name and its rate limit, shared by all its Stores.
#[derive(Clone)]
pub(crate) struct GuestLog {
    component: Arc<str>,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl GuestLog {
    /// `per_second` lines a second, with bursts of twice that.
    pub(crate) fn new(component: Arc<str>, per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let limiter = Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)));
        Self { component, limiter }
    }

    /// Whether one more line may be logged now; counts it as dropped if not.
    fn admit(&self) -> bool {
        let admitted = self.limiter.check().is_ok();
        if !admitted {
            METRICS.record_guest_log_dropped(&self.component);
        }
        admitted
    }

    fn emit(&self, level: Level, context: &str, correlation_id: &str, message: &str) {
        if !self.admit() {
            return;
        }
        let (component, context, message) = (&*self.component, one_line(context), one_line(message));
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
    }

    /// The component's stdout or stderr, as a WASI output stream.
    pub(crate) fn stream(&self, name: &'static str) -> GuestOutput {
        GuestOutput { log: self.clone(), name }
    }
}

/// What `wasi:logging` runs on: the component's log and the unit of work it is serving.
pub(crate) struct LoggingView<'a> {
    pub(crate) log: &'a GuestLog,
    pub(crate) correlation_id: &'a str,
}

impl logging::Host for LoggingView<'_> {
    async fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        self.log.emit(level, &context, self.correlation_id, &message);
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

/// A component's stdout or stderr: each line becomes a log line (`context` is the stream).
pub(crate) struct GuestOutput {
    log: GuestLog,
    name: &'static str,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { log: self.log.clone(), name: self.name, pending: Mutex::new(Vec::new()) })
    }
}

/// Splits what a guest writes into lines and logs each; never waits.
struct LineWriter {
    log: GuestLog,
    name: &'static str,
    pending: Mutex<Vec<u8>>,
}

impl LineWriter {
    fn line(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let level = if self.name == "stderr" { Level::Warn } else { Level::Info };
        self.log.emit(level, self.name, "-", text.trim_end_matches('\r'));
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut pending = self.pending.lock().unwrap();
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            self.line(&line[..end]);
        }
        if pending.len() >= MAX_LINE_BYTES {
            let line: Vec<u8> = std::mem::take(&mut *pending);
            self.line(&line);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let line: Vec<u8> = std::mem::take(&mut *self.pending.lock().unwrap());
        if !line.is_empty() {
            self.line(&line);
        }
        Poll::Ready(Ok(()))
    }
}
