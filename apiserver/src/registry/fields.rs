//! Field validation (`?fieldValidation=`): finding fields of a request body that the typed
//! object does not have (they would be silently dropped) and fields given twice.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Paths present (and non-null) in `input` that decoding into the typed object dropped.
pub fn unknown(input: &Value, decoded: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(input, decoded, String::new(), &mut found);
    found
}

fn walk(input: &Value, decoded: &Value, path: String, found: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(input), Value::Object(decoded)) => {
            for (key, value) in input {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match decoded.get(key) {
                    Some(kept) => walk(value, kept, child, found),
                    None if !value.is_null() => found.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(input), Value::Array(decoded)) => {
            for (i, (value, kept)) in input.iter().zip(decoded).enumerate() {
                walk(value, kept, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Paths of keys given more than once in a JSON document (serde keeps the last silently).
pub fn duplicates(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let _ = Walker {
        path: String::new(),
        found: &mut found,
    }
    .deserialize(&mut deserializer);
    found
}

struct Walker<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walker<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                self.found.push(child.clone());
            }
            map.next_value_seed(Walker {
                path: child,
                found: self.found,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Walker {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
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
    use serde_json::json;

    #[test]
    fn dropped_fields_are_reported_with_paths() {
        let input = json!({"spec": {"containers": [{"name": "a", "imagee": "x"}], "bogus": 1, "nothing": null}});
        let decoded = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            unknown(&input, &decoded),
            ["spec.bogus", "spec.containers[0].imagee"]
        );
    }

    #[test]
    fn repeated_keys_are_reported() {
        let body = br#"{"metadata":{"name":"a","name":"b"},"items":[{"x":1,"x":2}]}"#;
        assert_eq!(duplicates(body), ["metadata.name", "items[0].x"]);
    }
}
