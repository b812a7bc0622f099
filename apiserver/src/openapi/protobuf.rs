//! The swagger 2.0 document encoded as gnostic's `openapi.v2.Document` protobuf message
//! (`openapiv2/OpenAPIv2.proto`), which kubectl up to 1.27 asks `/openapi/v2` for (media type
//! [`LEGACY_MEDIA_TYPE`]) to validate objects, find the `fieldValidation` parameter and `explain`.
//!
//! The encoding mirrors what upstream gets by compiling the JSON document with gnostic: keys the
//! message has a field for are encoded, `x-` keys become `vendor_extension` entries whose
//! `Any.yaml` holds the value as YAML text, anything else is dropped. Only the parts of swagger
//! 2.0 that Kubernetes documents use (no security, XML or global parameter definitions) are
//! encoded.

use serde_json::{Map, Value};

/// The media type upstream answers with. Clients parse the Content-Type with Go's `mime`
/// package, which rejects the `@` of [`LEGACY_MEDIA_TYPE`].
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The media type client-go asks for, still accepted upstream.
pub const LEGACY_MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;

/// The `openapi.v2.Document` encoding of a swagger 2.0 JSON document.
pub fn encode(document: &Value) -> Vec<u8> {
    document
        .as_object()
        .map(encode_document)
        .unwrap_or_default()
}

fn encode_document(document: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(document);
    w.string(1, "swagger");
    w.object(2, "info", info);
    w.string(3, "host");
    w.string(4, "basePath");
    w.strings(5, "schemes");
    w.strings(6, "consumes");
    w.strings(7, "produces");
    w.object(8, "paths", paths);
    w.object(9, "definitions", |definitions| {
        named_map(definitions, schema)
    });
    w.object(15, "externalDocs", external_docs);
    w.vendor_extensions(16);
    w.out
}

fn info(info: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(info);
    w.string(1, "title");
    w.string(2, "version");
    w.string(3, "description");
    w.string(4, "termsOfService");
    w.vendor_extensions(7);
    w.out
}

fn external_docs(docs: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(docs);
    w.string(1, "description");
    w.string(2, "url");
    w.vendor_extensions(3);
    w.out
}

/// `Paths`: vendor extensions, then every `/...` key as a `NamedPathItem`.
fn paths(paths: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(paths);
    w.vendor_extensions(1);
    for (name, item) in paths.iter().filter(|(name, _)| name.starts_with('/')) {
        if let Some(item) = item.as_object() {
            w.message(2, &named(name, &path_item(item)));
        }
    }
    w.out
}

fn path_item(item: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(item);
    w.string(1, "$ref");
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        w.object(field, method, operation);
    }
    w.parameters(9);
    w.vendor_extensions(10);
    w.out
}

fn operation(operation: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(operation);
    w.strings(1, "tags");
    w.string(2, "summary");
    w.string(3, "description");
    w.object(4, "externalDocs", external_docs);
    w.string(5, "operationId");
    w.strings(6, "produces");
    w.strings(7, "consumes");
    w.parameters(8);
    w.object(9, "responses", responses);
    w.strings(10, "schemes");
    w.bool(11, "deprecated");
    w.vendor_extensions(13);
    w.out
}

/// `ParametersItem`: a `JsonReference` or a `Parameter`, which is a `BodyParameter` or one of
/// the four `NonBodyParameter` variants chosen by `in`; None for an unknown location.
fn parameters_item(parameter: &Map<String, Value>) -> Option<Vec<u8>> {
    if parameter.contains_key("$ref") {
        return Some(field_bytes(2, &json_reference(parameter)));
    }
    let location = parameter.get("in").and_then(Value::as_str)?;
    let encoded = if location == "body" {
        let mut w = Writer::new(parameter);
        w.string(1, "description");
        w.string(2, "name");
        w.string(3, "in");
        w.bool(4, "required");
        w.object(5, "schema", schema);
        w.vendor_extensions(6);
        field_bytes(1, &w.out)
    } else {
        // Header and path parameters lack `allowEmptyValue`, so their later fields start one lower.
        let (variant, first_primitive) = match location {
            "header" => (1, 5),
            "formData" => (2, 6),
            "query" => (3, 6),
            "path" => (4, 5),
            _ => return None,
        };
        let mut w = Writer::new(parameter);
        w.bool(1, "required");
        w.string(2, "in");
        w.string(3, "description");
        w.string(4, "name");
        if first_primitive == 6 {
            w.bool(5, "allowEmptyValue");
        }
        w.primitive(first_primitive);
        w.vendor_extensions(first_primitive + 17);
        field_bytes(2, &field_bytes(variant, &w.out))
    };
    Some(field_bytes(1, &encoded))
}

fn json_reference(reference: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(reference);
    w.string(1, "$ref");
    w.string(2, "description");
    w.out
}

fn primitives_items(items: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(items);
    w.primitive(1);
    w.vendor_extensions(18);
    w.out
}

/// `Responses`: vendor extensions and every status code (or `default`) as a
/// `NamedResponseValue`, each a `JsonReference` or a `Response`.
fn responses(responses: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(responses);
    for (code, value) in responses.iter().filter(|(code, _)| !code.starts_with("x-")) {
        let Some(value) = value.as_object() else {
            continue;
        };
        let encoded = if value.contains_key("$ref") {
            field_bytes(2, &json_reference(value))
        } else {
            let mut r = Writer::new(value);
            r.string(1, "description");
            r.object(2, "schema", |s| field_bytes(1, &schema(s)));
            r.vendor_extensions(5);
            field_bytes(1, &r.out)
        };
        w.message(1, &named(code, &encoded));
    }
    w.vendor_extensions(2);
    w.out
}

fn schema(object: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new(object);
    w.string(1, "$ref");
    w.string(2, "format");
    w.string(3, "title");
    w.string(4, "description");
    w.any(5, "default");
    w.double(6, "multipleOf");
    w.double(7, "maximum");
    w.bool(8, "exclusiveMaximum");
    w.double(9, "minimum");
    w.bool(10, "exclusiveMinimum");
    w.int(11, "maxLength");
    w.int(12, "minLength");
    w.string(13, "pattern");
    w.int(14, "maxItems");
    w.int(15, "minItems");
    w.bool(16, "uniqueItems");
    w.int(17, "maxProperties");
    w.int(18, "minProperties");
    w.strings(19, "required");
    w.anys(20, "enum");
    // `AdditionalPropertiesItem` is a oneof, so `false` is encoded too.
    match object.get("additionalProperties") {
        Some(Value::Object(additional)) => w.message(21, &field_bytes(1, &schema(additional))),
        Some(Value::Bool(allowed)) => w.message(21, &field_varint(2, u64::from(*allowed))),
        _ => {}
    }
    if object.contains_key("type") {
        w.message(22, &Writer::new(object).with(|t| t.strings(1, "type")));
    }
    match object.get("items") {
        Some(Value::Object(items)) => w.message(23, &field_bytes(1, &schema(items))),
        Some(Value::Array(items)) => {
            let encoded: Vec<u8> = items
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|item| field_bytes(1, &schema(item)))
                .collect();
            w.message(23, &encoded);
        }
        _ => {}
    }
    w.objects(24, "allOf", schema);
    w.object(25, "properties", |properties| named_map(properties, schema));
    w.string(26, "discriminator");
    w.bool(27, "readOnly");
    w.object(29, "externalDocs", external_docs);
    w.any(30, "example");
    w.vendor_extensions(31);
    w.out
}

/// A message whose only field (1) repeats `Named*{name, value}` for every entry of `map`, as
/// `Definitions` and `Properties` do.
fn named_map(map: &Map<String, Value>, encode: fn(&Map<String, Value>) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in map {
        if let Some(value) = value.as_object() {
            out.extend(field_bytes(1, &named(name, &encode(value))));
        }
    }
    out
}

/// The body of a `Named*` message: the map key and the (always present) value message.
fn named(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = field_bytes(1, name.as_bytes());
    out.extend(field_bytes(2, value));
    out
}

/// An `Any` holding `value` as YAML text, as gnostic stores vendor extensions, defaults,
/// examples and enum values.
fn any(value: &Value) -> Vec<u8> {
    field_bytes(
        2,
        serde_yaml_ng::to_string(value)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Encodes the fields of one message from the keys of one JSON object. Scalars at their proto3
/// default (empty, zero, false) are left out, as proto3 does; present objects always are encoded,
/// since clients test sub-messages for presence.
struct Writer<'a> {
    object: &'a Map<String, Value>,
    out: Vec<u8>,
}

impl<'a> Writer<'a> {
    fn new(object: &'a Map<String, Value>) -> Self {
        Writer {
            object,
            out: Vec::new(),
        }
    }

    fn with(mut self, fill: impl FnOnce(&mut Self)) -> Vec<u8> {
        fill(&mut self);
        self.out
    }

    fn message(&mut self, field: u32, body: &[u8]) {
        self.out.extend(field_bytes(field, body));
    }

    fn string(&mut self, field: u32, key: &str) {
        if let Some(text) = self
            .object
            .get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
        {
            self.out.extend(field_bytes(field, text.as_bytes()));
        }
    }

    /// A repeated string from an array, or from a single string (`type` may be either).
    fn strings(&mut self, field: u32, key: &str) {
        match self.object.get(key) {
            Some(Value::String(text)) => self.out.extend(field_bytes(field, text.as_bytes())),
            Some(Value::Array(texts)) => {
                for text in texts.iter().filter_map(Value::as_str) {
                    self.out.extend(field_bytes(field, text.as_bytes()));
                }
            }
            _ => {}
        }
    }

    fn bool(&mut self, field: u32, key: &str) {
        if self.object.get(key).and_then(Value::as_bool) == Some(true) {
            self.out.extend(field_varint(field, 1));
        }
    }

    fn int(&mut self, field: u32, key: &str) {
        let value = self
            .object
            .get(key)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
        if let Some(value) = value.filter(|value| *value != 0) {
            // Negative int64 values are their 64-bit two's complement, as protobuf specifies.
            self.out.extend(field_varint(field, value as u64));
        }
    }

    fn double(&mut self, field: u32, key: &str) {
        if let Some(value) = self
            .object
            .get(key)
            .and_then(Value::as_f64)
            .filter(|value| *value != 0.0)
        {
            put_key(&mut self.out, field, FIXED64);
            self.out.extend(value.to_le_bytes());
        }
    }

    fn any(&mut self, field: u32, key: &str) {
        if let Some(value) = self.object.get(key) {
            self.message(field, &any(value));
        }
    }

    fn anys(&mut self, field: u32, key: &str) {
        if let Some(values) = self.object.get(key).and_then(Value::as_array) {
            for value in values {
                self.message(field, &any(value));
            }
        }
    }

    fn object(&mut self, field: u32, key: &str, encode: impl Fn(&Map<String, Value>) -> Vec<u8>) {
        if let Some(object) = self.object.get(key).and_then(Value::as_object) {
            self.message(field, &encode(object));
        }
    }

    fn objects(&mut self, field: u32, key: &str, encode: fn(&Map<String, Value>) -> Vec<u8>) {
        if let Some(objects) = self.object.get(key).and_then(Value::as_array) {
            for object in objects.iter().filter_map(Value::as_object) {
                self.message(field, &encode(object));
            }
        }
    }

    fn parameters(&mut self, field: u32) {
        if let Some(parameters) = self.object.get("parameters").and_then(Value::as_array) {
            for parameter in parameters.iter().filter_map(Value::as_object) {
                if let Some(encoded) = parameters_item(parameter) {
                    self.message(field, &encoded);
                }
            }
        }
    }

    /// The fields parameters, `PrimitivesItems` and headers share, numbered from `first`.
    fn primitive(&mut self, first: u32) {
        self.string(first, "type");
        self.string(first + 1, "format");
        self.object(first + 2, "items", primitives_items);
        self.string(first + 3, "collectionFormat");
        self.any(first + 4, "default");
        self.double(first + 5, "maximum");
        self.bool(first + 6, "exclusiveMaximum");
        self.double(first + 7, "minimum");
        self.bool(first + 8, "exclusiveMinimum");
        self.int(first + 9, "maxLength");
        self.int(first + 10, "minLength");
        self.string(first + 11, "pattern");
        self.int(first + 12, "maxItems");
        self.int(first + 13, "minItems");
        self.bool(first + 14, "uniqueItems");
        self.anys(first + 15, "enum");
        self.double(first + 16, "multipleOf");
    }

    /// Every `x-` key as a `NamedAny`.
    fn vendor_extensions(&mut self, field: u32) {
        for (name, value) in self
            .object
            .iter()
            .filter(|(name, _)| name.starts_with("x-"))
        {
            self.message(field, &named(name, &any(value)));
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, u64::from(field) << 3 | u64::from(wire_type));
}

fn field_varint(field: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_key(&mut out, field, VARINT);
    put_varint(&mut out, value);
    out
}

fn field_bytes(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 6);
    put_key(&mut out, field, LENGTH_DELIMITED);
    put_varint(&mut out, bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    /// One decoded field: number and either a varint / fixed64 value or the delimited bytes.
    #[derive(Debug, PartialEq)]
    enum Field {
        Varint(u32, u64),
        Fixed64(u32, u64),
        Bytes(u32, Vec<u8>),
    }

    fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = bytes[*at];
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        value
    }

    fn decode(bytes: &[u8]) -> Vec<Field> {
        let mut fields = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let key = read_varint(bytes, &mut at);
            let field = (key >> 3) as u32;
            match (key & 7) as u8 {
                VARINT => fields.push(Field::Varint(field, read_varint(bytes, &mut at))),
                FIXED64 => {
                    let value = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
                    at += 8;
                    fields.push(Field::Fixed64(field, value));
                }
                LENGTH_DELIMITED => {
                    let len = read_varint(bytes, &mut at) as usize;
                    fields.push(Field::Bytes(field, bytes[at..at + len].to_vec()));
                    at += len;
                }
                other => panic!("unexpected wire type {other}"),
            }
        }
        assert_eq!(at, bytes.len(), "trailing partial field");
        fields
    }

    /// The payloads of every occurrence of length-delimited `field`.
    fn all(bytes: &[u8], field: u32) -> Vec<Vec<u8>> {
        decode(bytes)
            .into_iter()
            .filter_map(|f| match f {
                Field::Bytes(n, payload) if n == field => Some(payload),
                _ => None,
            })
            .collect()
    }

    fn one(bytes: &[u8], field: u32) -> Vec<u8> {
        let mut found = all(bytes, field);
        assert_eq!(found.len(), 1, "field {field} of {:?}", decode(bytes));
        found.remove(0)
    }

    fn text(bytes: &[u8], field: u32) -> String {
        String::from_utf8(one(bytes, field)).unwrap()
    }

    #[test]
    fn varints_use_seven_bit_groups_low_first() {
        let mut out = Vec::new();
        put_varint(&mut out, 1);
        put_varint(&mut out, 150);
        put_varint(&mut out, u64::MAX);
        assert_eq!(out, [&[0x01, 0x96, 0x01][..], &[0xff; 9], &[0x01]].concat());
    }

    #[test]
    fn keys_and_lengths_frame_fields() {
        assert_eq!(field_varint(1, 150), [0x08, 0x96, 0x01]);
        assert_eq!(field_bytes(2, b"testing"), b"\x12\x07testing");
        // Field 22 needs a two-byte key.
        assert_eq!(field_bytes(22, b""), [0xb2, 0x01, 0x00]);
    }

    #[test]
    fn schema_matches_known_bytes() {
        let encoded = schema(
            json!({"type": "string", "maxLength": -1})
                .as_object()
                .unwrap(),
        );
        let mut expected = vec![0x58];
        expected.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        expected.extend([0xb2, 0x01, 0x08, 0x0a, 0x06]);
        expected.extend(b"string");
        assert_eq!(encoded, expected);
    }

    #[test]
    fn document_round_trips_through_the_gnostic_field_numbers() {
        let document = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/namespaces/{namespace}/configmaps/{name}": {
                "patch": {
                    "operationId": "patchConfigMap",
                    "parameters": [
                        {"name": "body", "in": "body", "required": true, "schema": {"type": "object"}},
                        {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true},
                    ],
                    "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/ConfigMap"}}},
                    "x-kubernetes-group-version-kind": {"group": "", "kind": "ConfigMap", "version": "v1"},
                },
            }},
            "definitions": {"ConfigMap": {
                "description": "ConfigMap holds configuration data.",
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {"type": "object", "additionalProperties": {"type": "string"}},
                    "metadata": {"$ref": "#/definitions/ObjectMeta", "description": "Standard metadata."},
                    "list": {"type": "array", "items": {"type": "integer", "format": "int32"}, "enum": [[1]]},
                    "open": {"type": "object", "additionalProperties": false},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
            }},
        });
        let bytes = encode(&document);

        assert_eq!(text(&bytes, 1), "2.0");
        let info = one(&bytes, 2);
        assert_eq!(
            (text(&info, 1), text(&info, 2)),
            ("Kubernetes".into(), "v1.33.0".into())
        );

        let path = one(&one(&bytes, 8), 2);
        assert_eq!(
            text(&path, 1),
            "/api/v1/namespaces/{namespace}/configmaps/{name}"
        );
        let patch = one(&one(&path, 2), 8);
        assert_eq!(text(&patch, 5), "patchConfigMap");
        let parameters = all(&patch, 8);
        let body = one(&one(&parameters[0], 1), 1);
        assert_eq!(
            (text(&body, 2), text(&body, 3)),
            ("body".into(), "body".into())
        );
        assert!(decode(&body).contains(&Field::Varint(4, 1)));
        assert_eq!(text(&one(&one(&body, 5), 22), 1), "object");
        let query = one(&one(&one(&parameters[1], 1), 2), 3);
        assert_eq!(
            (text(&query, 2), text(&query, 4), text(&query, 6)),
            ("query".into(), "fieldValidation".into(), "string".into())
        );
        assert!(decode(&query).contains(&Field::Varint(20, 1)));
        let response = one(&one(&patch, 9), 1);
        assert_eq!(text(&response, 1), "200");
        let response = one(&one(&response, 2), 1);
        assert_eq!(text(&response, 1), "OK");
        assert_eq!(
            text(&one(&one(&response, 2), 1), 1),
            "#/definitions/ConfigMap"
        );
        let extension = one(&patch, 13);
        assert_eq!(text(&extension, 1), "x-kubernetes-group-version-kind");
        let yaml: Value = serde_yaml_ng::from_str(&text(&one(&extension, 2), 2)).unwrap();
        assert_eq!(
            yaml,
            json!({"group": "", "kind": "ConfigMap", "version": "v1"})
        );

        let definition = one(&one(&bytes, 9), 1);
        assert_eq!(text(&definition, 1), "ConfigMap");
        let config_map = one(&definition, 2);
        assert_eq!(text(&config_map, 4), "ConfigMap holds configuration data.");
        assert_eq!(text(&config_map, 19), "data");
        assert_eq!(text(&one(&config_map, 22), 1), "object");
        let gvk = one(&config_map, 31);
        let yaml: Value = serde_yaml_ng::from_str(&text(&one(&gvk, 2), 2)).unwrap();
        assert_eq!(
            yaml,
            json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
        );

        let properties: BTreeMap<String, Vec<u8>> = all(&one(&config_map, 25), 1)
            .iter()
            .map(|named| (text(named, 1), one(named, 2)))
            .collect();
        let data = &properties["data"];
        assert_eq!(text(&one(&one(&one(data, 21), 1), 22), 1), "string");
        let metadata = &properties["metadata"];
        assert_eq!(
            (text(metadata, 1), text(metadata, 4)),
            (
                "#/definitions/ObjectMeta".into(),
                "Standard metadata.".into()
            )
        );
        let list = &properties["list"];
        let item = one(&one(list, 23), 1);
        assert_eq!(
            (text(&item, 2), text(&one(&item, 22), 1)),
            ("int32".into(), "integer".into())
        );
        let enum_value: Value = serde_yaml_ng::from_str(&text(&one(list, 20), 2)).unwrap();
        assert_eq!(enum_value, json!([1]));
        assert_eq!(decode(&one(&properties["open"], 21)), [Field::Varint(2, 0)]);
    }
}
