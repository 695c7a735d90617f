//! The shop services as tests use them: creating users and orders, reading error codes.

use serde_json::{Value, json};

use super::{Host, Reply};

pub fn create_user(host: &Host, name: &str, email: &str) -> Value {
    let reply = host.send("POST", "/api/v1/users", Some(&json!({ "name": name, "email": email })));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

pub fn order_body(user_id: u64) -> Value {
    json!({
        "user_id": user_id,
        "items": [
            { "product_id": 1, "product_name": "Widget", "quantity": 3, "price": 19.99 },
            { "product_id": 2, "product_name": "Gadget", "quantity": 1, "price": 5.5 }
        ],
        "shipping_address": "12 Rue de la Paix, Paris"
    })
}

pub fn create_order(host: &Host, user_id: u64) -> Value {
    let reply = host.send("POST", "/api/v1/orders", Some(&order_body(user_id)));
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

pub fn status(reply: &Reply) -> (u16, String) {
    let code = if reply.status >= 400 { reply.error_code() } else { String::new() };
    (reply.status, code)
}
