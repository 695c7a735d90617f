//! Users: validation, storage, and the HTTP answers for each operation.
//!
//! Storage (bucket `users`): each user under its zero-padded id, its email's claim under
//! `e/EMAIL` (lowercased; the value is the holder's id), and the index of every user with its
//! total. A user, its claim and the index change together in one atomic write, so a crash
//! can never leave an email claimed by nobody or a user without its claim; a claim is taken
//! by expecting it absent, so of two racing sign-ups with one email exactly one wins.
//!
//! Each change, once stored, is published: `users.created`, `users.updated`, `users.deleted`,
//! each `{"user_id", "user"}`.

use guest_http::{Answer, Request, Response};
use serde_json::{Value, json};
use service_kit::{Changes, Index, Paging, StorageError, Table, invalid};

/// A user: the WIT record, stored and served as JSON exactly as other services receive it.
pub use crate::exports::shop::users::api::User;

fn users() -> Result<Table, StorageError> {
    let users = Table::open("users")?;
    service_kit::index_existing(&users, |changes, user: &User| {
        changes.insert(&all(), user.id).set(claim(&user.email), holder(user.id));
    })?;
    Ok(users)
}

fn all() -> Index {
    Index::new("all")
}

/// Where the claim of an email is kept. Emails are unique regardless of case.
fn claim(email: &str) -> String {
    format!("e/{}", email.to_lowercase())
}

fn holder(id: u64) -> Vec<u8> {
    id.to_string().into_bytes()
}

pub fn load(id: u64) -> Result<Option<User>, StorageError> {
    users()?.get(id)
}

pub fn count() -> Result<u64, StorageError> {
    let users = users()?;
    all().total(users.bucket())
}

/// Valid when it has exactly one `@`, something before it, and after it a domain with a dot
/// and no empty label.
pub fn valid_email(email: &str) -> bool {
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    !local.is_empty() && domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

/// Longest name accepted, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// Longest email accepted: the longest address SMTP can carry (RFC 5321).
pub(crate) const MAX_EMAIL_BYTES: usize = 254;

/// The fields a create or update may carry; which are required is up to the caller.
struct Fields {
    name: Option<String>,
    email: Option<String>,
    age: Option<Option<u32>>,
}

/// Reads and validates the JSON body: 400 if it is not JSON, 422 if a field is wrong.
fn fields(request: &Request) -> Result<Fields, Response> {
    let body: Value = request.json()?;
    let Value::Object(object) = body else { return Err(invalid("the body must be a JSON object")) };
    let text = |name: &str| -> Result<Option<String>, Response> {
        match object.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("{name} must be a string"))),
        }
    };
    let name = text("name")?;
    let email = text("email")?;
    let age = match object.get("age") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(value) => match service_kit::whole_number(value).and_then(|a| u32::try_from(a).ok()) {
            Some(age) => Some(Some(age)),
            None => return Err(invalid("age must be a non-negative integer")),
        },
    };
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(invalid("name must not be empty"));
    }
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
        return Err(invalid(&format!("name must be at most {MAX_NAME_CHARS} characters")));
    }
    if email.as_ref().is_some_and(|e| e.len() > MAX_EMAIL_BYTES) {
        return Err(invalid(&format!("email must be at most {MAX_EMAIL_BYTES} bytes")));
    }
    if let Some(email) = &email
        && !valid_email(email)
    {
        return Err(invalid(&format!("{email:?} is not a valid email address")));
    }
    Ok(Fields { name, email, age })
}

fn record(user: &User) -> Vec<u8> {
    serde_json::to_vec(user).unwrap_or_default()
}

/// A test build stops here when asked (`?crash=NAME`), as a crash between a request's write
/// and its answer would.
#[cfg(feature = "crash-points")]
fn crash_point(request: &Request, name: &str) {
    if request.query_param("crash") == Some(name) {
        panic!("crash point {name}");
    }
}

#[cfg(not(feature = "crash-points"))]
fn crash_point(_: &Request, _: &str) {}

fn taken(email: &str) -> Response {
    Response::error(409, "conflict", &format!("the email {email} is already registered"))
}

/// How often a change is tried again when the user changed meanwhile.
const ATTEMPTS: usize = 8;

fn busy(id: u64) -> Response {
    Response::error(409, "conflict", &format!("user {id} kept changing; try again"))
}

pub fn create(request: &Request) -> Answer {
    let fields = fields(request)?;
    let name = fields.name.ok_or_else(|| invalid("name is required"))?;
    let email = fields.email.ok_or_else(|| invalid("email is required"))?;
    let users = users()?;
    let id = users.next_id()?;
    let user = User { id, name, email, age: fields.age.flatten(), created_at: service_kit::now() };
    let mut changes = Changes::default();
    changes.expect(claim(&user.email), None).set(claim(&user.email), holder(id));
    changes.set(Table::key(id), record(&user)).insert(&all(), id);
    changes.announce("users.created", &json!({"user_id": id, "user": &user}));
    if !changes.commit(users.bucket())? {
        return Err(taken(&user.email));
    }
    crash_point(request, "after-claim");
    service_kit::info("users", &format!("created user {id}"));
    Ok(Response::json(201, &user))
}

pub fn list(request: &Request) -> Answer {
    let paging = Paging::from_request(request)?;
    let users = users()?;
    let offset = (paging.page - 1).saturating_mul(paging.page_size);
    let page: Vec<User> = users.get_many(&all().page(users.bucket(), offset, paging.page_size as u32)?)?;
    Ok(paging.answer(&page, all().total(users.bucket())? as usize))
}

pub fn get(id: u64) -> Answer {
    let user = load(id)?.ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
    Ok(Response::json(200, &user))
}

/// The stored bytes of user `id` and the user they hold, or 404.
fn stored(users: &Table, id: u64) -> Result<(Vec<u8>, User), Response> {
    let bytes = users.bucket().get(&Table::key(id))?.ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
    let user = serde_json::from_slice(&bytes).map_err(|e| StorageError(format!("user {id} is corrupt: {e}")))?;
    Ok((bytes, user))
}

pub fn update(request: &Request, id: u64) -> Answer {
    let fields = fields(request)?;
    let users = users()?;
    for _ in 0..ATTEMPTS {
        let (bytes, mut user) = stored(&users, id)?;
        let old_email = user.email.clone();
        if let Some(name) = fields.name.clone() {
            user.name = name;
        }
        if let Some(age) = fields.age {
            user.age = age;
        }
        if let Some(email) = fields.email.clone() {
            user.email = email;
        }
        let mut changes = Changes::default();
        changes.expect(Table::key(id), Some(bytes)).set(Table::key(id), record(&user));
        let moved = claim(&user.email) != claim(&old_email);
        if moved {
            changes.expect(claim(&user.email), None).set(claim(&user.email), holder(id));
            changes.delete(claim(&old_email));
        }
        changes.announce("users.updated", &json!({"user_id": id, "user": &user}));
        if changes.commit(users.bucket())? {
            crash_point(request, "after-record");
            return Ok(Response::json(200, &user));
        }
        if moved && users.bucket().get(&claim(&user.email))?.is_some() {
            return Err(taken(&user.email));
        }
    }
    Err(busy(id))
}

pub fn delete(request: &Request, id: u64) -> Answer {
    let users = users()?;
    for _ in 0..ATTEMPTS {
        let (bytes, user) = stored(&users, id)?;
        let mut changes = Changes::default();
        changes.expect(Table::key(id), Some(bytes)).delete(Table::key(id));
        changes.delete(claim(&user.email)).remove(&all(), id);
        changes.announce("users.deleted", &json!({"user_id": id, "user": &user}));
        if changes.commit(users.bucket())? {
            crash_point(request, "after-record");
            service_kit::info("users", &format!("deleted user {id}"));
            return Ok(Response::empty());
        }
    }
    Err(busy(id))
}
