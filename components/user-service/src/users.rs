//! Users: validation, storage (a record per id, emails claimed uniquely), and the HTTP
//! answers for each operation.
//!
//! A user's record and its email's claim are two writes, so every operation orders them so
//! that a crash between any two leaves a state the next claim of that email can repair:
//! - create: claim the email (holding the new record), then store the record;
//! - change of email: claim the new email, store the record, release the old email;
//! - delete: mark the claim deleted, delete the record, release the claim.
//!
//! When an email is taken, its claim is checked (`settle`): a claim marked deleted, or one
//! whose holder's record now has another email, is finished and freed; a claim whose holder
//! has no record is a create that lost its second write, and the user is restored from it.

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

/// Longest name accepted, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest email accepted: the longest address SMTP can carry (RFC 5321).
const MAX_EMAIL_BYTES: usize = 254;

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

/// What a claim holds while its user is being deleted.
fn deleted(id: u64) -> Vec<u8> {
    serde_json::json!({ "id": id, "deleted": true }).to_string().into_bytes()
}

/// A test build stops here when asked (`?crash=NAME`), as a crash between two writes would.
#[cfg(feature = "crash-points")]
fn crash_point(request: &Request, name: &str) {
    if request.query_param("crash") == Some(name) {
        panic!("crash point {name}");
    }
}

#[cfg(not(feature = "crash-points"))]
fn crash_point(_: &Request, _: &str) {}

/// Whether an email claim still stands after its holder was looked at.
enum Settled {
    /// The holder owns it: the email is taken.
    Held,
    /// It was left over from a deletion or an email change: freed, claim again.
    Freed,
}

/// Finishes what a crash may have cut short for the holder of the email claim `key`.
fn settle(users: &Table, emails: &Claims, key: &str, holder: &[u8]) -> Result<Settled, StorageError> {
    let Ok(held) = serde_json::from_slice::<Value>(holder) else { return Ok(Settled::Held) };
    let Some(id) = held.get("id").and_then(Value::as_u64) else { return Ok(Settled::Held) };
    if held.get("deleted") == Some(&Value::Bool(true)) {
        service_kit::warn("users", &format!("finishing the deletion of user {id}"));
        users.delete(id)?;
        emails.release(key, id)?;
        return Ok(Settled::Freed);
    }
    match users.get::<User>(id)? {
        Some(current) if email_key(&current.email) != key => {
            service_kit::warn("users", &format!("releasing user {id}'s former email"));
            emails.release(key, id)?;
            Ok(Settled::Freed)
        }
        Some(_) => Ok(Settled::Held),
        None => {
            if let Ok(user) = serde_json::from_value::<User>(held) {
                service_kit::warn("users", &format!("restoring user {id} from its email claim"));
                users.put(id, &user)?;
            }
            Ok(Settled::Held)
        }
    }
}

/// Claims `user`'s email for it: `Ok(false)` if another user holds it.
fn claim_email(users: &Table, emails: &Claims, user: &User) -> Result<bool, StorageError> {
    let key = email_key(&user.email);
    // A second round is enough: a settled claim is gone, unless someone else claimed it since.
    for _ in 0..2 {
        match emails.claim(&key, user.id, &record(user))? {
            Claim::Won => return Ok(true),
            Claim::Taken(holder) => match settle(users, emails, &key, &holder)? {
                Settled::Held => return Ok(false),
                Settled::Freed => continue,
            },
        }
    }
    Ok(false)
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
    if !claim_email(&users, &emails, &user)? {
        return Err(taken(&user.email));
    }
    crash_point(request, "after-claim");
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
        && !claim_email(&users, emails, &user)?
    {
        return Err(taken(&user.email));
    }
    users.put(id, &user)?;
    if let Some(emails) = &emails {
        crash_point(request, "after-record");
        emails.release(&email_key(&old_email), id)?;
    }
    Ok(Response::json(200, &user))
}

pub fn delete(request: &Request, id: u64) -> Answer {
    let (users, emails) = (users()?, emails()?);
    let user = users.get::<User>(id)?.ok_or_else(|| Response::not_found(&format!("no user {id}")))?;
    let key = email_key(&user.email);
    emails.claim(&key, id, &deleted(id))?;
    users.delete(id)?;
    crash_point(request, "after-record");
    emails.release(&key, id)?;
    service_kit::info("users", &format!("deleted user {id}"));
    Ok(Response::empty())
}
