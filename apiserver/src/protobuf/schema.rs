//! The generated wire schema (`schema.json`, written by `hack/gen-protobuf-schema.py`), parsed
//! once on first use.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// Every message reachable from a served kind, by upstream proto name without the `k8s.io.`
/// prefix (`api.apps.v1.Deployment`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Schema {
    /// apiVersion → kind → message.
    kinds: HashMap<String, HashMap<String, String>>,
    /// Kinds upstream registers in every group version (DeleteOptions).
    meta_kinds: HashMap<String, String>,
    /// apiVersion → kind → message, for kinds only responses carry: every served kind's list,
    /// Status (v1) and PartialObjectMetadata(List) (meta.k8s.io/v1).
    response_kinds: HashMap<String, HashMap<String, String>>,
    shapes: HashMap<String, Shape>,
    messages: HashMap<String, Message>,
}

/// A message whose upstream JSON form is not one key per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Shape {
    /// metav1.Time: RFC 3339 seconds.
    Time,
    /// metav1.MicroTime: RFC 3339 microseconds.
    MicroTime,
    /// resource.Quantity: its string.
    Quantity,
    /// intstr.IntOrString: a number or a string.
    IntOrString,
    /// RawExtension, FieldsV1, apiextensions JSON: embedded JSON bytes.
    RawJson,
    /// A Go named slice (`ExtraValue []string`) wrapped for use as a map value: the bare array.
    Items,
    /// JSONSchemaPropsOrArray: the schema, or the array of schemas.
    SchemaOrArray,
    /// JSONSchemaPropsOrBool: the schema, or the bool.
    SchemaOrBool,
    /// JSONSchemaPropsOrStringArray: the string array, or the schema.
    SchemaOrStringArray,
}

/// One field of a message, as written `[jsonName, type, label?]`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub(super) struct Field {
    pub(super) json_name: String,
    pub(super) ty: FieldType,
    pub(super) label: Label,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Int32,
    Int64,
    Bool,
    Double,
    Bytes,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum FieldType {
    Scalar(Scalar),
    Message(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    Singular,
    Repeated,
    /// `map<string, ty>`: repeated entries with key = 1, value = 2.
    Map,
    /// An embedded Go struct: its fields belong to the enclosing JSON object.
    Inline,
}

impl TryFrom<Vec<String>> for Field {
    type Error = String;

    fn try_from(parts: Vec<String>) -> Result<Self, String> {
        let mut parts = parts.into_iter();
        let (Some(json_name), Some(ty), label, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a field is [jsonName, type, label?]".into());
        };
        let label = match label.as_deref() {
            None => Label::Singular,
            Some("repeated") => Label::Repeated,
            Some("map") => Label::Map,
            Some("inline") => Label::Inline,
            Some(other) => return Err(format!("unknown label {other:?}")),
        };
        let ty = match ty.as_str() {
            "string" => FieldType::Scalar(Scalar::String),
            "int32" => FieldType::Scalar(Scalar::Int32),
            "int64" => FieldType::Scalar(Scalar::Int64),
            "bool" => FieldType::Scalar(Scalar::Bool),
            "double" => FieldType::Scalar(Scalar::Double),
            "bytes" => FieldType::Scalar(Scalar::Bytes),
            _ => FieldType::Message(ty),
        };
        if label == Label::Inline && !matches!(ty, FieldType::Message(_)) {
            return Err(format!("inline field {json_name} is not a message"));
        }
        Ok(Field {
            json_name,
            ty,
            label,
        })
    }
}

/// The fields of one message in ascending tag order, the order gogo writes them in (and so the
/// encoder does).
#[derive(Debug)]
pub(super) struct Message {
    fields: Vec<(u32, Field)>,
}

impl Message {
    pub(super) fn get(&self, tag: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&tag, |(t, _)| *t)
            .ok()
            .map(|index| &self.fields[index].1)
    }

    pub(super) fn fields(&self) -> impl Iterator<Item = (u32, &Field)> {
        self.fields.iter().map(|(tag, field)| (*tag, field))
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields: Vec<(u32, Field)> = HashMap::<u32, Field>::deserialize(deserializer)?
            .into_iter()
            .collect();
        fields.sort_unstable_by_key(|(tag, _)| *tag);
        Ok(Message { fields })
    }
}

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    serde_json::from_str(include_str!("schema.json"))
        .expect("schema.json is generated by hack/gen-protobuf-schema.py and checked by tests")
});

/// The schema, parsed on first use (about 120 KB of JSON).
pub(super) fn schema() -> &'static Schema {
    &SCHEMA
}

impl Schema {
    /// The message of a kind, if upstream registers the kind in that apiVersion.
    pub(super) fn kind_message(&self, api_version: &str, kind: &str) -> Option<&str> {
        let kinds = self.kinds.get(api_version)?;
        kinds
            .get(kind)
            .or_else(|| self.meta_kinds.get(kind))
            .map(String::as_str)
    }

    /// The message of a kind the apiserver may answer with: a kind a request body may hold,
    /// or one only responses carry (lists, Status, PartialObjectMetadata).
    pub(super) fn response_message(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.kind_message(api_version, kind).or_else(|| {
            self.response_kinds
                .get(api_version)?
                .get(kind)
                .map(String::as_str)
        })
    }

    /// The fields of a plain (or composite-shaped) message.
    pub(super) fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// How a message's JSON departs from one key per field, if it does.
    pub(super) fn shape(&self, name: &str) -> Option<Shape> {
        self.shapes.get(name).copied()
    }

    #[cfg(test)]
    pub(super) fn kinds(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.kinds.iter().flat_map(|(version, kinds)| {
            kinds
                .iter()
                .map(move |(kind, message)| (version.as_str(), kind.as_str(), message.as_str()))
        })
    }

    #[cfg(test)]
    pub(super) fn response_kinds(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.response_kinds.iter().flat_map(|(version, kinds)| {
            kinds
                .iter()
                .map(move |(kind, message)| (version.as_str(), kind.as_str(), message.as_str()))
        })
    }

    /// Every message with fields.
    pub(super) fn messages(&self) -> impl Iterator<Item = (&str, &Message)> {
        self.messages
            .iter()
            .map(|(name, message)| (name.as_str(), message))
    }

    /// Every shaped message.
    pub(super) fn shapes(&self) -> impl Iterator<Item = (&str, Shape)> {
        self.shapes
            .iter()
            .map(|(name, shape)| (name.as_str(), *shape))
    }
}
