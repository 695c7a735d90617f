//! The order service. Over HTTP: `/api/v1/orders` (create, list with filters),
//! `/api/v1/orders/{id}` (get, status change, cancel) and `/api/v1/orders/user/{user_id}`.
//! It checks users only through its `shop:users/api` import, which Trellis links to the
//! user service; to other services it offers `shop:orders/api`.

mod orders;

use guest_http::{Request, Response};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::shop::orders::api;
use exports::trellis::http::routes::{self, Route};

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/order-service",
    with: {
        "wasi:keyvalue/store@0.2.0-draft2": service_kit::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": service_kit::wasi::keyvalue::atomics,
        "wasi:keyvalue/batch@0.2.0-draft2": service_kit::wasi::keyvalue::batch,
        "wasi:logging/logging@0.1.0-draft": service_kit::wasi::logging::logging,
    },
    generate_all,
});

struct OrderService;

export!(OrderService);
wasip2::http::proxy::export!(OrderService);

impl routes::Guest for OrderService {
    fn routes() -> Vec<Route> {
        [
            ("GET", "/api/v1/orders"),
            ("POST", "/api/v1/orders"),
            ("GET", "/api/v1/orders/{id}"),
            ("PUT", "/api/v1/orders/{id}"),
            ("DELETE", "/api/v1/orders/{id}"),
            ("GET", "/api/v1/orders/user/{user_id}"),
        ]
        .into_iter()
        .map(|(method, pattern)| Route { method: method.to_string(), pattern: pattern.to_string() })
        .collect()
    }
}

impl wasip2::exports::http::incoming_handler::Guest for OrderService {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let version = env!("CARGO_PKG_VERSION");
        guest_http::serve(request, out, |request| route(request).with_header("x-service-version", version));
    }
}

fn route(request: Request) -> Response {
    let segments = request.segments();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v1", "orders"]) => orders::create(&request),
        ("GET", ["api", "v1", "orders"]) => orders::list(&request),
        ("GET", ["api", "v1", "orders", "user", user_id]) => match service_kit::parse_id(user_id) {
            Some(user_id) => orders::of_user_response(user_id),
            None => Response::not_found(&format!("no user {user_id}")),
        },
        (method, ["api", "v1", "orders", id]) => {
            let Some(id) = service_kit::parse_id(id) else { return Response::not_found(&format!("no order {id}")) };
            match method {
                "GET" => orders::get(id),
                "PUT" => orders::change_status(&request, id),
                "DELETE" => orders::cancel(id),
                _ => Response::method_not_allowed(method, &request.path),
            }
        }
        _ => Response::not_found(&request.path),
    }
}

impl api::Guest for OrderService {
    fn orders_of_user(user_id: u64) -> Result<Vec<api::Order>, api::Error> {
        let orders =
            orders::of_user(user_id).map_err(|e| api::Error::Unavailable(format!("order storage failed: {e}")))?;
        Ok(orders.into_iter().map(Into::into).collect())
    }

    fn order_stats() -> Result<api::Stats, api::Error> {
        orders::stats().map_err(|e| api::Error::Unavailable(format!("order storage failed: {e}")))
    }
}
