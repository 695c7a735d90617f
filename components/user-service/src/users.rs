//! Users: validation, storage (a record per id, emails claimed uniquely), and the HTTP
//! answers for each operation.

use guest_http::{Answer, Request, Response};
use serde_json::Value;
use service_kit::{Claim, Claims, Paging, StorageError, Table, invalid};

/// A user: the WIT record, stored and served as JSON exactly as other services receive it.
pub use crate::exports::shop::users::api::User;

fn users() -> Result<Table, StorageError> {
    Table::open("users")
}

fn emails() -> Result<Claims, StorageError> {
    Claims::open("emails")
}

/// Emails are unique regardless of case.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}

pub fn load(id: u64) -> Result<Option<User>, StorageError> {
    users()?.get(id)
}

pub fn count() -> Result<u64, StorageError> {
    Ok(users()?.ids()?.len() as u64)
}

/// Valid when it has exactly one `@`, something before it, and after it a domain with a dot
/// and no empty label.
pub fn valid_email(email: &str) -> bool {
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    !local.is_empty() && domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

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
        Some(value) => match value.as_u64().and_then(|a| u32::try_from(a).ok()) {
            Some(age) => Some(Some(age)),
            None => return Err(invalid("age must be a non-negative integer")),
        },
    };
    if name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(invalid("name must not be empty"));
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

/// The holder of a taken email whose own record is missing lost its write to a crash between
/// claiming and storing: its claim holds the record, so restore it.
fn repair(users: &Table, holder: &[u8]) -> Result<(), StorageError> {
    let Ok(holder) = serde_json::from_slice::<User>(holder) else { return Ok(()) };
    if users.get::<User>(holder.id)?.is_none() {
        service_kit::warn("users", &format!("restoring user {} from its email claim", holder.id));
        users.put(holder.id, &holder)?;
    }
    Ok(())
}

fn taken(email: &str) -> Response {
    Response::error(409, "conflict", &format!("the email {email} is already registered"))
}

pub fn create(request: &Request) -> Answer {
    let fields = fields(request)?;
    let name = fields.name.ok_or_else(|| invalid("name is required"))?;
    let email = fields.email.ok_or_else(|| invalid("email is required"))?;
    let (users, emails) = (users()?, emails()?);
    let id = users.next_id()?;
    let user = User { id, name, email, age: fields.age.flatten(), created_at: service_kit::now() };
    if let Claim::Taken(holder) = emails.claim(&email_key(&user.email), id, &record(&user))? {
        repair(&users, &holder)?;
        return Err(taken(&user.email));
    }
    users.put(id, &user)?;
    service_kit::info("users", &format!("created user {id}"));
    Ok(Response::json(201, &user))
}

pub fn list(request: &Request) -> Answer {
    let paging = Paging::from_request(request)?;
    let users = users()?;
    let ids = users.ids()?;
    let page: Vec<User> = users.get_many(&ids[paging.range(ids.len())])?;
    Ok(paging.answer(&page, ids.len()))
}

pub fn get(id: u64) -> Answer {
    let user = load(id)?.ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
    Ok(Response::json(200, &user))
}

pub fn update(request: &Request, id: u64) -> Answer {
    let fields = fields(request)?;
    let users = users()?;
    let mut user = users.get::<User>(id)?.ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
    let old_email = user.email.clone();
    if let Some(name) = fields.name {
        user.name = name;
    }
    if let Some(age) = fields.age {
        user.age = age;
    }
    if let Some(email) = fields.email {
        user.email = email;
    }
    let moved = email_key(&user.email) != email_key(&old_email);
    let emails = if moved { Some(emails()?) } else { None };
    if let Some(emails) = &emails
        && let Claim::Taken(holder) = emails.claim(&email_key(&user.email), id, &record(&user))?
    {
        repair(&users, &holder)?;
        return Err(taken(&user.email));
    }
    users.put(id, &user)?;
    if let Some(emails) = &emails {
        emails.release(&email_key(&old_email), id)?;
    }
    Ok(Response::json(200, &user))
}

pub fn delete(id: u64) -> Answer {
    let (users, emails) = (users()?, emails()?);
    let user = users.get::<User>(id)?.ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
    users.delete(id)?;
    emails.release(&email_key(&user.email), id)?;
    service_kit::info("users", &format!("deleted user {id}"));
    Ok(Response::empty())
}
