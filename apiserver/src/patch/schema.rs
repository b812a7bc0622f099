//! Walking an object's schema alongside its JSON, so patch code knows at every list which
//! patch metadata applies.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::table::{self, FieldMeta, ListType};

/// What kind of value a schema describes, as server-side apply walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Named fields (`properties`).
    Struct,
    /// String keys to values of one type (`additionalProperties`, or an object without a
    /// declared shape such as `FieldsV1`).
    Map,
    List,
    /// Strings, numbers, booleans and the few types that are one of several (`IntOrString`).
    Scalar,
}

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
        Node {
            schemas: self,
            definition: self
                .definitions
                .get_key_value(definition)
                .map(|(k, _)| k.as_str()),
            schema: self.definitions.get(definition),
        }
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
            s.get("$ref").or_else(|| {
                s.get("allOf")
                    .and_then(|a| a.get(0))
                    .and_then(|a| a.get("$ref"))
            })
        });
        match reference
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
        {
            Some(name) => schemas.root(name),
            None => Node {
                schemas,
                definition: None,
                schema,
            },
        }
    }

    /// The schema of property `name` of this struct.
    pub fn field(&self, name: &str) -> Node<'a> {
        let property = self
            .schema
            .and_then(|s| s.get("properties"))
            .and_then(|p| p.get(name));
        Node::resolve(self.schemas, property)
    }

    /// The schema of this list's items or this map's values.
    pub fn item(&self) -> Node<'a> {
        let item = self
            .schema
            .and_then(|s| s.get("items").or_else(|| s.get("additionalProperties")));
        Node::resolve(self.schemas, item)
    }

    /// The patch metadata of property `name` of this struct.
    pub fn meta(&self, name: &str) -> Option<&'static FieldMeta> {
        table::lookup(self.definition?, name)
    }

    /// The OpenAPI definition this node is, when it is a named type.
    pub fn definition(&self) -> Option<&'a str> {
        self.definition
    }

    pub fn shape(&self) -> Shape {
        let Some(schema) = self.schema else {
            return Shape::Scalar;
        };
        if schema.get("properties").is_some() {
            Shape::Struct
        } else if schema.get("additionalProperties").is_some() {
            Shape::Map
        } else if schema.get("items").is_some() {
            Shape::List
        } else if schema.get("type").and_then(Value::as_str) == Some("object") {
            Shape::Map
        } else {
            Shape::Scalar
        }
    }

    /// Whether this struct declares property `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.schema
            .and_then(|s| s.get("properties"))
            .is_some_and(|p| p.get(name).is_some())
    }

    /// How server-side apply treats list property `name` of this struct.
    pub fn list_type(&self, name: &str) -> ListType {
        self.meta(name)
            .map_or(ListType::Atomic, FieldMeta::list_type)
    }

    /// Whether property `name` of this struct is owned as a whole: an atomic map, or a
    /// struct of an atomic type.
    pub fn atomic(&self, name: &str) -> bool {
        self.definition.is_some_and(|d| table::atomic_map(d, name))
            || self
                .field(name)
                .definition
                .is_some_and(table::atomic_struct)
    }
}
