//! The order service. Over HTTP: `/api/v1/orders` (create, list with filters),
//! `/api/v1/orders/{id}` (get, status change, cancel) and `/api/v1/orders/user/{user_id}`.
//! It checks users only through its `shop:users/api` import, which Trellis links to the
//! user service; to other services it offers `shop:orders/api`. It publishes its orders'
//! events and, receiving `users.deleted`, cancels that user's open orders (`saga`).

mod openapi;
mod orders;
mod saga;

use guest_http::{Answer, Request, Response};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::shop::orders::api;

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/order-service",
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
    // The WIT records are the stored and served JSON too; a status is its lowercase name.
    additional_derives: [serde::Serialize, serde::Deserialize, schemars::JsonSchema],
    additional_type_attributes: {
        "shop:orders/api@0.2.0/status": [#[serde(rename_all = "lowercase")]],
        "shop:orders/api@0.2.0/product-id": [#[serde(untagged)]],
    },
    generate_all,
});

struct OrderService;

export!(OrderService);
wasip2::http::proxy::export!(OrderService);

service_kit::export_routes!(
    OrderService,
    [
        ("GET", "/api/v1/orders"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/orders/{id}"),
        ("PUT", "/api/v1/orders/{id}"),
        ("DELETE", "/api/v1/orders/{id}"),
        ("GET", "/api/v1/orders/user/{user_id}"),
    ]
);

impl wasip2::exports::http::incoming_handler::Guest for OrderService {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        service_kit::serve(request, out, env!("CARGO_PKG_VERSION"), route);
    }
}

fn route(request: Request) -> Answer {
    let segments = request.segments();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v1", "orders"]) => orders::create(&request),
        ("GET", ["api", "v1", "orders"]) => orders::list(&request),
        ("GET", ["api", "v1", "orders", "user", user_id]) => {
            let user_id =
                service_kit::parse_id(user_id).ok_or_else(|| Response::not_found(&format!("no user {user_id}")))?;
            orders::of_user(user_id)
        }
        (method, ["api", "v1", "orders", id]) => {
            let id = service_kit::parse_id(id).ok_or_else(|| Response::not_found(&format!("no order {id}")))?;
            match method {
                "GET" => orders::get(id),
                "PUT" => orders::change_status(&request, id),
                "DELETE" => orders::cancel(id),
                _ => Err(Response::method_not_allowed(method, &request.path)),
            }
        }
        _ => Err(Response::not_found(&request.path)),
    }
}

impl exports::trellis::http::openapi::Guest for OrderService {
    fn document() -> String {
        openapi::document()
    }
}

impl api::Guest for OrderService {
    fn orders_of_user(user_id: u64, after: Option<u64>, limit: u32) -> Result<api::OrderPage, api::Error> {
        orders::page_of_user(user_id, after, limit)
            .map_err(|e| api::Error::Unavailable(format!("order storage failed: {e}")))
    }

    fn order_stats() -> Result<api::Stats, api::Error> {
        orders::stats().map_err(|e| api::Error::Unavailable(format!("order storage failed: {e}")))
    }
}
