//! The notification service. It subscribes to `users.>` and `orders.>` and records one
//! notification per event for the user concerned; over HTTP,
//! `GET /api/v1/users/{id}/notifications` lists a user's notifications, oldest first, paged.
//!
//! Storage (bucket `notifications`): each notification under its zero-padded id, the index
//! `user/ID` of each user's, and a claim `m/MESSAGE-ID` per event recorded, all written
//! together: an event delivered twice (delivery is at least once) is recorded once.

use guest_http::{Answer, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::{Changes, Index, Paging, StorageError, Table};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::trellis::messaging::subscriptions;
use exports::wasi::messaging::incoming_handler;
use service_kit::wasi::messaging::types::{Error, Message};

wit_bindgen::generate!({
    path: "../../wit",
    world: "trellis:worlds/notification-service",
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
    generate_all,
});

struct NotificationService;

export!(NotificationService);
wasip2::http::proxy::export!(NotificationService);

service_kit::export_routes!(NotificationService, [("GET", "/api/v1/users/{id}/notifications")]);

/// One notification, as stored and served.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Notification {
    id: u64,
    topic: String,
    message_id: String,
    text: String,
    created_at: String,
}

fn notifications() -> Result<Table, StorageError> {
    Table::open("notifications")
}

fn of_user(user_id: u64) -> Index {
    Index::new(format!("user/{user_id}"))
}

impl wasip2::exports::http::incoming_handler::Guest for NotificationService {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        service_kit::serve(request, out, env!("CARGO_PKG_VERSION"), route);
    }
}

fn route(request: Request) -> Answer {
    let segments = request.segments();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v1", "users", id, "notifications"]) => {
            let id = service_kit::parse_id(id).ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
            list(&request, id)
        }
        (method, ["api", "v1", "users", _, "notifications"]) => {
            Err(Response::method_not_allowed(method, &request.path))
        }
        _ => Err(Response::not_found(&request.path)),
    }
}

/// A user's notifications, oldest first, one page at a time.
fn list(request: &Request, user_id: u64) -> Answer {
    let paging = Paging::from_request(request)?;
    let table = notifications()?;
    let index = of_user(user_id);
    let offset = (paging.page - 1).saturating_mul(paging.page_size);
    let page: Vec<Notification> = table.get_many(&index.page(table.bucket(), offset, paging.page_size as u32)?)?;
    Ok(paging.answer(&page, index.total(table.bucket())? as usize))
}

impl exports::trellis::http::openapi::Guest for NotificationService {
    fn document() -> String {
        use service_kit::openapi::{Document, error, id, json_response, page_of, paging};
        let mut doc = Document::new("Notification service", env!("CARGO_PKG_VERSION"));
        let notification = doc.schema::<Notification>();
        let [page, page_size] = paging();
        doc.operation(
            "get",
            "/api/v1/users/{id}/notifications",
            serde_json::json!({
                "operationId": "notificationsOfUser", "summary": "A user's notifications, oldest first",
                "tags": ["notifications"],
                "parameters": [id("id", "The user's id"), page, page_size],
                "responses": {
                    "200": json_response("One page of notifications", page_of(notification)),
                    "400": error("A paging parameter is not a positive integer"),
                    "404": error("Not a user id"),
                },
            }),
        );
        doc.to_json()
    }
}

impl subscriptions::Guest for NotificationService {
    fn subscriptions() -> Vec<String> {
        vec!["users.>".to_string(), "orders.>".to_string()]
    }
}

impl incoming_handler::Guest for NotificationService {
    fn handle(message: Message) -> Result<(), Error> {
        let event = service_kit::events::read::<Value>(&message).map_err(Error::Other)?;
        let Some(user_id) = event.payload.get("user_id").and_then(Value::as_u64) else {
            return Err(Error::Other(format!("a {} event without a user_id", event.topic)));
        };
        let text = text(&event.topic, &event.payload);
        record(user_id, event.topic, event.id, text).map_err(|e| Error::Other(e.to_string()))
    }
}

/// What the user is told about an event.
fn text(topic: &str, event: &Value) -> String {
    let field = |path: &[&str]| -> String {
        let mut value = event;
        for key in path {
            value = &value[*key];
        }
        match value {
            Value::String(text) => text.clone(),
            Value::Null => "?".into(),
            other => other.to_string(),
        }
    };
    match topic {
        "users.created" => format!("Welcome, {}! Your account was created.", field(&["user", "name"])),
        "users.updated" => "Your profile was updated.".into(),
        "users.deleted" => "Your account was deleted.".into(),
        "orders.created" => {
            format!("Your order {} was placed (total {}).", field(&["order_id"]), field(&["order", "total"]))
        }
        "orders.status-changed" => format!(
            "Your order {} is now {} (was {}).",
            field(&["order_id"]),
            field(&["new_status"]),
            field(&["old_status"])
        ),
        other => format!("Event {other}."),
    }
}

/// Records one notification for `user_id`, unless the event was recorded already.
fn record(user_id: u64, topic: String, message_id: String, text: String) -> Result<(), StorageError> {
    let table = notifications()?;
    let claim = format!("m/{message_id}");
    if table.bucket().get(&claim)?.is_some() {
        return Ok(());
    }
    let id = table.next_id()?;
    let notification = Notification { id, topic, message_id, text, created_at: service_kit::now() };
    let bytes = serde_json::to_vec(&notification).map_err(|e| StorageError(e.to_string()))?;
    let mut changes = Changes::default();
    changes.expect(claim.clone(), None).set(claim, id.to_string().into_bytes());
    changes.set(Table::key(id), bytes).insert(&of_user(user_id), id);
    // A lost race means the same event was recorded by a delivery running alongside.
    changes.commit(table.bucket()).map(drop)
}
