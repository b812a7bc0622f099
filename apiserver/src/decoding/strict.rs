//! Field validation's findings in upstream's order: its strict JSON decoder reports unknown and
//! duplicate fields as it meets them, so one walk over the body's bytes lists both in
//! document order.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One finding of field validation, worded as upstream's strict decoder words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Unknown(String),
    Duplicate(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Problem::Unknown(path) => write!(f, "unknown field \"{path}\""),
            Problem::Duplicate(path) => write!(f, "duplicate field \"{path}\""),
        }
    }
}

/// Paths present (and non-null) in `input` that decoding into the typed object dropped.
pub fn unknown(input: &Value, decoded: &Value) -> Vec<String> {
    let mut found = Vec::new();
    dropped(input, decoded, String::new(), &mut found);
    found
}

fn dropped(input: &Value, decoded: &Value, path: String, found: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(input), Value::Object(decoded)) => {
            for (key, value) in input {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match decoded.get(key) {
                    Some(kept) => dropped(value, kept, child, found),
                    None if !value.is_null() => found.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(input), Value::Array(decoded)) => {
            for (i, (value, kept)) in input.iter().zip(decoded).enumerate() {
                dropped(value, kept, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The `unknown` paths and every repeated key of the JSON `body`, in the order they appear.
/// Unknown fields are not looked into, as upstream skips their values. Unknown paths the walk
/// does not meet (none, for a body that decoded) follow at the end.
pub fn in_document_order(body: &[u8], unknown: &[String]) -> Vec<Problem> {
    let pending: HashSet<&str> = unknown.iter().map(String::as_str).collect();
    let mut walk = Walk {
        path: String::new(),
        unknown: pending,
        found: Vec::new(),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // A body that does not parse was refused before; what was found so far is all there is.
    let _ = (&mut walk).deserialize(&mut deserializer);
    let Walk {
        unknown: left,
        mut found,
        ..
    } = walk;
    found.extend(
        unknown
            .iter()
            .filter(|path| left.contains(path.as_str()))
            .map(|path| Problem::Unknown(path.clone())),
    );
    found
}

/// The walk's state; `path` grows and shrinks as it descends, so keys cost no allocation.
struct Walk<'u> {
    path: String,
    unknown: HashSet<&'u str>,
    found: Vec<Problem>,
}

impl<'de> DeserializeSeed<'de> for &mut Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<String> = Vec::new();
        let parent = self.path.len();
        while let Some(key) = map.next_key::<String>()? {
            if parent > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            if seen.contains(&key) {
                self.found.push(Problem::Duplicate(self.path.clone()));
            } else {
                seen.push(key);
            }
            if self.unknown.remove(self.path.as_str()) {
                self.found.push(Problem::Unknown(self.path.clone()));
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value_seed(&mut *self)?;
            }
            self.path.truncate(parent);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let parent = self.path.len();
        let mut i = 0;
        loop {
            self.path.push_str(&format!("[{i}]"));
            let more = seq.next_element_seed(&mut *self)?.is_some();
            self.path.truncate(parent);
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(problems: Vec<Problem>) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn dropped_fields_are_reported_with_paths() {
        let input = serde_json::json!({"spec": {"containers": [{"name": "a", "imagee": "x"}], "bogus": 1, "nothing": null}});
        let decoded = serde_json::json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            unknown(&input, &decoded),
            ["spec.bogus", "spec.containers[0].imagee"]
        );
    }

    #[test]
    fn unknown_and_duplicate_fields_in_document_order() {
        let body = br#"{"spec":{"replicas":1,"foo":{"a":1,"a":2},"replicas":2,"template":{"metadata":{"foo":1}}},"metadata":{"name":"a","name":"b"}}"#;
        let unknown = [
            "metadata.zzz".to_owned(),
            "spec.foo".to_owned(),
            "spec.template.metadata.foo".to_owned(),
        ];
        assert_eq!(
            words(in_document_order(body, &unknown)),
            [
                r#"unknown field "spec.foo""#,
                r#"duplicate field "spec.replicas""#,
                r#"unknown field "spec.template.metadata.foo""#,
                r#"duplicate field "metadata.name""#,
                r#"unknown field "metadata.zzz""#,
            ]
        );
    }

    #[test]
    fn list_items_have_indexed_paths() {
        let body = br#"{"items":[{"x":1},{"x":1,"x":2}]}"#;
        assert_eq!(
            words(in_document_order(body, &[])),
            [r#"duplicate field "items[1].x""#]
        );
    }
}
