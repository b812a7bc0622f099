//! YAML as upstream reads and writes it: request bodies become JSON documents (merge keys
//! `<<:` applied and the last of repeated keys kept, as Go's YAML decoder does; strict field
//! validation reports the repeats as Go's strict decoder words them), and JSON responses become
//! YAML.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::Value;
use serde_yaml_ng::value::{Tag, TaggedValue};
use serde_yaml_ng::{Mapping, Value as Yaml};

/// The standard tag for base64 binary data, which the YAML parser would otherwise read as
/// a plain string.
const BINARY_TAG: &str = "!!binary";

/// The local tag `!!binary` is rewritten to so the parser keeps it on the value.
const LOCAL_BINARY_TAG: &str = "!binary";

/// Why a YAML body could not become a JSON document.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{0}")]
    Syntax(#[from] serde_yaml_ng::Error),
    #[error("!!binary value contains invalid base64 data")]
    Binary,
}

/// Decodes a YAML document into JSON as Go's decoder does: merge keys applied, and
/// `!!binary` values decoded from base64 into (lossy UTF-8) strings.
pub fn to_json(body: &[u8]) -> Result<Value, YamlError> {
    let text = String::from_utf8_lossy(body);
    let tagged = text.matches(BINARY_TAG).count();
    if tagged > 0 {
        let rewritten = text.replace(BINARY_TAG, LOCAL_BINARY_TAG);
        let mut document = lenient(&rewritten, None)?;
        // Only when every rewrite landed on a tag (none inside a string) is the rewritten
        // document the client's; otherwise its text is kept as sent.
        if count_binary(&document) == tagged {
            decode_binary(&mut document)?;
            return finish(document);
        }
    }
    finish(lenient(&text, None)?)
}

/// Go's strict YAML decoder's complaint about repeated keys, which strict field validation
/// reports before the unknown fields: `yaml: unmarshal errors:` then one `line N: key "k"
/// already set in map` per repeat. `None` for a document without repeats (or not YAML).
pub fn duplicate_keys(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let count = Cell::new(0);
    Lenient {
        repeats: &count,
        fail_at: None,
    }
    .deserialize(serde_yaml_ng::Deserializer::from_str(&text))
    .ok()?;
    let lines: Vec<String> = (1..=count.get())
        .filter_map(|n| {
            let error = lenient(&text, Some(n)).err()?;
            let message = error.to_string();
            let (_, repeat) = message.split_once(REPEAT_MARK)?;
            let (key, occurrence) = repeat.split_once('#')?;
            let occurrence: usize = occurrence.split(' ').next()?.parse().ok()?;
            let start = error.location()?;
            let line = repeat_line(&text, start.line(), start.column(), key, occurrence);
            Some(format!("  line {line}: key {key} already set in map"))
        })
        .collect();
    (!lines.is_empty()).then(|| format!("yaml: unmarshal errors:\n{}", lines.join("\n")))
}

/// What the lenient parse fails with at a repeat: the quoted key and its occurrence in the
/// mapping, which [`duplicate_keys`] reads back.
const REPEAT_MARK: &str = "repeated key ";

/// The line of the `occurrence`th `key` of the block mapping starting at `line`, `column`
/// (1-based, as the parser reports a mapping's start); the mapping's own line when the keys
/// are not one per line (a flow mapping).
fn repeat_line(text: &str, line: usize, column: usize, key: &str, occurrence: usize) -> usize {
    let indent = column.saturating_sub(1);
    let plain = serde_json::from_str::<String>(key).unwrap_or_default();
    let mut seen = 0;
    for (i, content) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let trimmed = content.trim_start();
        let depth = content.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') || depth > indent {
            continue;
        }
        if depth < indent {
            break;
        }
        let named = [plain.as_str(), key].iter().any(|k| {
            trimmed
                .strip_prefix(k)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        });
        if named {
            seen += 1;
            if seen == occurrence {
                return i + 1;
            }
        }
    }
    line
}

/// Parses a YAML document keeping the last of repeated keys, or failing at the `fail_at`th
/// repeat, whose error then carries its position.
fn lenient(text: &str, fail_at: Option<usize>) -> Result<Yaml, serde_yaml_ng::Error> {
    let count = Cell::new(0);
    Lenient {
        repeats: &count,
        fail_at,
    }
    .deserialize(serde_yaml_ng::Deserializer::from_str(text))
}

/// A YAML value like serde_yaml_ng's own, but letting a key repeat.
#[derive(Clone, Copy)]
struct Lenient<'a> {
    repeats: &'a Cell<usize>,
    fail_at: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for Lenient<'_> {
    type Value = Yaml;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lenient<'_> {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Yaml, E> {
        Ok(Yaml::Number(i.into()))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Yaml, E> {
        Ok(Yaml::Number(u.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Yaml, E> {
        Ok(Yaml::Number(f.into()))
    }
    fn visit_str<E>(self, s: &str) -> Result<Yaml, E> {
        Ok(Yaml::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Yaml, E> {
        Ok(Yaml::String(s))
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Yaml::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut mapping = Mapping::new();
        let mut repeated: Vec<(Yaml, usize)> = Vec::new();
        while let Some(key) = map.next_key_seed(self)? {
            if mapping.contains_key(&key) {
                self.repeats.set(self.repeats.get() + 1);
                let occurrence = match repeated.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, seen)) => {
                        *seen += 1;
                        *seen
                    }
                    None => {
                        repeated.push((key.clone(), 2));
                        2
                    }
                };
                if Some(self.repeats.get()) == self.fail_at {
                    return Err(serde::de::Error::custom(format_args!(
                        "{REPEAT_MARK}{}#{occurrence}",
                        go_quoted(&key)
                    )));
                }
            }
            let value = map.next_value_seed(self)?;
            mapping.insert(key, value);
        }
        Ok(Yaml::Mapping(mapping))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Yaml, A::Error> {
        let (tag, contents) = data.variant::<String>()?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Yaml::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

/// A key as Go's `%#v` prints it: strings quoted, other scalars bare.
fn go_quoted(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn finish(mut document: serde_yaml_ng::Value) -> Result<Value, YamlError> {
    document.apply_merge()?;
    Ok(serde_yaml_ng::from_value(document)?)
}

fn is_binary(tagged: &serde_yaml_ng::value::TaggedValue) -> bool {
    tagged.tag == serde_yaml_ng::value::Tag::new(LOCAL_BINARY_TAG)
}

fn count_binary(value: &serde_yaml_ng::Value) -> usize {
    use serde_yaml_ng::Value as Yaml;
    match value {
        Yaml::Tagged(tagged) => usize::from(is_binary(tagged)) + count_binary(&tagged.value),
        Yaml::Sequence(items) => items.iter().map(count_binary).sum(),
        Yaml::Mapping(map) => map
            .iter()
            .map(|(k, v)| count_binary(k) + count_binary(v))
            .sum(),
        _ => 0,
    }
}

/// Replaces each `!binary` value by its decoded text; Go's base64 decoder skips line breaks.
fn decode_binary(value: &mut serde_yaml_ng::Value) -> Result<(), YamlError> {
    use base64::Engine;
    use serde_yaml_ng::Value as Yaml;
    match value {
        Yaml::Tagged(tagged) if is_binary(tagged) => {
            let Yaml::String(encoded) = &tagged.value else {
                return Err(YamlError::Binary);
            };
            let compact: String = encoded
                .chars()
                .filter(|c| *c != '\n' && *c != '\r')
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|_| YamlError::Binary)?;
            *value = Yaml::String(String::from_utf8_lossy(&bytes).into_owned());
        }
        Yaml::Tagged(tagged) => decode_binary(&mut tagged.value)?,
        Yaml::Sequence(items) => items.iter_mut().try_for_each(decode_binary)?,
        Yaml::Mapping(map) => map.values_mut().try_for_each(decode_binary)?,
        _ => {}
    }
    Ok(())
}

/// Encodes a JSON value as YAML.
pub fn from_json(value: &Value) -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keys_are_applied() {
        let text =
            b"base: &labels {app: web}\nmetadata:\n  labels:\n    <<: *labels\n    tier: front\n";
        let value = to_json(text).unwrap();
        assert_eq!(
            value["metadata"]["labels"],
            json!({"app": "web", "tier": "front"})
        );
    }

    #[test]
    fn binary_values_are_decoded_and_text_is_left_alone() {
        let value =
            to_json(b"data:\n  a: !!binary aGVsbG8=\n  b: !!binary |\n    d29y\n    bGQ=\n")
                .unwrap();
        assert_eq!(value["data"], json!({"a": "hello", "b": "world"}));
        let text = to_json(b"data:\n  note: \"a !!binary tag\"\n").unwrap();
        assert_eq!(text["data"]["note"], "a !!binary tag");
        assert!(matches!(
            to_json(b"a: !!binary '%%%'\n"),
            Err(YamlError::Binary)
        ));
    }

    #[test]
    fn repeated_keys_keep_the_last_and_are_reported_with_their_lines() {
        let text =
            b"metadata:\n  name: a\n  name: b\nspec:\n  replicas: 1\n  x: 1\n  replicas: 2\n";
        let value = to_json(text).unwrap();
        assert_eq!(
            value,
            json!({"metadata": {"name": "b"}, "spec": {"replicas": 2, "x": 1}})
        );
        assert_eq!(
            duplicate_keys(text).as_deref(),
            Some("yaml: unmarshal errors:\n  line 3: key \"name\" already set in map\n  line 7: key \"replicas\" already set in map")
        );
        assert_eq!(duplicate_keys(b"a: 1\nb: 2\n"), None);
    }

    #[test]
    fn json_round_trips() {
        let value = json!({"a": [1, "two", null], "b": {"c": true}});
        assert_eq!(
            to_json(from_json(&value).unwrap().as_bytes()).unwrap(),
            value
        );
    }
}
