//! YAML as upstream reads and writes it: request bodies become JSON documents (merge keys
//! `<<:` applied, as Go's YAML decoder does), and JSON responses become YAML.

use serde_json::Value;

/// Decodes a YAML document into JSON, applying merge keys.
pub fn to_json(body: &[u8]) -> Result<Value, serde_yaml_ng::Error> {
    let mut document: serde_yaml_ng::Value = serde_yaml_ng::from_slice(body)?;
    document.apply_merge()?;
    serde_yaml_ng::from_value(document)
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
    fn json_round_trips() {
        let value = json!({"a": [1, "two", null], "b": {"c": true}});
        assert_eq!(
            to_json(from_json(&value).unwrap().as_bytes()).unwrap(),
            value
        );
    }
}
