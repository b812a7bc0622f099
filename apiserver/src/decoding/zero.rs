//! Go's zero values, both ways: a request body is brought to the form Go would decode it into
//! (absent and zero are the same for a field held by value), and an object is written as Go's
//! `encoding/json` writes it.

use serde_json::{Map, Value};

use super::types::{Field, GoTypes, Shape, Ty};

/// The zero metav1.Time, as k8s-openapi reads and writes it.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The zero metav1.MicroTime, as k8s-openapi reads and writes it.
const ZERO_MICRO_TIME: &str = "0001-01-01T00:00:00.000000Z";

/// Brings a decoded request body to what Go's decoder would hold: zero values Go drops on
/// output (`omitempty` scalars held by value, empty lists and maps, zero times) are removed, and
/// fields k8s-openapi cannot do without (`lastTransitionTime` of a metav1.Condition) get their
/// zero value when absent or null, leaving "required" to validation. Returns whether the body
/// has keys the Go types do not know, which field validation then looks at closely.
pub(super) fn canonical(types: &GoTypes, fields: usize, object: &mut Map<String, Value>) -> bool {
    let mut unknown = false;
    canonical_object(types, fields, object, &mut unknown);
    unknown
}

fn canonical_object(
    types: &GoTypes,
    fields: usize,
    object: &mut Map<String, Value>,
    unknown: &mut bool,
) {
    let go = &types.structs[fields];
    object.retain(|key, value| match go.get(key) {
        None => {
            *unknown |= !value.is_null();
            true
        }
        Some(field) => canonical_field(types, field, value, unknown),
    });
    for (name, field) in go {
        if field.required && !object.contains_key(name) {
            object.insert(name.clone(), required_zero(field.ty));
        }
    }
}

/// Whether the field stays in the body.
fn canonical_field(types: &GoTypes, field: &Field, value: &mut Value, unknown: &mut bool) -> bool {
    if value.is_null() {
        if field.required {
            *value = required_zero(field.ty);
        }
        return field.required;
    }
    match field.shape {
        Shape::List => {
            let Value::Array(items) = value else {
                return true;
            };
            if items.is_empty() {
                return !field.omitempty;
            }
            if let Ty::Struct(inner) = field.ty {
                for item in items.iter_mut() {
                    if let Value::Object(item) = item {
                        canonical_object(types, inner, item, unknown);
                    }
                }
            }
            true
        }
        Shape::Map => {
            let Value::Object(entries) = value else {
                return true;
            };
            if entries.is_empty() {
                return !field.omitempty;
            }
            if let Ty::Struct(inner) = field.ty {
                for entry in entries.values_mut() {
                    if let Value::Object(entry) = entry {
                        canonical_object(types, inner, entry, unknown);
                    }
                }
            }
            true
        }
        Shape::One => match (field.ty, value) {
            (Ty::Struct(inner), Value::Object(object)) => {
                canonical_object(types, inner, object, unknown);
                true
            }
            (Ty::Time | Ty::MicroTime, Value::String(s)) => field.required || !is_zero_time(s),
            (_, value) => field.pointer || !field.omitempty || !is_zero_scalar(field.ty, value),
        },
    }
}

/// The zero value k8s-openapi accepts for a field it requires.
fn required_zero(ty: Ty) -> Value {
    match ty {
        Ty::Time => Value::from(ZERO_TIME),
        Ty::MicroTime => Value::from(ZERO_MICRO_TIME),
        Ty::Struct(_) => Value::Object(Map::new()),
        Ty::Int | Ty::IntOrString => Value::from(0),
        Ty::Bool => Value::Bool(false),
        Ty::Quantity => Value::from("0"),
        Ty::String | Ty::Bytes | Ty::Raw => Value::from(""),
    }
}

/// Writes an object as Go's `encoding/json` writes the Go struct holding it: `omitempty` drops
/// zero scalars held by value and empty lists and maps; structs held by value are always
/// written (`resources: {}`, `status: {}`), a zero time as `null` (`creationTimestamp: null`),
/// and fields without `omitempty` always, nil ones as `null`. Fields the Go types do not know
/// are left alone.
pub(super) fn go_encode(types: &GoTypes, fields: usize, object: &mut Map<String, Value>) {
    let mut dropped = Vec::new();
    for (name, field) in &types.structs[fields] {
        match object.get_mut(name) {
            Some(value) => {
                if !encode_field(types, field, value) {
                    dropped.push(name);
                }
            }
            None => {
                if let Some(zero) = absent(types, field) {
                    object.insert(name.clone(), zero);
                }
            }
        }
    }
    for name in dropped {
        object.remove(name);
    }
}

/// Whether the field is written.
fn encode_field(types: &GoTypes, field: &Field, value: &mut Value) -> bool {
    if value.is_null() {
        return match absent(types, field) {
            Some(zero) => {
                *value = zero;
                true
            }
            None => false,
        };
    }
    match field.shape {
        Shape::List => {
            let Value::Array(items) = value else {
                return true;
            };
            if items.is_empty() {
                return !field.omitempty;
            }
            if let Ty::Struct(inner) = field.ty {
                for item in items.iter_mut() {
                    if let Value::Object(item) = item {
                        go_encode(types, inner, item);
                    }
                }
            }
            true
        }
        Shape::Map => {
            let Value::Object(entries) = value else {
                return true;
            };
            if entries.is_empty() {
                return !field.omitempty;
            }
            if let Ty::Struct(inner) = field.ty {
                for entry in entries.values_mut() {
                    if let Value::Object(entry) = entry {
                        go_encode(types, inner, entry);
                    }
                }
            }
            true
        }
        Shape::One => match (field.ty, &mut *value) {
            (Ty::Struct(inner), Value::Object(object)) => {
                go_encode(types, inner, object);
                true
            }
            (Ty::Time | Ty::MicroTime, Value::String(s)) => {
                if is_zero_time(s) {
                    *value = Value::Null;
                }
                true
            }
            (ty, value) => field.pointer || !field.omitempty || !is_zero_scalar(ty, value),
        },
    }
}

/// What Go writes for a field holding its zero value, if anything.
fn absent(types: &GoTypes, field: &Field) -> Option<Value> {
    if !field.by_value() {
        return (!field.omitempty).then_some(Value::Null);
    }
    match field.ty {
        Ty::Struct(inner) => {
            let mut object = Map::new();
            go_encode(types, inner, &mut object);
            Some(Value::Object(object))
        }
        Ty::Time | Ty::MicroTime | Ty::Raw => Some(Value::Null),
        Ty::Quantity => Some(Value::from("0")),
        Ty::IntOrString => Some(Value::from(0)),
        _ if field.omitempty => None,
        Ty::String | Ty::Bytes => Some(Value::from("")),
        Ty::Int => Some(Value::from(0)),
        Ty::Bool => Some(Value::Bool(false)),
    }
}

/// Whether a scalar is its type's zero value, which `omitempty` leaves out.
fn is_zero_scalar(ty: Ty, value: &Value) -> bool {
    match (ty, value) {
        (Ty::String | Ty::Bytes, Value::String(s)) => s.is_empty(),
        (Ty::Int, Value::Number(n)) => n.as_f64() == Some(0.0),
        (Ty::Bool, Value::Bool(b)) => !b,
        _ => false,
    }
}

/// The zero time in any precision k8s-openapi or a client writes it.
fn is_zero_time(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("0001-01-01T00:00:00") else {
        return false;
    };
    let rest = rest.strip_suffix('Z').unwrap_or(rest);
    let rest = rest.strip_suffix("+00:00").unwrap_or(rest);
    rest.strip_prefix('.')
        .map_or(rest.is_empty(), |digits| digits.bytes().all(|b| b == b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_times_in_every_precision() {
        for zero in [ZERO_TIME, ZERO_MICRO_TIME, "0001-01-01T00:00:00+00:00"] {
            assert!(is_zero_time(zero), "{zero}");
        }
        for other in ["0001-01-01T00:00:01Z", "2024-01-01T00:00:00Z", ""] {
            assert!(!is_zero_time(other), "{other}");
        }
    }
}
