//! YAML as upstream reads and writes it: request bodies become JSON documents (merge keys
//! `<<:` applied, as Go's YAML decoder does), and JSON responses become YAML.

use serde_json::Value;

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
        let mut document: serde_yaml_ng::Value = serde_yaml_ng::from_str(&rewritten)?;
        // Only when every rewrite landed on a tag (none inside a string) is the rewritten
        // document the client's; otherwise its text is kept as sent.
        if count_binary(&document) == tagged {
            decode_binary(&mut document)?;
            return finish(document);
        }
    }
    finish(serde_yaml_ng::from_slice(body)?)
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
    fn json_round_trips() {
        let value = json!({"a": [1, "two", null], "b": {"c": true}});
        assert_eq!(
            to_json(from_json(&value).unwrap().as_bytes()).unwrap(),
            value
        );
    }
}
