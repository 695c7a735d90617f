//! What a client may cost: each connection's timeouts, enforced by a watchdog that watches
//! its bytes. A new connection, or one whose next request has begun, must deliver the
//! request's headers within `header_read_timeout`; a connection waiting for its next request
//! is closed after `idle_timeout` without traffic. Body reads are bounded where the body is
//! read (`dispatch`); how many connections are open at once, by the accept loops (`listener`).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::EdgeLimits;

/// Where a connection is in its life, as the watchdog sees it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Receiving a request's headers since this instant.
    Head(Instant),
    /// A request is being served.
    Serving,
    /// Waiting for the next request; the last traffic was at this instant.
    Idle(Instant),
}

/// One connection's phase, shared by its IO, its service and its watchdog.
#[derive(Clone)]
pub(crate) struct Activity(Arc<Mutex<Phase>>);

impl Activity {
    /// A connection accepted now: its first request's headers are due.
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(Phase::Head(Instant::now()))))
    }

    /// The headers of a request arrived: it is being served.
    pub(crate) fn serving(&self) {
        *self.0.lock().unwrap() = Phase::Serving;
    }

    /// The response left the service: the connection waits for its next request.
    pub(crate) fn answered(&self) {
        *self.0.lock().unwrap() = Phase::Idle(Instant::now());
    }

    /// Bytes moved: an idle connection either began its next request or is still writing
    /// out its last response.
    fn traffic(&self, read: bool) {
        let mut phase = self.0.lock().unwrap();
        if let Phase::Idle(_) = *phase {
            *phase = if read { Phase::Head(Instant::now()) } else { Phase::Idle(Instant::now()) };
        }
    }

    /// Resolves when the connection overstays a timeout, with which one.
    pub(crate) async fn expired(&self, limits: &EdgeLimits) -> &'static str {
        let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            match *self.0.lock().unwrap() {
                Phase::Head(since) if since.elapsed() > limits.header_read_timeout => return "header read timeout",
                Phase::Idle(since) if since.elapsed() > limits.idle_timeout => return "idle timeout",
                _ => {}
            }
        }
    }
}

/// A connection's stream, reporting its traffic to its [`Activity`].
pub(crate) struct Watched<S> {
    stream: S,
    activity: Activity,
}

impl<S> Watched<S> {
    pub(crate) fn new(stream: S, activity: Activity) -> Self {
        Self { stream, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.traffic(true);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.traffic(false);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.traffic(false);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
