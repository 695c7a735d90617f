//! Orders: validation (including the user, through `shop:users/api`), storage, the status
//! life cycle, and the HTTP answers for each operation. An order is the WIT record, stored
//! and served as JSON exactly as other services receive it.

use guest_http::{Answer, Request, Response};
use serde::Deserialize;
use serde_json::Value;
use service_kit::{Paging, StorageError, Table, invalid, parse_id};

use crate::exports::shop::orders::api::{self, Item, Order, ProductId, Status};
use crate::shop::users::api as users;

impl Status {
    /// The status a client names, in the API's words (`"pending"`...).
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(Value::String(text.to_string())).ok()
    }

    /// The status in the API's words.
    fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// pending -> confirmed -> shipped -> delivered, and pending or confirmed -> cancelled.
    fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Confirmed) | (Confirmed, Shipped) | (Shipped, Delivered) | (Pending | Confirmed, Cancelled)
        )
    }
}

fn orders() -> Result<Table, StorageError> {
    Table::open("orders")
}

/// The ids of one user's orders, as a table of its own so a user's orders are one listing.
fn orders_of(user_id: u64) -> Result<Table, StorageError> {
    Table::open(&format!("user-{user_id}-orders"))
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

/// Longest product SKU accepted.
const MAX_SKU_CHARS: usize = 100;
/// Longest product name accepted, in characters.
const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// Longest shipping address accepted, in characters.
const MAX_ADDRESS_CHARS: usize = 500;
/// Most items one order may have: an order is read whole by everyone who lists it.
const MAX_ITEMS: usize = 100;

/// A product id as the client gave it: a positive integer or a non-empty SKU string.
fn product_id(value: &Value, what: &str) -> Result<ProductId, Response> {
    match value {
        Value::String(sku) if !sku.trim().is_empty() && sku.chars().count() <= MAX_SKU_CHARS => {
            Ok(ProductId::Sku(sku.clone()))
        }
        Value::String(_) => {
            Err(invalid(&format!("{what} must be a non-empty string of at most {MAX_SKU_CHARS} characters")))
        }
        _ => Ok(ProductId::Number(
            positive_id(value, what)
                .map_err(|_| invalid(&format!("{what} must be a positive integer or a product SKU string")))?,
        )),
    }
}

fn item(value: &Value, index: usize) -> Result<Item, Response> {
    let field = |name: &str| value.get(name).ok_or_else(|| invalid(&format!("items[{index}].{name} is required")));
    let product_id = product_id(field("product_id")?, &format!("items[{index}].product_id"))?;
    let product_name = field("product_name")?
        .as_str()
        .ok_or_else(|| invalid(&format!("items[{index}].product_name must be a string")))?
        .to_string();
    if product_name.chars().count() > MAX_PRODUCT_NAME_CHARS {
        return Err(invalid(&format!(
            "items[{index}].product_name must be at most {MAX_PRODUCT_NAME_CHARS} characters"
        )));
    }
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

/// 422 unless the user exists; 503 naming the interface when the user service is unavailable.
fn check_user(user_id: u64) -> Result<(), Response> {
    match users::get_user(user_id) {
        Ok(_) => Ok(()),
        Err(users::Error::NotFound) => Err(invalid(&format!("user {user_id} does not exist"))),
        Err(users::Error::Unavailable(why)) => Err(Response::error(503, "unavailable", &why)),
        Err(users::Error::Invalid(why) | users::Error::Conflict(why)) => Err(invalid(&why)),
    }
}

pub fn create(request: &Request) -> Answer {
    let body: Value = request.json()?;
    let new: NewOrder = serde_json::from_value(body).map_err(|e| invalid(&format!("invalid order: {e}")))?;
    let user_id = positive_id(&new.user_id, "user_id")?;
    if new.items.is_empty() {
        return Err(invalid("an order needs at least one item"));
    }
    if new.items.len() > MAX_ITEMS {
        return Err(invalid(&format!("an order may have at most {MAX_ITEMS} items")));
    }
    if new.shipping_address.chars().count() > MAX_ADDRESS_CHARS {
        return Err(invalid(&format!("shipping_address must be at most {MAX_ADDRESS_CHARS} characters")));
    }
    let items = new.items.iter().enumerate().map(|(i, v)| item(v, i)).collect::<Result<Vec<_>, _>>()?;
    check_user(user_id)?;
    // Folded from +0.0: `sum` of floats starts at -0.0, which JSON would show as -0.0.
    let total = items.iter().map(|i| f64::from(i.quantity) * i.price).fold(0.0, |sum, x| sum + x);
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
    Ok(Response::json(201, &order))
}

pub fn list(request: &Request) -> Answer {
    let paging = Paging::from_request(request)?;
    let user_filter = match request.query_param("user_id") {
        None => None,
        Some(text) => Some(
            parse_id(text)
                .ok_or_else(|| Response::error(400, "invalid_filter", "user_id must be a positive integer"))?,
        ),
    };
    let status_filter = match request.query_param("status") {
        None => None,
        Some(text) => Some(
            Status::parse(text)
                .ok_or_else(|| Response::error(400, "invalid_filter", &format!("unknown status {text:?}")))?,
        ),
    };
    let orders = orders()?;
    let ids = match user_filter {
        Some(user_id) => orders_of(user_id)?.ids()?,
        None => orders.ids()?,
    };
    // Without a status filter only the page is read; with one, every candidate must be.
    let Some(status) = status_filter else {
        let page: Vec<Order> = orders.get_many(&ids[paging.range(ids.len())])?;
        return Ok(paging.answer(&page, ids.len()));
    };
    let matching: Vec<Order> = orders.get_many::<Order>(&ids)?.into_iter().filter(|o| o.status == status).collect();
    Ok(paging.answer(&matching[paging.range(matching.len())], matching.len()))
}

pub fn get(id: u64) -> Answer {
    let order = orders()?.get::<Order>(id)?.ok_or_else(|| Response::not_found(&format!("no order {id}")))?;
    Ok(Response::json(200, &order))
}

/// Every order of one user, oldest first.
pub fn of_user(user_id: u64) -> Result<Vec<Order>, StorageError> {
    let ids: Vec<u64> = orders_of(user_id)?.ids()?;
    orders()?.get_many(&ids)
}

/// Moves an order to `next` and answers with `done`, or explains why it cannot.
fn transition(id: u64, next: Status, done: impl FnOnce(&Order) -> Response) -> Answer {
    let orders = orders()?;
    let mut order = orders.get::<Order>(id)?.ok_or_else(|| Response::not_found(&format!("no order {id}")))?;
    if order.status == next && next == Status::Cancelled {
        return Ok(done(&order));
    }
    if !order.status.can_become(next) {
        let message = format!("order {id} is {} and cannot become {}", order.status.name(), next.name());
        return Err(Response::error(409, "conflict", &message));
    }
    order.status = next;
    orders.put(id, &order)?;
    Ok(done(&order))
}

pub fn change_status(request: &Request, id: u64) -> Answer {
    let body: Value = request.json()?;
    let text = body.get("status").and_then(Value::as_str);
    let text = text.ok_or_else(|| invalid("status is required and must be a string"))?;
    let next = Status::parse(text).ok_or_else(|| {
        invalid(&format!("unknown status {text:?}; one of pending, confirmed, shipped, delivered, cancelled"))
    })?;
    transition(id, next, |order| Response::json(200, order))
}

pub fn cancel(id: u64) -> Answer {
    transition(id, Status::Cancelled, |_| Response::empty())
}

pub fn stats() -> Result<api::Stats, StorageError> {
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
