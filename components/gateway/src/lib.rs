//! The API gateway: aggregates the user and order services through their WIT interfaces
//! (`shop:users/api`, `shop:orders/api`), never over HTTP, and stores nothing itself.
//!
//! - `GET /api/v1/users/{id}/profile`: the user with their first orders (at most
//!   [`PROFILE_ORDERS`], oldest first) and how many they have. If the order service is
//!   unavailable, still 200 with `"orders": null` and a `degraded` note naming it.
//! - `GET /api/v1/dashboard`: user and order totals and revenue.

use guest_http::{Answer, Request, Response};
use serde_json::json;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use shop::orders::api as orders;
use shop::users::api as users;

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/gateway",
    with: {
        "wasi:logging/logging@0.1.0-draft": service_kit::wasi::logging::logging,
    },
    // Users and orders are served as the JSON the services themselves answer with.
    additional_derives: [serde::Serialize, schemars::JsonSchema],
    additional_type_attributes: {
        "shop:orders/api@0.2.0/status": [#[serde(rename_all = "lowercase")]],
        "shop:orders/api@0.2.0/product-id": [#[serde(untagged)]],
    },
    generate_all,
});

struct Gateway;

/// Orders shown in a profile: one bounded page, whatever the user's number of orders (all of
/// them are at `/api/v1/orders/user/{id}`).
const PROFILE_ORDERS: u32 = 100;

export!(Gateway);
wasip2::http::proxy::export!(Gateway);

service_kit::export_routes!(Gateway, [("GET", "/api/v1/users/{id}/profile"), ("GET", "/api/v1/dashboard")]);

impl wasip2::exports::http::incoming_handler::Guest for Gateway {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        service_kit::serve(request, out, env!("CARGO_PKG_VERSION"), route);
    }
}

fn route(request: Request) -> Answer {
    match request.segments().as_slice() {
        ["api", "v1", "users", id, "profile"] => {
            let id = service_kit::parse_id(id).ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
            profile(id)
        }
        ["api", "v1", "dashboard"] => dashboard(),
        _ => Err(Response::not_found(&request.path)),
    }
}

impl exports::trellis::http::openapi::Guest for Gateway {
    fn document() -> String {
        use service_kit::openapi::{Document, error, id, json_response};
        let mut doc = Document::new("Gateway", env!("CARGO_PKG_VERSION"));
        let (user, order) = (doc.schema::<users::User>(), doc.schema::<orders::Order>());
        let count = json!({ "type": ["integer", "null"], "minimum": 0 });
        let profile = json!({
            "type": "object",
            "required": ["user", "orders", "total_orders"],
            "properties": {
                "user": user,
                "orders": { "description": format!("The first {PROFILE_ORDERS}, oldest first; null when the order service is unavailable"),
                    "type": ["array", "null"], "items": order },
                "total_orders": count,
                "degraded": { "description": "Why the orders are missing", "type": "string" },
            },
        });
        let total = json!({ "type": "integer", "minimum": 0 });
        let dashboard = json!({
            "type": "object",
            "required": ["total_users", "total_orders", "pending_orders", "completed_orders", "total_revenue"],
            "properties": { "total_users": total, "total_orders": total, "pending_orders": total,
                "completed_orders": total, "total_revenue": { "type": "number" } },
        });
        doc.operation(
            "get",
            "/api/v1/users/{id}/profile",
            json!({
                "operationId": "userProfile", "summary": "A user with their first orders and how many they have",
                "tags": ["gateway"], "parameters": [id("id", "The user's id")],
                "responses": {
                    "200": json_response("The profile; degraded when the order service is unavailable", profile),
                    "400": error("The services refused the id"),
                    "404": error("No such user"),
                    "503": error("The user service is unavailable"),
                },
            }),
        );
        doc.operation(
            "get",
            "/api/v1/dashboard",
            json!({
                "operationId": "dashboard", "summary": "User and order totals and revenue", "tags": ["gateway"],
                "responses": {
                    "200": json_response("The totals", dashboard),
                    "503": error("The user or order service is unavailable"),
                },
            }),
        );
        doc.to_json()
    }
}

fn profile(id: u64) -> Answer {
    let user = match users::get_user(id) {
        Ok(user) => user,
        Err(users::Error::NotFound) => return Err(Response::not_found(&format!("no user {id}"))),
        Err(users::Error::Unavailable(why)) => return Err(Response::error(503, "unavailable", &why)),
        Err(users::Error::Invalid(why) | users::Error::Conflict(why)) => {
            return Err(Response::error(400, "invalid", &why));
        }
    };
    Ok(match orders::orders_of_user(id, None, PROFILE_ORDERS) {
        Ok(page) => Response::json(200, &json!({ "user": user, "total_orders": page.total, "orders": page.orders })),
        Err(orders::Error::Unavailable(why)) => {
            service_kit::warn("gateway", &format!("profile {id} degraded: {why}"));
            Response::json(200, &json!({ "user": user, "orders": null, "total_orders": null, "degraded": why }))
        }
        Err(orders::Error::NotFound) => Response::json(200, &json!({ "user": user, "orders": [], "total_orders": 0 })),
        Err(orders::Error::Invalid(why) | orders::Error::Conflict(why)) => Response::error(400, "invalid", &why),
    })
}

fn dashboard() -> Answer {
    let total_users = match users::count_users() {
        Ok(n) => n,
        Err(users::Error::Unavailable(why)) => return Err(Response::error(503, "unavailable", &why)),
        Err(other) => return Err(Response::error(500, "internal", &format!("{other:?}"))),
    };
    let stats = match orders::order_stats() {
        Ok(stats) => stats,
        Err(orders::Error::Unavailable(why)) => return Err(Response::error(503, "unavailable", &why)),
        Err(other) => return Err(Response::error(500, "internal", &format!("{other:?}"))),
    };
    Ok(Response::json(
        200,
        &json!({
            "total_users": total_users,
            "total_orders": stats.total_orders,
            "pending_orders": stats.pending_orders,
            "completed_orders": stats.completed_orders,
            "total_revenue": stats.total_revenue,
        }),
    ))
}
