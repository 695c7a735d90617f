//! The API gateway: aggregates the user and order services through their WIT interfaces
//! (`shop:users/api`, `shop:orders/api`), never over HTTP, and stores nothing itself.
//!
//! - `GET /api/v1/users/{id}/profile`: the user with every order. If the order service is
//!   unavailable, still 200 with `"orders": null` and a `degraded` note naming it.
//! - `GET /api/v1/dashboard`: user and order totals and revenue.

use guest_http::{Request, Response};
use serde_json::{Value, json};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::trellis::http::routes::{self, Route};
use shop::orders::api as orders;
use shop::users::api as users;

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/gateway",
    with: {
        "wasi:logging/logging@0.1.0-draft": service_kit::wasi::logging::logging,
    },
    generate_all,
});

struct Gateway;

export!(Gateway);
wasip2::http::proxy::export!(Gateway);

impl routes::Guest for Gateway {
    fn routes() -> Vec<Route> {
        [("GET", "/api/v1/users/{id}/profile"), ("GET", "/api/v1/dashboard")]
            .into_iter()
            .map(|(method, pattern)| Route { method: method.to_string(), pattern: pattern.to_string() })
            .collect()
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Gateway {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let version = env!("CARGO_PKG_VERSION");
        guest_http::serve(request, out, |request| route(request).with_header("x-service-version", version));
    }
}

fn route(request: Request) -> Response {
    match request.segments().as_slice() {
        ["api", "v1", "users", id, "profile"] => match service_kit::parse_id(id) {
            Some(id) => profile(id),
            None => Response::not_found(&format!("no user {id}")),
        },
        ["api", "v1", "dashboard"] => dashboard(),
        _ => Response::not_found(&request.path),
    }
}

fn profile(id: u64) -> Response {
    let user = match users::get_user(id) {
        Ok(user) => user,
        Err(users::Error::NotFound) => return Response::not_found(&format!("no user {id}")),
        Err(users::Error::Unavailable(why)) => return Response::error(503, "unavailable", &why),
        Err(users::Error::Invalid(why) | users::Error::Conflict(why)) => return Response::error(400, "invalid", &why),
    };
    let user = user_json(&user);
    match orders::orders_of_user(id) {
        Ok(list) => Response::json(
            200,
            &json!({ "user": user, "orders": list.iter().map(order_json).collect::<Vec<_>>(), "total_orders": list.len() }),
        ),
        Err(orders::Error::Unavailable(why)) => {
            service_kit::warn("gateway", &format!("profile {id} degraded: {why}"));
            Response::json(200, &json!({ "user": user, "orders": null, "total_orders": null, "degraded": why }))
        }
        Err(orders::Error::NotFound) => Response::json(200, &json!({ "user": user, "orders": [], "total_orders": 0 })),
        Err(orders::Error::Invalid(why) | orders::Error::Conflict(why)) => Response::error(400, "invalid", &why),
    }
}

fn dashboard() -> Response {
    let total_users = match users::count_users() {
        Ok(n) => n,
        Err(users::Error::Unavailable(why)) => return Response::error(503, "unavailable", &why),
        Err(other) => return Response::error(500, "internal", &format!("{other:?}")),
    };
    match orders::order_stats() {
        Ok(stats) => Response::json(
            200,
            &json!({
                "total_users": total_users,
                "total_orders": stats.total_orders,
                "pending_orders": stats.pending_orders,
                "completed_orders": stats.completed_orders,
                "total_revenue": stats.total_revenue,
            }),
        ),
        Err(orders::Error::Unavailable(why)) => Response::error(503, "unavailable", &why),
        Err(other) => Response::error(500, "internal", &format!("{other:?}")),
    }
}

fn user_json(user: &users::User) -> Value {
    json!({ "id": user.id, "name": user.name, "email": user.email, "age": user.age, "created_at": user.created_at })
}

fn order_json(order: &orders::Order) -> Value {
    let status = match order.status {
        orders::Status::Pending => "pending",
        orders::Status::Confirmed => "confirmed",
        orders::Status::Shipped => "shipped",
        orders::Status::Delivered => "delivered",
        orders::Status::Cancelled => "cancelled",
    };
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|i| json!({ "product_id": i.product_id, "product_name": i.product_name, "quantity": i.quantity, "price": i.price }))
        .collect();
    json!({
        "id": order.id,
        "user_id": order.user_id,
        "items": items,
        "total": order.total,
        "status": status,
        "shipping_address": order.shipping_address,
        "created_at": order.created_at,
    })
}
