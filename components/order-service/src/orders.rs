//! Orders: validation (including the user, through `shop:users/api`), storage, the status
//! life cycle, and the HTTP answers for each operation.

use guest_http::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::{Paging, Table, invalid, parse_id, storage_error};

use crate::exports::shop::orders::api;
use crate::shop::users::api as users;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl Status {
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(Value::String(text.to_string())).ok()
    }

    /// pending -> confirmed -> shipped -> delivered, and pending or confirmed -> cancelled.
    fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Confirmed) | (Confirmed, Shipped) | (Shipped, Delivered) | (Pending | Confirmed, Cancelled)
        )
    }

    fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub product_id: u64,
    pub product_name: String,
    pub quantity: u32,
    pub price: f64,
}

/// A stored order, exactly as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub user_id: u64,
    pub items: Vec<Item>,
    pub total: f64,
    pub status: Status,
    pub shipping_address: String,
    pub created_at: String,
}

impl From<Order> for api::Order {
    fn from(o: Order) -> Self {
        api::Order {
            id: o.id,
            user_id: o.user_id,
            items: o
                .items
                .into_iter()
                .map(|i| api::Item {
                    product_id: i.product_id,
                    product_name: i.product_name,
                    quantity: i.quantity,
                    price: i.price,
                })
                .collect(),
            total: o.total,
            status: match o.status {
                Status::Pending => api::Status::Pending,
                Status::Confirmed => api::Status::Confirmed,
                Status::Shipped => api::Status::Shipped,
                Status::Delivered => api::Status::Delivered,
                Status::Cancelled => api::Status::Cancelled,
            },
            shipping_address: o.shipping_address,
            created_at: o.created_at,
        }
    }
}

fn orders() -> Result<Table, String> {
    Table::open("orders")
}

/// The ids of one user's orders, as a table of its own so a user's orders are one listing.
fn orders_of(user_id: u64) -> Result<Table, String> {
    Table::open(&format!("user-{user_id}-orders"))
}

fn json_of(order: &Order) -> Value {
    serde_json::to_value(order).unwrap_or_default()
}

/// The body of a new order, read leniently so each problem gets its own message.
#[derive(Deserialize)]
struct NewOrder {
    user_id: Value,
    items: Vec<Value>,
    shipping_address: String,
}

fn positive_id(value: &Value, what: &str) -> Result<u64, Response> {
    value.as_u64().filter(|id| *id >= 1).ok_or_else(|| invalid(&format!("{what} must be a positive integer")))
}

fn item(value: &Value, index: usize) -> Result<Item, Response> {
    let field = |name: &str| value.get(name).ok_or_else(|| invalid(&format!("items[{index}].{name} is required")));
    let product_id = positive_id(field("product_id")?, &format!("items[{index}].product_id"))?;
    let product_name = field("product_name")?
        .as_str()
        .ok_or_else(|| invalid(&format!("items[{index}].product_name must be a string")))?
        .to_string();
    let quantity =
        field("quantity")?.as_i64().ok_or_else(|| invalid(&format!("items[{index}].quantity must be an integer")))?;
    if quantity < 1 {
        return Err(invalid(&format!("items[{index}].quantity must be at least 1")));
    }
    let quantity = u32::try_from(quantity).map_err(|_| invalid(&format!("items[{index}].quantity is too large")))?;
    let price = field("price")?.as_f64().ok_or_else(|| invalid(&format!("items[{index}].price must be a number")))?;
    if price < 0.0 {
        return Err(invalid(&format!("items[{index}].price must not be negative")));
    }
    Ok(Item { product_id, product_name, quantity, price })
}

pub fn create(request: &Request) -> Response {
    let body: Value = match request.json() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let new: NewOrder = match serde_json::from_value(body) {
        Ok(new) => new,
        Err(e) => return invalid(&format!("invalid order: {e}")),
    };
    let user_id = match positive_id(&new.user_id, "user_id") {
        Ok(id) => id,
        Err(response) => return response,
    };
    if new.items.is_empty() {
        return invalid("an order needs at least one item");
    }
    let items = match new.items.iter().enumerate().map(|(i, v)| item(v, i)).collect::<Result<Vec<_>, _>>() {
        Ok(items) => items,
        Err(response) => return response,
    };
    match users::get_user(user_id) {
        Ok(_) => {}
        Err(users::Error::NotFound) => return invalid(&format!("user {user_id} does not exist")),
        Err(users::Error::Unavailable(why)) => return Response::error(503, "unavailable", &why),
        Err(users::Error::Invalid(why) | users::Error::Conflict(why)) => return invalid(&why),
    }
    // Folded from +0.0: `sum` of floats starts at -0.0, which JSON would show as -0.0.
    let total = items.iter().map(|i| f64::from(i.quantity) * i.price).fold(0.0, |sum, x| sum + x);
    let result = (|| -> Result<Response, String> {
        let orders = orders()?;
        let id = orders.next_id()?;
        let order = Order {
            id,
            user_id,
            items,
            total,
            status: Status::Pending,
            shipping_address: new.shipping_address,
            created_at: service_kit::now(),
        };
        orders.put(id, &order)?;
        orders_of(user_id)?.put(id, &id)?;
        service_kit::info("orders", &format!("created order {id} for user {user_id}"));
        Ok(Response::json(201, &json_of(&order)))
    })();
    result.unwrap_or_else(storage_error)
}

pub fn list(request: &Request) -> Response {
    let paging = match Paging::from_request(request) {
        Ok(paging) => paging,
        Err(response) => return response,
    };
    let user_filter = match request.query_param("user_id") {
        None => None,
        Some(text) => match parse_id(text) {
            Some(id) => Some(id),
            None => return Response::error(400, "invalid_filter", "user_id must be a positive integer"),
        },
    };
    let status_filter = match request.query_param("status") {
        None => None,
        Some(text) => match Status::parse(text) {
            Some(status) => Some(status),
            None => return Response::error(400, "invalid_filter", &format!("unknown status {text:?}")),
        },
    };
    let result = (|| -> Result<Response, String> {
        let orders = orders()?;
        let ids = match user_filter {
            Some(user_id) => orders_of(user_id)?.ids()?,
            None => orders.ids()?,
        };
        // Without a status filter only the page is read; with one, every candidate must be.
        let Some(status) = status_filter else {
            let page: Vec<Order> = orders.get_many(&ids[paging.range(ids.len())])?;
            return Ok(paging.answer(page.iter().map(json_of).collect(), ids.len()));
        };
        let matching: Vec<Order> = orders.get_many::<Order>(&ids)?.into_iter().filter(|o| o.status == status).collect();
        Ok(paging.answer(matching[paging.range(matching.len())].iter().map(json_of).collect(), matching.len()))
    })();
    result.unwrap_or_else(storage_error)
}

pub fn get(id: u64) -> Response {
    match orders().and_then(|t| t.get::<Order>(id)) {
        Ok(Some(order)) => Response::json(200, &json_of(&order)),
        Ok(None) => Response::not_found(&format!("no order {id}")),
        Err(e) => storage_error(e),
    }
}

/// Every order of one user, oldest first.
pub fn of_user(user_id: u64) -> Result<Vec<Order>, String> {
    let ids: Vec<u64> = orders_of(user_id)?.ids()?;
    orders()?.get_many(&ids)
}

pub fn of_user_response(user_id: u64) -> Response {
    match of_user(user_id) {
        Ok(orders) => Response::json(200, &Value::Array(orders.iter().map(json_of).collect())),
        Err(e) => storage_error(e),
    }
}

/// Moves an order to `next` and answers with `done`, or explains why it cannot.
fn transition(id: u64, next: Status, done: impl FnOnce(&Order) -> Response) -> Response {
    let result = (|| -> Result<Response, String> {
        let orders = orders()?;
        let Some(mut order) = orders.get::<Order>(id)? else {
            return Ok(Response::not_found(&format!("no order {id}")));
        };
        if order.status == next && next == Status::Cancelled {
            return Ok(done(&order));
        }
        if !order.status.can_become(next) {
            let message = format!("order {id} is {} and cannot become {}", order.status.name(), next.name());
            return Ok(Response::error(409, "conflict", &message));
        }
        order.status = next;
        orders.put(id, &order)?;
        Ok(done(&order))
    })();
    result.unwrap_or_else(storage_error)
}

pub fn change_status(request: &Request, id: u64) -> Response {
    let body: Value = match request.json() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(text) = body.get("status").and_then(Value::as_str) else {
        return invalid("status is required and must be a string");
    };
    let Some(next) = Status::parse(text) else {
        return invalid(&format!("unknown status {text:?}; one of pending, confirmed, shipped, delivered, cancelled"));
    };
    transition(id, next, |order| Response::json(200, &json_of(order)))
}

pub fn cancel(id: u64) -> Response {
    transition(id, Status::Cancelled, |_| Response::empty())
}

pub fn stats() -> Result<api::Stats, String> {
    let all: Vec<Order> = orders()?.all()?;
    let count = |status: Status| all.iter().filter(|o| o.status == status).count() as u64;
    Ok(api::Stats {
        total_orders: all.len() as u64,
        pending_orders: count(Status::Pending),
        completed_orders: count(Status::Delivered),
        total_revenue: all
            .iter()
            .filter(|o| o.status != Status::Cancelled)
            .map(|o| o.total)
            .fold(0.0, |sum, x| sum + x),
    })
}
