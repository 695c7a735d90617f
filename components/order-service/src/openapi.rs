//! The order service's OpenAPI document (its `trellis:http/openapi` export). An order's
//! schema is generated from the WIT record it serves; the bodies it accepts are described by
//! the types below, with the limits `orders` enforces.

use schemars::JsonSchema;
use serde_json::json;
use service_kit::openapi::{Document, body, error, id, json_response, page_of, paging};

use crate::exports::shop::orders::api::{Order, Status};
use crate::orders::{MAX_ADDRESS_CHARS, MAX_ITEMS, MAX_PRICE, MAX_PRODUCT_NAME_CHARS, MAX_QUANTITY, MAX_SKU_CHARS};

/// A new order, placed `pending`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct NewOrder {
    /// The user placing it: they must exist.
    #[schemars(range(min = 1))]
    user_id: u64,
    #[schemars(length(min = 1, max = MAX_ITEMS))]
    items: Vec<NewItem>,
    #[schemars(length(max = MAX_ADDRESS_CHARS))]
    shipping_address: String,
}

/// One line of a new order.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct NewItem {
    product_id: NewProductId,
    #[schemars(length(max = MAX_PRODUCT_NAME_CHARS))]
    product_name: String,
    #[schemars(range(min = 1, max = MAX_QUANTITY))]
    quantity: u32,
    /// The unit price.
    #[schemars(range(min = 0.0, max = MAX_PRICE))]
    price: f64,
}

/// A product's number, or its SKU.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum NewProductId {
    Number(#[schemars(range(min = 1))] u64),
    Sku(#[schemars(length(min = 1, max = MAX_SKU_CHARS))] String),
}

/// The status an order moves to: pending -> confirmed -> shipped -> delivered, and pending
/// or confirmed -> cancelled.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct StatusChange {
    status: Status,
}

pub fn document() -> String {
    let mut doc = Document::new("Order service", env!("CARGO_PKG_VERSION"));
    let (order, new_order, change) = (doc.schema::<Order>(), doc.schema::<NewOrder>(), doc.schema::<StatusChange>());
    let status = doc.schema::<Status>();
    let order_id = id("id", "The order's id");
    let tags = json!(["orders"]);
    let [page, page_size] = paging();
    doc.operation("get", "/api/v1/orders", json!({
        "operationId": "listOrders", "summary": "List orders, oldest first, optionally of one user or status",
        "tags": tags,
        "parameters": [page, page_size,
            { "name": "user_id", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": u64::MAX } },
            { "name": "status", "in": "query", "required": false, "schema": status }],
        "responses": {
            "200": json_response("One page of orders", page_of(order.clone())),
            "400": error("A paging parameter or filter is wrong"),
        },
    }));
    doc.operation(
        "post",
        "/api/v1/orders",
        json!({
            "operationId": "createOrder", "summary": "Place an order for an existing user", "tags": tags,
            "requestBody": body(new_order),
            "responses": {
                "201": json_response("The order, pending, with its id and total", order.clone()),
                "400": error("The body is not JSON"),
                "422": error("A field is missing or wrong, or the user does not exist"),
                "503": error("The user service is unavailable, so the user cannot be checked"),
            },
        }),
    );
    doc.operation(
        "get",
        "/api/v1/orders/{id}",
        json!({
            "operationId": "getOrder", "summary": "Get an order", "tags": tags,
            "parameters": [order_id],
            "responses": { "200": json_response("The order", order.clone()), "404": error("No such order") },
        }),
    );
    doc.operation(
        "put",
        "/api/v1/orders/{id}",
        json!({
            "operationId": "changeOrderStatus", "summary": "Move an order to its next status", "tags": tags,
            "parameters": [order_id], "requestBody": body(change),
            "responses": {
                "200": json_response("The order as changed", order.clone()),
                "400": error("The body is not JSON"),
                "404": error("No such order"),
                "409": error("The order cannot move to that status from its own"),
                "422": error("The status is missing or unknown"),
            },
        }),
    );
    doc.operation(
        "delete",
        "/api/v1/orders/{id}",
        json!({
            "operationId": "cancelOrder", "summary": "Cancel a pending or confirmed order", "tags": tags,
            "parameters": [order_id],
            "responses": {
                "204": { "description": "Cancelled (or cancelled already)" },
                "404": error("No such order"),
                "409": error("The order is shipped or delivered, or kept changing"),
            },
        }),
    );
    doc.operation(
        "get",
        "/api/v1/orders/user/{user_id}",
        json!({
            "operationId": "ordersOfUser", "summary": "Every order of one user, oldest first", "tags": tags,
            "parameters": [id("user_id", "The user's id")],
            "responses": {
                "200": json_response("The user's orders", json!({ "type": "array", "items": order })),
                "404": error("Not a user id"),
            },
        }),
    );
    doc.to_json()
}
