//! Outgoing HTTP (`wasi:http/outgoing-handler`) as a granted capability: a component may
//! reach only the origins listed for it (`[components.NAME] allowed_outbound_hosts`), none by
//! default. Anything else, the host's own listeners included, is answered with the
//! `wasi:http` error for a denied request, logged and counted. An allowed request is bounded
//! by the caller's deadline, and its response body by a size limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::ops::metrics::METRICS;

/// One allowed origin: scheme, host and port, as in `https://api.example.com` or
/// `http://127.0.0.1:9000` (the port defaults to the scheme's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses an origin from the config file, saying what is wrong with a bad one.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri = text.parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let scheme = uri.scheme_str().ok_or_else(|| format!("{text:?} needs a scheme (http:// or https://)"))?;
        let port = match scheme {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("{text:?}: the scheme must be http or https, not {other}")),
        };
        let host = uri.host().ok_or_else(|| format!("{text:?} names no host"))?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
            return Err(format!("{text:?}: an origin has no path"));
        }
        let port = uri.port_u16().unwrap_or(port);
        Ok(Self { scheme: scheme.to_string(), host: host.to_ascii_lowercase(), port })
    }

    fn of(uri: &http::Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?.to_string();
        let default = if scheme == "https" { 443 } else { 80 };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        Some(Self { port: uri.port_u16().unwrap_or(default), scheme, host })
    }

    fn matches(&self, other: &Origin) -> bool {
        self.scheme == other.scheme
            && self.host.trim_start_matches('[').trim_end_matches(']') == other.host
            && self.port == other.port
    }
}

/// The `wasi:http` hooks of one Store: its component's grant, and the deadline of the work
/// it is doing now.
pub(crate) struct Outbound {
    component: Arc<str>,
    allowed: Arc<[Origin]>,
    /// Set for each unit of work: no request outlives it.
    pub(crate) deadline: Instant,
    max_response_bytes: usize,
}

impl Outbound {
    pub(crate) fn new(
        component: Arc<str>,
        allowed: Arc<[Origin]>,
        deadline: Instant,
        max_response_bytes: usize,
    ) -> Self {
        Self { component, allowed, deadline, max_response_bytes }
    }

    fn count(&self, result: &'static str) {
        METRICS.record_outbound(&self.component, result);
    }
}

type Sent = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        drop(fut);
        let target = Origin::of(request.uri());
        let allowed = target.as_ref().is_some_and(|t| self.allowed.iter().any(|a| a.matches(t)));
        if !allowed {
            self.count("denied");
            let uri = request.uri().to_string();
            tracing::warn!(component = &*self.component, uri = ?uri, "outgoing request denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        self.count("allowed");
        let (deadline, limit) = (self.deadline, self.max_response_bytes);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bounded = |given: Option<std::time::Duration>| Some(given.map_or(remaining, |g| g.min(remaining)));
        let options = RequestOptions {
            connect_timeout: bounded(options.and_then(|o| o.connect_timeout)),
            first_byte_timeout: bounded(options.and_then(|o| o.first_byte_timeout)),
            between_bytes_timeout: bounded(options.and_then(|o| o.between_bytes_timeout)),
        };
        Box::new(async move {
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let (response, io) =
                tokio::time::timeout_at(deadline.into(), sent).await.map_err(|_| Error::HttpResponseTimeout)??;
            let response = response.map(|body| {
                Limited::new(body, limit)
                    .map_err(move |e| match e.downcast::<Error>() {
                        Ok(e) => *e,
                        Err(_) => Error::HttpResponseBodySize(Some(limit as u64)),
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_scheme_host_and_port_and_nothing_else() {
        let api = Origin::parse("https://API.example.com").unwrap();
        assert!(api.matches(&Origin::of(&"https://api.example.com/v1/x".parse().unwrap()).unwrap()));
        assert!(!api.matches(&Origin::of(&"http://api.example.com/".parse().unwrap()).unwrap()), "scheme");
        assert!(!api.matches(&Origin::of(&"https://api.example.com:8443/".parse().unwrap()).unwrap()), "port");
        let local = Origin::parse("http://127.0.0.1:9000").unwrap();
        assert!(local.matches(&Origin::of(&"http://127.0.0.1:9000/".parse().unwrap()).unwrap()));
        assert!(!local.matches(&Origin::of(&"http://127.0.0.1:9001/".parse().unwrap()).unwrap()));
        assert!(Origin::parse("ftp://x").unwrap_err().contains("http or https"));
        assert!(Origin::parse("api.example.com").is_err(), "a scheme is required");
        assert!(Origin::parse("https://x.com/path").unwrap_err().contains("no path"));
    }
}
