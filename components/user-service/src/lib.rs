//! The user service. Over HTTP: `/api/v1/users` (create, list) and `/api/v1/users/{id}`
//! (get, partial update, delete). To other services: `shop:users/api` (get-user,
//! count-users). Users live in this component's own storage namespace.

mod openapi;
mod users;

use guest_http::{Answer, Request, Response};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::shop::users::api;

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/user-service",
    with: {
        "wasi:keyvalue/store@0.2.0-draft2": service_kit::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": service_kit::wasi::keyvalue::atomics,
        "wasi:keyvalue/batch@0.2.0-draft2": service_kit::wasi::keyvalue::batch,
        "trellis:keyvalue/ordered@0.1.0": service_kit::trellis::keyvalue::ordered,
        "trellis:keyvalue/sequences@0.1.0": service_kit::trellis::keyvalue::sequences,
        "wasi:logging/logging@0.1.0-draft": service_kit::wasi::logging::logging,
        "wasi:messaging/types@0.2.0-draft": service_kit::wasi::messaging::types,
        "wasi:messaging/producer@0.2.0-draft": service_kit::wasi::messaging::producer,
        "trellis:messaging/outbox@0.1.0": service_kit::trellis::messaging::outbox,
    },
    // The WIT records are the stored and served JSON too.
    additional_derives: [serde::Serialize, serde::Deserialize, schemars::JsonSchema],
});

struct UserService;

/// Sent as `x-service-version` on every HTTP response, so clients and tests can tell which
/// build answered. The `next` feature builds the test-only successor (`dist/testing/`).
const VERSION: &str = if cfg!(feature = "next") { "0.2.0-next" } else { env!("CARGO_PKG_VERSION") };

export!(UserService);
wasip2::http::proxy::export!(UserService);

service_kit::export_routes!(
    UserService,
    [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/{id}"),
        ("PUT", "/api/v1/users/{id}"),
        ("DELETE", "/api/v1/users/{id}"),
    ]
);

impl wasip2::exports::http::incoming_handler::Guest for UserService {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        service_kit::serve(request, out, VERSION, route);
    }
}

fn route(request: Request) -> Answer {
    let segments = request.segments();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v1", "users"]) => users::create(&request),
        ("GET", ["api", "v1", "users"]) => users::list(&request),
        (method, ["api", "v1", "users", id]) => {
            let id = service_kit::parse_id(id).ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
            match method {
                "GET" => users::get(id),
                "PUT" => users::update(&request, id),
                "DELETE" => users::delete(&request, id),
                _ => Err(Response::method_not_allowed(method, &request.path)),
            }
        }
        _ => Err(Response::not_found(&request.path)),
    }
}

impl exports::trellis::http::openapi::Guest for UserService {
    fn document() -> String {
        openapi::document(VERSION)
    }
}

impl api::Guest for UserService {
    fn get_user(id: u64) -> Result<api::User, api::Error> {
        service_kit::info("shop:users/api", &format!("get-user {id}"));
        match users::load(id) {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(api::Error::NotFound),
            Err(e) => Err(api::Error::Unavailable(format!("user storage failed: {e}"))),
        }
    }

    fn count_users() -> Result<u64, api::Error> {
        users::count().map_err(|e| api::Error::Unavailable(format!("user storage failed: {e}")))
    }
}
