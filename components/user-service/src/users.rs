//! Users: validation, storage (a record per id, emails claimed uniquely), and the HTTP
//! answers for each operation.

use guest_http::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::{Claim, Claims, Paging, Table, invalid, storage_error};

use crate::exports::shop::users::api;

/// A stored user, exactly as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub age: Option<u32>,
    pub created_at: String,
}

impl From<User> for api::User {
    fn from(u: User) -> Self {
        api::User { id: u.id, name: u.name, email: u.email, age: u.age, created_at: u.created_at }
    }
}

fn users() -> Result<Table, String> {
    Table::open("users")
}

fn emails() -> Result<Claims, String> {
    Claims::open("emails")
}

/// Emails are unique regardless of case.
fn email_key(email: &str) -> String {
    email.to_lowercase()
}

pub fn load(id: u64) -> Result<Option<User>, String> {
    users()?.get(id)
}

pub fn count() -> Result<u64, String> {
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
fn repair(users: &Table, holder: &[u8]) -> Result<(), String> {
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

pub fn create(request: &Request) -> Response {
    let fields = match fields(request) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let Some(name) = fields.name else { return invalid("name is required") };
    let Some(email) = fields.email else { return invalid("email is required") };
    let result = (|| -> Result<Response, String> {
        let (users, emails) = (users()?, emails()?);
        let id = users.next_id()?;
        let user = User { id, name, email, age: fields.age.flatten(), created_at: service_kit::now() };
        if let Claim::Taken(holder) = emails.claim(&email_key(&user.email), id, &record(&user))? {
            repair(&users, &holder)?;
            return Ok(taken(&user.email));
        }
        users.put(id, &user)?;
        service_kit::info("users", &format!("created user {id}"));
        Ok(Response::json(201, &serde_json::to_value(&user).unwrap_or_default()))
    })();
    result.unwrap_or_else(storage_error)
}

pub fn list(request: &Request) -> Response {
    let paging = match Paging::from_request(request) {
        Ok(paging) => paging,
        Err(response) => return response,
    };
    let result = (|| -> Result<Response, String> {
        let users = users()?;
        let ids = users.ids()?;
        let page: Vec<User> = users.get_many(&ids[paging.range(ids.len())])?;
        let items = page.iter().map(|u| serde_json::to_value(u).unwrap_or_default()).collect();
        Ok(paging.answer(items, ids.len()))
    })();
    result.unwrap_or_else(storage_error)
}

pub fn get(id: u64) -> Response {
    match load(id) {
        Ok(Some(user)) => Response::json(200, &serde_json::to_value(&user).unwrap_or_default()),
        Ok(None) => Response::not_found(&format!("no user {id}")),
        Err(e) => storage_error(e),
    }
}

pub fn update(request: &Request, id: u64) -> Response {
    let fields = match fields(request) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let result = (|| -> Result<Response, String> {
        let users = users()?;
        let Some(mut user) = users.get::<User>(id)? else { return Ok(Response::not_found(&format!("no user {id}"))) };
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
            return Ok(taken(&user.email));
        }
        users.put(id, &user)?;
        if let Some(emails) = &emails {
            emails.release(&email_key(&old_email), id)?;
        }
        Ok(Response::json(200, &serde_json::to_value(&user).unwrap_or_default()))
    })();
    result.unwrap_or_else(storage_error)
}

pub fn delete(id: u64) -> Response {
    let result = (|| -> Result<Response, String> {
        let (users, emails) = (users()?, emails()?);
        let Some(user) = users.get::<User>(id)? else { return Ok(Response::not_found(&format!("no user {id}"))) };
        users.delete(id)?;
        emails.release(&email_key(&user.email), id)?;
        service_kit::info("users", &format!("deleted user {id}"));
        Ok(Response::empty())
    })();
    result.unwrap_or_else(storage_error)
}
