//! A service's OpenAPI 3.1 document, for its `trellis:http/openapi` export: operations are
//! written out per route, and the schemas of what is stored and served come from the Rust
//! types themselves (the WIT records) through `schemars`, so the document cannot drift from
//! the JSON the service really sends.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// A document being written: its paths, and a generator that keeps every schema it was asked
/// for under `#/components/schemas/`.
pub struct Document {
    title: String,
    version: String,
    paths: Map<String, Value>,
    generator: SchemaGenerator,
}

impl Document {
    pub fn new(title: &str, version: &str) -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into());
        let mut document = Self {
            title: title.into(),
            version: version.into(),
            paths: Map::new(),
            generator: settings.into_generator(),
        };
        document.schema::<ErrorBody>();
        document
    }

    /// The schema of `T`: a reference to it when it is a named type.
    pub fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// Adds `operation` (an OpenAPI operation object) for `method` on `path`.
    pub fn operation(&mut self, method: &str, path: &str, operation: Value) -> &mut Self {
        let item = self.paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_ascii_lowercase()] = operation;
        self
    }

    /// The whole document, as JSON text.
    pub fn to_json(&mut self) -> String {
        let schemas: Map<String, Value> = self.generator.definitions().clone();
        json!({
            "openapi": "3.1.0",
            "info": { "title": self.title, "version": self.version },
            "paths": self.paths,
            "components": { "schemas": schemas },
        })
        .to_string()
    }
}

/// Every error a shop service answers: `{"error": {"code", "message"}}`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong: a stable code for programs, and a sentence for people.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A JSON response with `schema`.
pub fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// An error response: the shared error body.
pub fn error(description: &str) -> Value {
    json_response(description, json!({ "$ref": "#/components/schemas/ErrorBody" }))
}

/// A required JSON request body with `schema`.
pub fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// A path parameter holding a positive id.
pub fn id(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
        "schema": { "type": "integer", "minimum": 1, "maximum": u64::MAX } })
}

/// The `page` and `page_size` query parameters of a listing.
pub fn paging() -> [Value; 2] {
    [
        json!({ "name": "page", "in": "query", "required": false, "description": "The page, from 1",
            "schema": { "type": "integer", "minimum": 1, "maximum": u64::MAX, "default": 1 } }),
        json!({ "name": "page_size", "in": "query", "required": false,
            "description": format!("Items per page; larger sizes are served as {}", crate::paging::MAX_PAGE_SIZE),
            "schema": { "type": "integer", "minimum": 1, "maximum": u64::MAX, "default": crate::paging::DEFAULT_PAGE_SIZE } }),
    ]
}

/// The answer to a listing: `{"items", "page", "page_size", "total"}` with items of `item`.
pub fn page_of(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["items", "page", "page_size", "total"],
        "properties": {
            "items": { "type": "array", "items": item },
            "page": { "type": "integer", "minimum": 1 },
            "page_size": { "type": "integer", "minimum": 1 },
            "total": { "type": "integer", "minimum": 0 },
        },
    })
}
