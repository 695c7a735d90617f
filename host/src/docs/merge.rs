//! One OpenAPI 3.1 document from every loaded component's own: each operation kept only where
//! the router really sends it to that component, schemas renamed apart when two components
//! mean different things by one name, routes of components without a document listed bare,
//! and what the host itself answers added: the policies' security and refusals (401, 403,
//! 429) and the host's own errors (408, 413, 503, 504).

use std::collections::{BTreeMap, HashMap};

use http::Method;
use serde_json::{Map, Value, json};

use crate::config::AuthMethod;
use crate::http::router::{Lookup, Route, Router};
use crate::policy::Policies;
use crate::registry::Snapshot;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const SCHEMAS: &str = "#/components/schemas/";
/// The host's own error body, the same for every component.
const HOST_ERROR: &str = "TrellisError";

/// The document being built.
#[derive(Default)]
struct Merged {
    paths: BTreeMap<String, Map<String, Value>>,
    schemas: Map<String, Value>,
    schemes: Map<String, Value>,
}

/// The merged document of what `snapshot` serves, under `policies`.
pub(super) fn document(snapshot: &Snapshot, policies: &Policies) -> Value {
    let mut merged = Merged::default();
    for (name, component) in &snapshot.components {
        match &component.openapi {
            Some(document) => merged.add_document(name, document, &snapshot.router),
            None => merged.add_routes(name, &component.routes),
        }
    }
    merged.secure(policies);
    merged.host_answers();
    let tags: Vec<Value> = snapshot
        .components
        .keys()
        .map(|name| json!({ "name": name, "description": format!("Served by the component {name}") }))
        .collect();
    let mut components = json!({ "schemas": merged.schemas });
    if !merged.schemes.is_empty() {
        components["securitySchemes"] = Value::Object(merged.schemes);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Trellis",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every route of the components this host serves, from their own OpenAPI documents, \
                with what the host answers itself: its policies' refusals and its own errors.",
        },
        "tags": tags,
        "paths": merged.paths,
        "components": components,
    })
}

impl Merged {
    /// Adds one component's operations and schemas.
    fn add_document(&mut self, component: &str, document: &Value, router: &Router) {
        let mut renames = HashMap::new();
        let own = document.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default();
        for (name, schema) in &own {
            if self.schemas.get(name).is_some_and(|existing| existing != schema) || name == HOST_ERROR {
                renames.insert(format!("{SCHEMAS}{name}"), format!("{SCHEMAS}{}.{name}", safe(component)));
            }
        }
        for (name, mut schema) in own {
            rename_refs(&mut schema, &renames);
            let name = match renames.get(&format!("{SCHEMAS}{name}")) {
                Some(renamed) => renamed[SCHEMAS.len()..].to_string(),
                None => name,
            };
            self.schemas.insert(name, schema);
        }
        let Some(paths) = document.get("paths").and_then(Value::as_object) else { return };
        for (path, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for (method, operation) in item.iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                if !serves(router, method, path, component) {
                    tracing::debug!(component, method, path, "documented but not routed to it: left out");
                    continue;
                }
                let mut operation = operation.clone();
                rename_refs(&mut operation, &renames);
                let Some(fields) = operation.as_object_mut() else { continue };
                if !fields.contains_key("tags") {
                    fields.insert("tags".into(), json!([component]));
                }
                fields.insert("x-trellis-component".into(), json!(component));
                let merged = self.paths.entry(path.clone()).or_default();
                for (key, value) in item.iter().filter(|(k, _)| !METHODS.contains(&k.as_str())) {
                    merged.entry(key.clone()).or_insert_with(|| value.clone());
                }
                merged.entry(method.clone()).or_insert(operation);
            }
        }
    }

    /// Lists the routes of a component that publishes no document, with nothing described.
    fn add_routes(&mut self, component: &str, routes: &[Route]) {
        for route in routes {
            let (path, params) = route.pattern.template();
            let parameters: Vec<Value> = params
                .iter()
                .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
                .collect();
            let methods: Vec<String> = match &route.method {
                Some(method) => vec![method.as_str().to_ascii_lowercase()],
                None => ["get", "post", "put", "delete", "patch"].map(String::from).to_vec(),
            };
            let operation = json!({
                "summary": format!("Served by {component}"),
                "description": format!("{component} publishes no OpenAPI document (the trellis:http/openapi export), \
                    so what it takes and answers is not described."),
                "tags": [component],
                "parameters": parameters,
                "responses": { "default": { "description": "The component's answer" } },
                "x-trellis-component": component,
            });
            let item = self.paths.entry(path).or_default();
            for method in methods {
                item.entry(method).or_insert_with(|| operation.clone());
            }
        }
    }

    /// Marks each operation a policy covers with its security and the refusals it may answer.
    fn secure(&mut self, policies: &Policies) {
        for (path, item) in &mut self.paths {
            for (_, operation) in item.iter_mut().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                let component = operation["x-trellis-component"].as_str().unwrap_or_default().to_string();
                let Some(rule) = policies.find(path, &component) else { continue };
                let scopes = &rule.scopes;
                let security = match rule.auth {
                    AuthMethod::None => None,
                    AuthMethod::Jwt => Some(json!([{ "bearer": scopes }])),
                    AuthMethod::ApiKey => Some(json!([{ "apiKey": [] }])),
                    AuthMethod::JwtOrApiKey => Some(json!([{ "bearer": scopes }, { "apiKey": [] }])),
                };
                let secured = security.is_some();
                if let Some(security) = security {
                    operation["security"] = security;
                }
                let responses = responses_of(operation);
                if secured {
                    add(responses, "401", host_error("No valid credentials (see WWW-Authenticate)"));
                    if !scopes.is_empty() {
                        add(responses, "403", host_error("The credentials lack a scope this route needs"));
                    }
                }
                if rule.limited() {
                    let mut refused = host_error("Too many requests from this client; retry after Retry-After seconds");
                    refused["headers"] = json!({ "Retry-After": { "schema": { "type": "integer" } } });
                    add(responses, "429", refused);
                }
                operation["x-trellis-policy"] = json!(rule.name);
                let uses = |method: AuthMethod| [method, AuthMethod::JwtOrApiKey].contains(&rule.auth);
                if uses(AuthMethod::Jwt) {
                    self.schemes
                        .insert("bearer".into(), json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }));
                }
                if uses(AuthMethod::ApiKey) {
                    self.schemes
                        .insert("apiKey".into(), json!({ "type": "apiKey", "in": "header", "name": "X-API-Key" }));
                }
            }
        }
    }

    /// The answers the host may give for any route, whatever the component.
    fn host_answers(&mut self) {
        self.schemas.insert(
            HOST_ERROR.into(),
            json!({
                "type": "object",
                "required": ["error"],
                "properties": { "error": { "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } },
            }),
        );
        for item in self.paths.values_mut() {
            for (_, operation) in item.iter_mut().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                let takes_body = operation.get("requestBody").is_some();
                let responses = responses_of(operation);
                if responses.contains_key("default") {
                    continue;
                }
                if takes_body {
                    add(responses, "408", host_error("The body did not arrive in time"));
                    add(responses, "413", host_error("The body is larger than the component accepts"));
                }
                add(responses, "503", host_error("The component is busy or unavailable"));
                add(responses, "504", host_error("The request ran past its deadline"));
            }
        }
    }
}

/// Whether the router sends `method` on the templated `path` to `component`.
fn serves(router: &Router, method: &str, path: &str, component: &str) -> bool {
    let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { return false };
    matches!(router.lookup(&method, path), Lookup::Found { component: found, .. } if found == component)
}

fn responses_of(operation: &mut Value) -> &mut Map<String, Value> {
    if !operation.get("responses").is_some_and(Value::is_object) {
        operation["responses"] = json!({});
    }
    operation["responses"].as_object_mut().expect("made an object above")
}

fn add(responses: &mut Map<String, Value>, status: &str, response: Value) {
    responses.entry(status).or_insert(response);
}

fn host_error(description: &str) -> Value {
    json!({ "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("{SCHEMAS}{HOST_ERROR}") } } } })
}

/// Points every `$ref` of `value` named in `renames` at its new name.
fn rename_refs(value: &mut Value, renames: &HashMap<String, String>) {
    if renames.is_empty() {
        return;
    }
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match field {
                    Value::String(target) if key == "$ref" => {
                        if let Some(renamed) = renames.get(target.as_str()) {
                            *target = renamed.clone();
                        }
                    }
                    other => rename_refs(other, renames),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rename_refs(item, renames)),
        _ => {}
    }
}

/// A component name as a schema name's prefix (letters, digits, `-`, `_`).
fn safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
