//! The HTTP plumbing every guest component shares: a `wasi:http` request read whole into a
//! plain struct, and a response written back in one go (or streamed as it is produced), with the JSON error shape every
//! Trellis service uses (`{"error": {"code", "message"}}`). Handlers return [`Answer`]: a
//! refusal is an `Err(response)`, so they read straight down with `?`. Routing and business
//! logic stay in each component.

use std::io::Write;
use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

use wasip2::io::streams::{OutputStream, StreamError};

/// Bytes written per call: the most `blocking-write-and-flush` accepts at once.
const WRITE_CHUNK: usize = 4096;

/// A request, read whole.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Reads the request and its body. The host has already enforced the body size limit.
    pub fn read(incoming: &IncomingRequest) -> Result<Self, Response> {
        let method = match incoming.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Other(other) => other,
        };
        let target = incoming.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_string(), query.to_string()),
            None => (target, String::new()),
        };
        let headers = incoming.headers().entries();
        let body = match has_body(&method, &headers) {
            true => read_body(incoming).map_err(|e| Response::error(400, "bad_body", &e))?,
            false => Vec::new(),
        };
        Ok(Self { method, path, query, headers, body })
    }

    /// The path split into its non-empty segments.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The first value of a query parameter (not percent-decoded: ours are numbers and words).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
    }

    /// The body parsed as JSON, insisting on `application/json` (400 otherwise).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Response> {
        let content_type = self.header("content-type").unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/json") {
            let message = format!("the body must be application/json, not {:?}", content_type);
            return Err(Response::error(400, "unsupported_content_type", &message));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Response::error(400, "malformed_json", &format!("the body is not valid JSON for this request: {e}"))
        })
    }
}

/// Whether the request may have a body, so that reading it (host calls and a wait) is
/// skipped when it cannot. In HTTP/1.1 a request has one only with a `content-length` other
/// than 0 or a transfer coding (RFC 9112, section 6.3), but `wasi:http` never shows a guest
/// `transfer-encoding`. Trellis gives every request body it passes on its length; other hosts
/// may not, so methods that usually carry a body are always read.
fn has_body(method: &str, headers: &[(String, Vec<u8>)]) -> bool {
    let usually_bodiless = matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS");
    !usually_bodiless
        || headers.iter().any(|(name, value)| name.eq_ignore_ascii_case("content-length") && value.as_slice() != b"0")
}

fn read_body(incoming: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = incoming.consume().map_err(|()| "the request body was already taken".to_string())?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| "the request body stream was already taken".to_string())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
        }
    }
    drop(body);
    Ok(bytes)
}

/// What a handler gives: the response, or the response that refuses the request.
pub type Answer = Result<Response, Response>;

/// A response, written whole, or streamed as its body is produced.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers besides `content-type` and `content-length`.
    pub headers: Vec<(&'static str, String)>,
    /// When set, the body is what this writes, sent as it is written (and `body` is unused).
    pub stream: Option<Stream>,
}

/// Writes a streamed body. An error ends the body early: the client sees it incomplete.
pub struct Stream(Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()>>);

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream")
    }
}

/// The response body as an `io::Write`, sent in chunks of [`WRITE_CHUNK`] bytes.
struct BodyWriter<'a> {
    stream: &'a OutputStream,
    buffer: Vec<u8>,
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        for chunk in self.buffer.chunks(WRITE_CHUNK) {
            self.stream.blocking_write_and_flush(chunk).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        self.buffer.clear();
        Ok(())
    }
}

impl Response {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self { status, content_type: "application/json", body, headers: Vec::new(), stream: None },
            Err(e) => Self::error(500, "internal", &format!("cannot encode the answer: {e}")),
        }
    }

    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: text.into().into_bytes(),
            headers: Vec::new(),
            stream: None,
        }
    }

    /// 204 with no body.
    pub fn empty() -> Self {
        Self { status: 204, content_type: "text/plain", body: Vec::new(), headers: Vec::new(), stream: None }
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// `{"error": {"code": code, "message": message}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        Self {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
            stream: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::error(404, "not_found", what)
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::error(405, "method_not_allowed", &format!("{method} is not allowed on {path}"))
    }

    /// A response whose body `write` produces while it is sent, in chunks and without a
    /// `content-length`: its memory stays flat whatever its size.
    pub fn streamed(
        status: u16,
        content_type: &'static str,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()> + 'static,
    ) -> Self {
        Self { status, content_type, body: Vec::new(), headers: Vec::new(), stream: Some(Stream(Box::new(write))) }
    }

    /// Sends the response through the outparam.
    pub fn send(self, out: ResponseOutparam) {
        // All headers in one host call.
        let mut fields = Vec::with_capacity(self.headers.len() + 2);
        fields.push(("content-type".to_string(), self.content_type.as_bytes().to_vec()));
        if self.stream.is_none() {
            fields.push(("content-length".to_string(), self.body.len().to_string().into_bytes()));
        }
        fields.extend(self.headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())));
        let headers = match Fields::from_list(&fields) {
            Ok(headers) => headers,
            Err(e) => {
                let refused = format!("the response's headers are refused: {e:?}");
                return Response::error(500, "internal", &refused).send(out);
            }
        };
        let response = OutgoingResponse::new(headers);
        if self.status != 200 {
            let _ = response.set_status_code(self.status);
        }
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        let Ok(stream) = body.write() else { return };
        if let Some(Stream(write)) = self.stream {
            let mut writer = BodyWriter { stream: &stream, buffer: Vec::with_capacity(WRITE_CHUNK) };
            if write(&mut writer).and_then(|()| writer.flush()).is_err() {
                return;
            }
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
            return;
        }
        for chunk in self.body.chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

/// Serves one request with `handler`; a refusal is sent like any other response.
pub fn serve(incoming: IncomingRequest, out: ResponseOutparam, handler: impl FnOnce(Request) -> Answer) {
    let answer = Request::read(&incoming).and_then(handler);
    answer.unwrap_or_else(|refusal| refusal).send(out);
}
