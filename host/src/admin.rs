//! The admin API, served only on the admin listener: everything under `/_trellis/`.

use http::{Method, StatusCode};
use hyper::body::Incoming;

use crate::responses::{self, Response};
use crate::server::App;
use crate::status;

pub async fn handle(app: &App, request: http::Request<Incoming>) -> Response {
    let path = request.uri().path().trim_end_matches('/');
    match (request.method(), path) {
        (&Method::GET, "/_trellis/services") => responses::json(StatusCode::OK, &status::services(&app.registry.snapshot())),
        (_, "/_trellis/services") => {
            responses::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "/_trellis/services answers GET only")
        }
        _ => responses::not_found(request.uri().path()),
    }
}
