//! Orders: validation (including the user, through `shop:users/api`), storage, the status
//! life cycle, and the HTTP answers for each operation. An order is the WIT record, stored
//! and served as JSON exactly as other services receive it.
//!
//! Storage (bucket `orders`): each order under its zero-padded id, three indexes (`all`,
//! `user/ID`, `status/NAME`) and the revenue, all changed in one atomic write with the order
//! (`service_kit::Changes`). Listing reads one page of an index, totals and figures are read,
//! never counted: every answer costs the same at a thousand orders as at a million.
//!
//! Each change, once stored, is published: `orders.created` (`{"order_id", "user_id",
//! "order"}`) and `orders.status-changed` (`{"order_id", "user_id", "old_status",
//! "new_status"}`).

use guest_http::{Answer, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::{Changes, Index, Paging, StorageError, Table, invalid, parse_id, read_count};

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

pub(crate) fn orders() -> Result<Table, StorageError> {
    let orders = Table::open("orders")?;
    service_kit::index_existing(&orders, index_order)?;
    Ok(orders)
}

fn all() -> Index {
    Index::new("all")
}

pub(crate) fn of_user_index(user_id: u64) -> Index {
    Index::new(format!("user/{user_id}"))
}

fn with_status(status: Status) -> Index {
    Index::new(format!("status/{}", status.name()))
}

/// The revenue of every order not cancelled, in millionths.
const REVENUE: &str = "c/revenue-micros";

fn micros(amount: f64) -> i64 {
    (amount * 1e6).round() as i64
}

/// The changes that put an order in its indexes and figures.
fn index_order(changes: &mut Changes, order: &Order) {
    changes
        .insert(&all(), order.id)
        .insert(&of_user_index(order.user_id), order.id)
        .insert(&with_status(order.status), order.id);
    if order.status != Status::Cancelled {
        changes.add(REVENUE.into(), micros(order.total));
    }
}

/// The body of a new order, read leniently so each problem gets its own message.
#[derive(Deserialize)]
struct NewOrder {
    user_id: Value,
    items: Vec<Value>,
    shipping_address: String,
}

fn positive_id(value: &Value, what: &str) -> Result<u64, Response> {
    service_kit::whole_number(value)
        .filter(|id| *id >= 1)
        .ok_or_else(|| invalid(&format!("{what} must be a positive integer")))
}

/// Longest product SKU accepted.
pub(crate) const MAX_SKU_CHARS: usize = 100;
/// Longest product name accepted, in characters.
pub(crate) const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// Longest shipping address accepted, in characters.
pub(crate) const MAX_ADDRESS_CHARS: usize = 500;
/// Most items one order may have: an order is read whole by everyone who lists it.
pub(crate) const MAX_ITEMS: usize = 100;
/// Most units of one item, and the highest unit price: an order's total stays exact in
/// millionths (the revenue's unit) and far from overflowing it.
pub(crate) const MAX_QUANTITY: u32 = 10_000;
pub(crate) const MAX_PRICE: f64 = 1_000_000.0;

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
    let quantity = field("quantity")?;
    let quantity = match service_kit::whole_number(quantity) {
        Some(quantity) => quantity,
        None if quantity.as_f64().is_some_and(|n| n.fract() == 0.0) => 0,
        None => return Err(invalid(&format!("items[{index}].quantity must be an integer"))),
    };
    if quantity < 1 {
        return Err(invalid(&format!("items[{index}].quantity must be at least 1")));
    }
    let quantity = u32::try_from(quantity)
        .ok()
        .filter(|q| *q <= MAX_QUANTITY)
        .ok_or_else(|| invalid(&format!("items[{index}].quantity must be at most {MAX_QUANTITY}")))?;
    let price = field("price")?.as_f64().ok_or_else(|| invalid(&format!("items[{index}].price must be a number")))?;
    if price < 0.0 {
        return Err(invalid(&format!("items[{index}].price must not be negative")));
    }
    if price > MAX_PRICE {
        return Err(invalid(&format!("items[{index}].price must be at most {MAX_PRICE}")));
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
    let mut changes = Changes::default();
    changes.set(Table::key(id), encode(&order)?);
    index_order(&mut changes, &order);
    changes.announce("orders.created", &json!({"order_id": id, "user_id": user_id, "order": &order}));
    changes.commit(orders.bucket())?;
    service_kit::info("orders", &format!("created order {id} for user {user_id}"));
    Ok(Response::json(201, &order))
}

fn encode(order: &Order) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(order).map_err(|e| StorageError(e.to_string()))
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
    let bucket = orders.bucket();
    let offset = (paging.page - 1).saturating_mul(paging.page_size);
    let size = paging.page_size as u32;
    let index = match (user_filter, status_filter) {
        (Some(user_id), Some(status)) => {
            // Both filters: a user's orders, read whole and filtered (a user's, not the shop's).
            let mut matching = Vec::new();
            let mut after = None;
            loop {
                let ids = of_user_index(user_id).after(bucket, after, 100)?;
                let Some(last) = ids.last().copied() else { break };
                matching.extend(orders.get_many::<Order>(&ids)?.into_iter().filter(|o| o.status == status));
                after = Some(last);
            }
            return Ok(paging.answer(&matching[paging.range(matching.len())], matching.len()));
        }
        (Some(user_id), None) => of_user_index(user_id),
        (None, Some(status)) => with_status(status),
        (None, None) => all(),
    };
    let page: Vec<Order> = orders.get_many(&index.page(bucket, offset, size)?)?;
    Ok(paging.answer(&page, index.total(bucket)? as usize))
}

pub fn get(id: u64) -> Answer {
    let order = orders()?.get::<Order>(id)?.ok_or_else(|| Response::not_found(&format!("no order {id}")))?;
    Ok(Response::json(200, &order))
}

/// At most `limit` (at most 100) of a user's orders after the order `after`, and their number.
pub fn page_of_user(user_id: u64, after: Option<u64>, limit: u32) -> Result<api::OrderPage, StorageError> {
    let orders = orders()?;
    let index = of_user_index(user_id);
    let ids = index.after(orders.bucket(), after, limit.min(100))?;
    Ok(api::OrderPage { orders: orders.get_many(&ids)?, total: index.total(orders.bucket())? })
}

/// Every order of one user, oldest first, as a JSON array written while it is read, a
/// hundred orders at a time: memory stays flat whatever their number.
pub fn of_user(user_id: u64) -> Answer {
    let orders = orders()?;
    Ok(Response::streamed(200, "application/json", move |out| {
        let index = of_user_index(user_id);
        let (mut after, mut first) = (None, true);
        out.write_all(b"[")?;
        loop {
            let ids = index.after(orders.bucket(), after, 100).map_err(std::io::Error::other)?;
            let Some(last) = ids.last().copied() else { break };
            for order in orders.get_many_raw(&ids).map_err(std::io::Error::other)? {
                out.write_all(if first { b"" } else { b"," })?;
                out.write_all(&order)?;
                first = false;
            }
            after = Some(last);
        }
        out.write_all(b"]")
    }))
}

/// Moves an order to `next` and answers with `done`, or explains why it cannot. The order,
/// its status index and the revenue change together; a concurrent change is retried.
pub(crate) fn transition(id: u64, next: Status, done: impl FnOnce(&Order) -> Response) -> Answer {
    let orders = orders()?;
    for _ in 0..8 {
        let stored =
            orders.bucket().get(&Table::key(id))?.ok_or_else(|| Response::not_found(&format!("no order {id}")))?;
        let mut order: Order =
            serde_json::from_slice(&stored).map_err(|e| StorageError(format!("order {id} is corrupt: {e}")))?;
        if order.status == next && next == Status::Cancelled {
            return Ok(done(&order));
        }
        if !order.status.can_become(next) {
            let message = format!("order {id} is {} and cannot become {}", order.status.name(), next.name());
            return Err(Response::error(409, "conflict", &message));
        }
        let was = order.status;
        order.status = next;
        let mut changes = Changes::default();
        changes.expect(Table::key(id), Some(stored)).set(Table::key(id), encode(&order)?);
        changes.remove(&with_status(was), id).insert(&with_status(next), id);
        if next == Status::Cancelled {
            changes.add(REVENUE.into(), -micros(order.total));
        }
        let changed = json!({"order_id": id, "user_id": order.user_id, "old_status": was, "new_status": next});
        changes.announce("orders.status-changed", &changed);
        if changes.commit(orders.bucket())? {
            return Ok(done(&order));
        }
    }
    Err(Response::error(409, "conflict", &format!("order {id} kept changing; try again")))
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

/// The figures, read from the totals kept with the orders.
pub fn stats() -> Result<api::Stats, StorageError> {
    let orders = orders()?;
    let bucket = orders.bucket();
    Ok(api::Stats {
        total_orders: all().total(bucket)?,
        pending_orders: with_status(Status::Pending).total(bucket)?,
        completed_orders: with_status(Status::Delivered).total(bucket)?,
        total_revenue: read_count(bucket, REVENUE)? as f64 / 1e6,
    })
}
