//! CORS per policy: the host answers a browser's preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) itself, and marks the answers to allowed origins so the
//! browser hands them to the page.

use std::collections::HashSet;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::config::Cors;
use crate::http::responses::{self, Response};

/// Response headers a page may read besides the safelisted ones.
const EXPOSED: &str = "x-correlation-id, ratelimit, ratelimit-policy, retry-after, www-authenticate";

pub(super) struct CorsRule {
    any_origin: bool,
    origins: HashSet<String>,
    /// Empty: any method the browser asks for.
    methods: Vec<Method>,
    /// Lowercase; besides these only the safelisted headers, which browsers never ask for.
    headers: HashSet<String>,
    max_age: u64,
}

impl CorsRule {
    pub(super) fn new(cors: &Cors) -> Result<Self, String> {
        let mut methods = Vec::new();
        for m in &cors.methods {
            methods.push(
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("cors.methods: {m:?} is not an HTTP method"))?,
            );
        }
        for origin in &cors.origins {
            if origin != "*" && HeaderValue::from_str(origin).is_err() {
                return Err(format!("cors.origins: {origin:?} is not an origin"));
            }
        }
        Ok(Self {
            any_origin: cors.origins.iter().any(|o| o == "*"),
            origins: cors.origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
            methods,
            headers: cors.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            max_age: cors.max_age_seconds,
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.contains(&origin.to_ascii_lowercase())
    }

    /// The answer to a preflight: 204 with what is allowed, or 403 naming what is not.
    pub(super) fn preflight(&self, request: &http::request::Parts, method: &Method) -> Response {
        let origin = origin(&request.headers).unwrap_or_default();
        if !self.allows(origin) {
            return refuse(format!("the origin {origin} may not call this route"));
        }
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return refuse(format!("{origin} may not send {method} to this route"));
        }
        let asked = request.headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok());
        let asked: Vec<String> = asked
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if let Some(refused) = asked.iter().find(|h| !self.headers.contains(*h)) {
            return refuse(format!("{origin} may not send the header {refused} to this route"));
        }
        let mut response = http::Response::new(responses::body(""));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        self.mark(origin, headers);
        let methods =
            if self.methods.is_empty() { method.to_string() } else { join(self.methods.iter().map(Method::as_str)) };
        let insert = |headers: &mut HeaderMap, name, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        insert(headers, header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        if !asked.is_empty() {
            insert(headers, header::ACCESS_CONTROL_ALLOW_HEADERS, asked.join(", "));
        }
        insert(headers, header::ACCESS_CONTROL_MAX_AGE, self.max_age.to_string());
        response
    }

    /// Marks the answer to an allowed origin's request as readable by its page.
    pub(super) fn decorate(&self, request_origin: Option<&str>, headers: &mut HeaderMap) {
        if let Some(origin) = request_origin.filter(|o| self.allows(o)) {
            self.mark(origin, headers);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
        }
    }

    fn mark(&self, origin: &str, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

pub(super) fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN)?.to_str().ok()
}

/// The method a preflight asks about, if the request is one.
pub(crate) fn preflight_method(request: &http::request::Parts) -> Option<Method> {
    if request.method != Method::OPTIONS || !request.headers.contains_key(header::ORIGIN) {
        return None;
    }
    let asked = request.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?.to_str().ok()?;
    Method::from_bytes(asked.trim().as_bytes()).ok()
}

fn refuse(message: String) -> Response {
    responses::error(StatusCode::FORBIDDEN, "cors_refused", message)
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
