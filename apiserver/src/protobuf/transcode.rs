//! One protobuf message → its upstream JSON form, driven by the generated schema.

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{schema, Field, FieldType, Label, Scalar, Shape};
use super::wire::{packed_fixed64, packed_varints, Fields, WireValue};
use super::{shapes, DecodeError};

/// Nesting beyond this is rejected rather than risking the stack; real objects stay far below
/// (serde_json refuses JSON bodies nested deeper than 128).
pub(super) const MAX_DEPTH: usize = 100;

/// Decodes `data` as the message `name` into a JSON object.
pub(super) fn object(
    name: &str,
    data: &[u8],
    depth: usize,
) -> Result<Map<String, Value>, DecodeError> {
    let mut out = Map::new();
    merge(name, data, &mut out, depth)?;
    Ok(out)
}

/// Decodes `data` as the message `name` into `out`: a field seen again replaces a scalar,
/// merges into a message and appends to a list, as protobuf (and gogo) do.
fn merge(
    name: &str,
    data: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep(MAX_DEPTH));
    }
    let message = schema()
        .message(name)
        .ok_or_else(|| DecodeError::Invalid(format!("no schema for protobuf message {name}")))?;
    for field in Fields::new(data) {
        let (number, value) = field?;
        // Tags this (1.33) schema does not know are skipped, like upstream skips unknown fields.
        if let Some(field) = u32::try_from(number).ok().and_then(|n| message.get(n)) {
            merge_field(field, value, out, depth)?;
        }
    }
    Ok(())
}

fn merge_field(
    field: &Field,
    value: WireValue,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    match (&field.label, &field.ty) {
        (Label::Singular, FieldType::Scalar(scalar)) => set_scalar(field, *scalar, value, out),
        (Label::Singular, FieldType::Message(name)) => set_message(field, name, value, out, depth),
        (Label::Repeated, _) => {
            let mut list = take_list(out, &field.json_name);
            push_repeated(field, value, &mut list, depth)?;
            // An empty packed run adds nothing; upstream omits empty lists.
            if !list.is_empty() {
                out.insert(field.json_name.clone(), Value::Array(list));
            }
            Ok(())
        }
        (Label::Map, _) => {
            let mut map = take_object(out, &field.json_name);
            insert_entry(field, value, &mut map, depth)?;
            out.insert(field.json_name.clone(), Value::Object(map));
            Ok(())
        }
        (Label::Inline, FieldType::Message(name)) => {
            merge(name, bytes(field, value)?, out, depth + 1)
        }
        (Label::Inline, FieldType::Scalar(_)) => Err(wrong_wire_type(field, &value)),
    }
}

/// Go encodes non-pointer strings even when empty; upstream JSON omits them, and so do we.
fn set_scalar(
    field: &Field,
    scalar: Scalar,
    value: WireValue,
    out: &mut Map<String, Value>,
) -> Result<(), DecodeError> {
    match scalar_value(field, scalar, value)? {
        Value::String(s) if s.is_empty() => out.remove(&field.json_name),
        value => out.insert(field.json_name.clone(), value),
    };
    Ok(())
}

fn set_message(
    field: &Field,
    name: &str,
    value: WireValue,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    let data = bytes(field, value)?;
    if let Some(shape) = schema().shape(name) {
        match shaped(name, shape, data, depth + 1)? {
            Some(value) => out.insert(field.json_name.clone(), value),
            None => out.remove(&field.json_name),
        };
        return Ok(());
    }
    let mut object = take_object(out, &field.json_name);
    merge(name, data, &mut object, depth + 1)?;
    out.insert(field.json_name.clone(), Value::Object(object));
    Ok(())
}

fn push_repeated(
    field: &Field,
    value: WireValue,
    list: &mut Vec<Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    match (&field.ty, value) {
        (FieldType::Message(name), value) => {
            list.push(message_value(name, bytes(field, value)?, depth + 1)?)
        }
        (
            FieldType::Scalar(scalar @ (Scalar::Int32 | Scalar::Int64 | Scalar::Bool)),
            WireValue::Bytes(packed),
        ) => {
            for element in packed_varints(packed) {
                list.push(scalar_value(field, *scalar, WireValue::Varint(element?))?);
            }
        }
        (FieldType::Scalar(Scalar::Double), WireValue::Bytes(packed)) => {
            for element in packed_fixed64(packed) {
                list.push(scalar_value(
                    field,
                    Scalar::Double,
                    WireValue::Fixed64(element?),
                )?);
            }
        }
        (FieldType::Scalar(scalar), value) => list.push(scalar_value(field, *scalar, value)?),
    }
    Ok(())
}

/// A map entry is a message with the key as field 1 and the value as field 2; either may be
/// missing, meaning its zero value.
fn insert_entry(
    field: &Field,
    value: WireValue,
    map: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    let (mut key, mut entry_value) = (String::new(), None);
    for entry_field in Fields::new(bytes(field, value)?) {
        match entry_field? {
            (1, WireValue::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (1, other) => return Err(wrong_wire_type(field, &other)),
            (2, v) => entry_value = Some(v),
            _ => {}
        }
    }
    let value = match (&field.ty, entry_value) {
        (FieldType::Scalar(scalar), Some(v)) => scalar_value(field, *scalar, v)?,
        (FieldType::Scalar(scalar), None) => zero_value(*scalar),
        (FieldType::Message(name), v) => {
            let data = v.map(|v| bytes(field, v)).transpose()?.unwrap_or_default();
            message_value(name, data, depth + 1)?
        }
    };
    map.insert(key, value);
    Ok(())
}

/// A message in a list or map, where an absent shaped value (zero Time, empty raw JSON)
/// stays in place as null.
fn message_value(name: &str, data: &[u8], depth: usize) -> Result<Value, DecodeError> {
    match schema().shape(name) {
        Some(shape) => Ok(shaped(name, shape, data, depth)?.unwrap_or(Value::Null)),
        None => Ok(Value::Object(object(name, data, depth)?)),
    }
}

fn scalar_value(field: &Field, scalar: Scalar, value: WireValue) -> Result<Value, DecodeError> {
    Ok(match (scalar, value) {
        (Scalar::String, WireValue::Bytes(b)) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        (Scalar::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // Go's int32(v) and int64(v) of the varint: truncation, as gogo does.
        (Scalar::Int32, WireValue::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Double, WireValue::Fixed64(v)) => Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .ok_or_else(|| {
                DecodeError::Invalid(format!(
                    "json: unsupported value for field {}",
                    field.json_name
                ))
            })?,
        (_, value) => return Err(wrong_wire_type(field, &value)),
    })
}

fn zero_value(scalar: Scalar) -> Value {
    match scalar {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Int32 | Scalar::Int64 => Value::from(0),
        Scalar::Bool => Value::Bool(false),
        Scalar::Double => Value::from(0.0),
    }
}

/// The JSON of a shaped message; `None` where upstream writes `null` for a field (zero Time,
/// empty RawExtension), which the caller omits.
fn shaped(
    name: &str,
    shape: Shape,
    data: &[u8],
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    Ok(match shape {
        Shape::Time => shapes::time(data)?,
        Shape::MicroTime => shapes::micro_time(data)?,
        Shape::Quantity => Some(shapes::quantity(data)?),
        Shape::IntOrString => Some(shapes::int_or_string(data)?),
        Shape::RawJson => shapes::raw_json(data)?,
        Shape::Items => Some(shapes::items(object(name, data, depth)?)),
        Shape::SchemaOrArray => shapes::schema_or_array(object(name, data, depth)?),
        Shape::SchemaOrBool => Some(shapes::schema_or_bool(object(name, data, depth)?)),
        Shape::SchemaOrStringArray => shapes::schema_or_string_array(object(name, data, depth)?),
    })
}

fn bytes<'a>(field: &Field, value: WireValue<'a>) -> Result<&'a [u8], DecodeError> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(wrong_wire_type(field, &other)),
    }
}

/// Removes the object at `key` for the caller to extend and put back.
fn take_object(out: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match out.remove(key) {
        Some(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

/// Removes the list at `key` for the caller to extend and put back.
fn take_list(out: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match out.remove(key) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    }
}

fn wrong_wire_type(field: &Field, value: &WireValue) -> DecodeError {
    DecodeError::Malformed(format!(
        "proto: wrong wireType = {} for field {}",
        value.wire_type(),
        field.json_name
    ))
}
