//! `?page=1&page_size=20` paging: both optional positive integers, `page_size` clamped to
//! 100, a page past the end is empty, and the answer is `{"items", "page", "page_size", "total"}`.

use guest_http::{Request, Response};
use serde::Serialize;
use serde_json::json;

/// The largest page a client can ask for; larger asks are clamped and echoed as this.
pub const MAX_PAGE_SIZE: u64 = 100;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u64,
    pub page_size: u64,
}

impl Paging {
    /// Reads the paging parameters; anything but a positive integer is 400.
    pub fn from_request(request: &Request) -> Result<Self, Response> {
        let read = |name: &str, default: u64| -> Result<u64, Response> {
            match request.query_param(name) {
                None => Ok(default),
                Some(text) => match text.parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(Response::error(
                        400,
                        "invalid_paging",
                        &format!("{name} must be a positive integer, not {text:?}"),
                    )),
                },
            }
        };
        let page = read("page", 1)?;
        let page_size = read("page_size", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE);
        Ok(Self { page, page_size })
    }

    /// The slice of `total` items this page covers.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = usize::try_from((self.page - 1).saturating_mul(self.page_size)).unwrap_or(usize::MAX).min(total);
        let end = start.saturating_add(self.page_size as usize).min(total);
        start..end
    }

    pub fn answer(&self, items: &[impl Serialize], total: usize) -> Response {
        Response::json(200, &json!({ "items": items, "page": self.page, "page_size": self.page_size, "total": total }))
    }
}
