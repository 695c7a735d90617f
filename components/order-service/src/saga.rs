//! The order service's part in keeping the shop consistent: when a user is deleted
//! (`users.deleted`), each of their pending or confirmed orders is cancelled, and each
//! cancellation publishes its own `orders.status-changed`. Delivered at least once: an order
//! already cancelled stays as it is, so a second delivery changes nothing.

use guest_http::Response;
use serde::Deserialize;

use crate::OrderService;
use crate::exports::shop::orders::api::{Order, Status};
use crate::exports::trellis::messaging::subscriptions;
use crate::exports::wasi::messaging::incoming_handler;
use crate::orders::{self, of_user_index, transition};
use service_kit::wasi::messaging::types::{Error, Message};

/// Orders read at once while looking for a user's open ones.
const PAGE: u32 = 100;

#[derive(Deserialize)]
struct UserDeleted {
    user_id: u64,
}

impl subscriptions::Guest for OrderService {
    fn subscriptions() -> Vec<String> {
        vec!["users.deleted".to_string()]
    }
}

impl incoming_handler::Guest for OrderService {
    fn handle(message: Message) -> Result<(), Error> {
        let event = service_kit::events::read::<UserDeleted>(&message).map_err(Error::Other)?;
        if event.topic != "users.deleted" {
            return Ok(());
        }
        let cancelled = cancel_open_orders(event.payload.user_id).map_err(Error::Other)?;
        let message =
            format!("user {} deleted (message {}): cancelled {cancelled} open orders", event.payload.user_id, event.id);
        service_kit::info("saga", &message);
        Ok(())
    }
}

/// Cancels every pending or confirmed order of `user_id`; returns how many it cancelled.
fn cancel_open_orders(user_id: u64) -> Result<usize, String> {
    let table = orders::orders().map_err(|e| e.to_string())?;
    let index = of_user_index(user_id);
    let (mut after, mut cancelled) = (None, 0);
    loop {
        let ids = index.after(table.bucket(), after, PAGE).map_err(|e| e.to_string())?;
        let Some(last) = ids.last().copied() else { return Ok(cancelled) };
        for order in table.get_many::<Order>(&ids).map_err(|e| e.to_string())? {
            if !matches!(order.status, Status::Pending | Status::Confirmed) {
                continue;
            }
            match transition(order.id, Status::Cancelled, |_| Response::empty()) {
                Ok(_) => cancelled += 1,
                // Shipped meanwhile, or gone: nothing left to cancel.
                Err(refused) if refused.status == 409 || refused.status == 404 => {}
                Err(failed) => return Err(String::from_utf8_lossy(&failed.body).into_owned()),
            }
        }
        after = Some(last);
    }
}
