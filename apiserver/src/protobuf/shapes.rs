//! Messages whose upstream JSON is not one key per field, each as its Go type marshals it.

use serde_json::{Map, Value};

use super::wire::{Fields, WireValue};
use super::DecodeError;

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: Go's `Time.MarshalJSON` refuses other years.
const SECONDS_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// metav1.Time {seconds = 1, nanos = 2}: RFC 3339 in UTC, whole seconds (upstream's unmarshal
/// drops the nanos). An empty message is the zero time, which upstream writes as null.
pub(super) fn time(data: &[u8]) -> Result<Option<Value>, DecodeError> {
    let Some((seconds, _)) = timestamp(data, "Time")? else {
        return Ok(None);
    };
    Ok(Some(Value::String(format!(
        "{}Z",
        rfc3339_seconds(seconds)?
    ))))
}

/// metav1.MicroTime {seconds = 1, nanos = 2}: RFC 3339 in UTC with six fractional digits.
pub(super) fn micro_time(data: &[u8]) -> Result<Option<Value>, DecodeError> {
    let Some((seconds, nanos)) = timestamp(data, "MicroTime")? else {
        return Ok(None);
    };
    // Go's time.Unix normalizes nanos outside [0, 1e9) into the seconds.
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let seconds =
        i64::try_from(total.div_euclid(1_000_000_000)).map_err(|_| year_out_of_range())?;
    let micros = total.rem_euclid(1_000_000_000) / 1_000;
    Ok(Some(Value::String(format!(
        "{}.{micros:06}Z",
        rfc3339_seconds(seconds)?
    ))))
}

/// resource.Quantity {string = 1}: the string; a missing one is the zero quantity, "0".
pub(super) fn quantity(data: &[u8]) -> Result<Value, DecodeError> {
    let mut quantity = String::from("0");
    for field in Fields::new(data) {
        match field? {
            (1, WireValue::Bytes(s)) => quantity = String::from_utf8_lossy(s).into_owned(),
            (1, other) => return Err(wrong_wire_type("Quantity.string", &other)),
            _ => {}
        }
    }
    Ok(Value::String(quantity))
}

/// intstr.IntOrString {type = 1 (0 int, 1 string), intVal = 2, strVal = 3}.
pub(super) fn int_or_string(data: &[u8]) -> Result<Value, DecodeError> {
    let (mut kind, mut int_val, mut str_val) = (0i64, 0i32, String::new());
    for field in Fields::new(data) {
        match field? {
            (1, WireValue::Varint(v)) => kind = v as i64,
            (2, WireValue::Varint(v)) => int_val = v as i32,
            (3, WireValue::Bytes(s)) => str_val = String::from_utf8_lossy(s).into_owned(),
            (number @ 1..=3, other) => {
                return Err(wrong_wire_type(
                    &format!("IntOrString field {number}"),
                    &other,
                ))
            }
            _ => {}
        }
    }
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        _ => Err(DecodeError::Invalid(format!(
            "impossible IntOrString.Type {kind}"
        ))),
    }
}

/// RawExtension, FieldsV1 and apiextensions JSON {raw = 1}: the JSON they carry; none is null.
pub(super) fn raw_json(data: &[u8]) -> Result<Option<Value>, DecodeError> {
    let mut raw: &[u8] = &[];
    for field in Fields::new(data) {
        match field? {
            (1, WireValue::Bytes(bytes)) => raw = bytes,
            (1, other) => return Err(wrong_wire_type("raw", &other)),
            _ => {}
        }
    }
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(raw).map(Some).map_err(|error| {
        DecodeError::Invalid(format!("embedded object is not valid JSON: {error}"))
    })
}

/// A Go named slice wrapped as `{items = 1}`: the array; a nil slice in a map value becomes []
/// rather than null, which typed clients refuse.
pub(super) fn items(mut fields: Map<String, Value>) -> Value {
    fields.remove("items").unwrap_or(Value::Array(Vec::new()))
}

/// JSONSchemaPropsOrArray {schema = 1, jSONSchemas = 2}: the array if non-empty, else the schema.
pub(super) fn schema_or_array(mut fields: Map<String, Value>) -> Option<Value> {
    non_empty(fields.remove("jSONSchemas")).or_else(|| fields.remove("schema"))
}

/// JSONSchemaPropsOrBool {allows = 1, schema = 2}: the schema if any, else the bool.
pub(super) fn schema_or_bool(mut fields: Map<String, Value>) -> Value {
    let allows = fields.remove("allows") == Some(Value::Bool(true));
    fields.remove("schema").unwrap_or(Value::Bool(allows))
}

/// JSONSchemaPropsOrStringArray {schema = 1, property = 2}: the strings if any, else the schema.
pub(super) fn schema_or_string_array(mut fields: Map<String, Value>) -> Option<Value> {
    non_empty(fields.remove("property")).or_else(|| fields.remove("schema"))
}

fn non_empty(list: Option<Value>) -> Option<Value> {
    list.filter(|value| value.as_array().is_some_and(|items| !items.is_empty()))
}

/// {seconds = 1, nanos = 2}, or None for the empty message.
fn timestamp(data: &[u8], type_name: &str) -> Result<Option<(i64, i32)>, DecodeError> {
    if data.is_empty() {
        return Ok(None);
    }
    let (mut seconds, mut nanos) = (0i64, 0i32);
    for field in Fields::new(data) {
        match field? {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = v as i32,
            (number @ (1 | 2), other) => {
                return Err(wrong_wire_type(
                    &format!("{type_name} field {number}"),
                    &other,
                ));
            }
            _ => {}
        }
    }
    Ok(Some((seconds, nanos)))
}

/// `2006-01-02T15:04:05`, without the zone.
fn rfc3339_seconds(seconds: i64) -> Result<String, DecodeError> {
    if !SECONDS_RANGE.contains(&seconds) {
        return Err(year_out_of_range());
    }
    // Civil time, not jiff::Timestamp: its range stops a day short of 9999-12-31.
    let epoch = jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0);
    let utc = epoch
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .map_err(|_| year_out_of_range())?;
    Ok(utc.strftime("%Y-%m-%dT%H:%M:%S").to_string())
}

fn year_out_of_range() -> DecodeError {
    DecodeError::Invalid("Time.MarshalJSON: year outside of range [0,9999]".into())
}

fn wrong_wire_type(field: &str, value: &WireValue) -> DecodeError {
    DecodeError::Malformed(format!(
        "proto: wrong wireType = {} for field {field}",
        value.wire_type()
    ))
}
