//! Walking an object's schema alongside its JSON, so patch code knows at every list which
//! patch metadata applies.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::table::{self, FieldMeta};

/// The schemas of every served type, keyed by OpenAPI definition name.
#[derive(Debug, Default)]
pub struct Schemas {
    definitions: Map<String, Value>,
}

impl Schemas {
    pub fn new(definitions: Map<String, Value>) -> Arc<Self> {
        Arc::new(Schemas { definitions })
    }

    /// The schema of a definition, as the root of a walk.
    pub fn root<'a>(&'a self, definition: &str) -> Node<'a> {
        Node { schemas: self, definition: self.definitions.get_key_value(definition).map(|(k, _)| k.as_str()), schema: self.definitions.get(definition) }
    }
}

/// A position in a schema: a named definition (struct) or an inline schema (list, map).
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    schemas: &'a Schemas,
    definition: Option<&'a str>,
    schema: Option<&'a Value>,
}

impl<'a> Node<'a> {
    /// Follows `$ref` (directly or as the single `allOf` entry schemars emits) to a definition.
    fn resolve(schemas: &'a Schemas, schema: Option<&'a Value>) -> Self {
        let reference = schema.and_then(|s| {
            s.get("$ref").or_else(|| s.get("allOf").and_then(|a| a.get(0)).and_then(|a| a.get("$ref")))
        });
        match reference.and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
            Some(name) => schemas.root(name),
            None => Node { schemas, definition: None, schema },
        }
    }

    /// The schema of property `name` of this struct.
    pub fn field(&self, name: &str) -> Node<'a> {
        let property = self.schema.and_then(|s| s.get("properties")).and_then(|p| p.get(name));
        Node::resolve(self.schemas, property)
    }

    /// The schema of this list's items or this map's values.
    pub fn item(&self) -> Node<'a> {
        let item = self.schema.and_then(|s| s.get("items").or_else(|| s.get("additionalProperties")));
        Node::resolve(self.schemas, item)
    }

    /// The patch metadata of property `name` of this struct.
    pub fn meta(&self, name: &str) -> Option<&'static FieldMeta> {
        table::lookup(self.definition?, name)
    }
}
