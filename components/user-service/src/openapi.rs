//! The user service's OpenAPI document (its `trellis:http/openapi` export). A user's schema
//! is generated from the WIT record it serves; the bodies it accepts are described by the
//! types below, with the limits `users` enforces.

use schemars::JsonSchema;
use serde_json::json;
use service_kit::openapi::{Document, body, error, id, json_response, page_of, paging};

use crate::users::{MAX_EMAIL_BYTES, MAX_NAME_CHARS, User};

/// A new user.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct NewUser {
    /// Not blank; at most 200 characters.
    #[schemars(length(min = 1, max = MAX_NAME_CHARS))]
    name: String,
    /// An email address, unique regardless of case; at most 254 bytes.
    #[schemars(email, length(min = 3, max = MAX_EMAIL_BYTES))]
    email: String,
    /// The user's age, if they give it.
    age: Option<u32>,
}

/// Changes to a user: only the fields given change; `"age": null` removes the age.
#[derive(JsonSchema)]
#[schemars(transform = optional_not_null)]
#[allow(dead_code)]
struct UserChanges {
    #[serde(default)]
    #[schemars(with = "String", length(min = 1, max = MAX_NAME_CHARS))]
    name: Option<String>,
    #[serde(default)]
    #[schemars(with = "String", email, length(min = 3, max = MAX_EMAIL_BYTES))]
    email: Option<String>,
    #[serde(default)]
    age: Option<u32>,
}

/// Each field of a change may be left out, which `#[serde(default)]` says, but a given name or
/// email must be a string: the `null` default that the attribute adds to them is dropped.
fn optional_not_null(schema: &mut schemars::Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for property in properties.values_mut().filter_map(|p| p.as_object_mut()) {
            property.remove("default");
        }
    }
}

pub fn document(version: &str) -> String {
    let mut doc = Document::new("User service", version);
    let (user, new_user, changes) = (doc.schema::<User>(), doc.schema::<NewUser>(), doc.schema::<UserChanges>());
    let user_id = id("id", "The user's id");
    let tags = json!(["users"]);
    doc.operation(
        "get",
        "/api/v1/users",
        json!({
            "operationId": "listUsers", "summary": "List users, oldest first", "tags": tags,
            "parameters": paging(),
            "responses": {
                "200": json_response("One page of users", page_of(user.clone())),
                "400": error("A paging parameter is not a positive integer"),
            },
        }),
    );
    doc.operation(
        "post",
        "/api/v1/users",
        json!({
            "operationId": "createUser", "summary": "Create a user", "tags": tags,
            "requestBody": body(new_user),
            "responses": {
                "201": json_response("The user, with its id", user.clone()),
                "400": error("The body is not JSON"),
                "409": error("The email is registered already"),
                "422": error("A field is missing or wrong"),
            },
        }),
    );
    doc.operation(
        "get",
        "/api/v1/users/{id}",
        json!({
            "operationId": "getUser", "summary": "Get a user", "tags": tags,
            "parameters": [user_id],
            "responses": {
                "200": json_response("The user", user.clone()),
                "404": error("No such user"),
            },
        }),
    );
    doc.operation(
        "put",
        "/api/v1/users/{id}",
        json!({
            "operationId": "updateUser", "summary": "Change some of a user's fields", "tags": tags,
            "parameters": [user_id], "requestBody": body(changes),
            "responses": {
                "200": json_response("The user as changed", user),
                "400": error("The body is not JSON"),
                "404": error("No such user"),
                "409": error("The new email is registered already, or the user kept changing"),
                "422": error("A field is wrong"),
            },
        }),
    );
    doc.operation(
        "delete",
        "/api/v1/users/{id}",
        json!({
            "operationId": "deleteUser", "summary": "Delete a user (their open orders are cancelled)", "tags": tags,
            "parameters": [user_id],
            "responses": {
                "204": { "description": "Deleted" },
                "404": error("No such user"),
                "409": error("The user kept changing; try again"),
            },
        }),
    );
    doc.to_json()
}
