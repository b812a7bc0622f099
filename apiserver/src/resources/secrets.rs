//! Secrets: typed key/value data (`Opaque` unless said otherwise), with the keys each
//! well-known type requires, optionally immutable.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::validation;
use crate::registry::{Description, Strategy};

pub struct Secrets;

/// Upstream's limit on the total size of a Secret's data.
const MAX_SIZE: usize = 1024 * 1024;

impl Strategy for Secrets {
    type Object = Secret;

    fn describe(&self) -> Description {
        Description {
            field_selectors: &["type"],
            ..Description::default()
        }
    }

    /// `SetDefaults_Secret`, and the v1 conversion that writes `stringData` into `data`
    /// (stringData wins) so only `data` is ever stored.
    fn default_fields(&self, secret: &mut Secret) {
        if secret.type_.as_deref().unwrap_or("").is_empty() {
            secret.type_ = Some("Opaque".into());
        }
        if let Some(strings) = secret.string_data.take() {
            let data = secret.data.get_or_insert_with(Default::default);
            for (key, value) in strings {
                data.insert(key, ByteString(value.into_bytes()));
            }
        }
    }

    fn validate(&self, secret: &Secret) -> Vec<Cause> {
        let mut causes = Vec::new();
        let empty = Default::default();
        let data = secret.data.as_ref().unwrap_or(&empty);
        let mut size = 0;
        for (key, value) in data {
            causes.extend(validation::config_key(key, "data"));
            size += value.0.len();
        }
        if size > MAX_SIZE {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "data".into(),
                message: format!("Too long: may not be more than {MAX_SIZE} bytes"),
            });
        }
        let key = |name: &str| format!("data[{name}]");
        match secret.type_.as_deref().unwrap_or("") {
            "kubernetes.io/service-account-token" => {
                let annotation = "kubernetes.io/service-account.name";
                let annotations = secret.metadata.annotations.as_ref();
                if annotations
                    .and_then(|a| a.get(annotation))
                    .is_none_or(|v| v.is_empty())
                {
                    causes.push(Cause::required(format!(
                        "metadata.annotations[{annotation}]"
                    )));
                }
            }
            kind @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
                let name = if kind == "kubernetes.io/dockercfg" {
                    ".dockercfg"
                } else {
                    ".dockerconfigjson"
                };
                match data.get(name) {
                    None => causes.push(Cause::required(key(name))),
                    Some(bytes) => {
                        if let Err(error) =
                            serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes.0)
                        {
                            causes.push(Cause::invalid(
                                key(name),
                                &Value::from("<secret contents redacted>"),
                                error.to_string(),
                            ));
                        }
                    }
                }
            }
            "kubernetes.io/basic-auth"
                if !data.contains_key("username") && !data.contains_key("password") =>
            {
                causes.push(Cause::required(key("username")));
                causes.push(Cause::required(key("password")));
            }
            "kubernetes.io/ssh-auth"
                if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) =>
            {
                causes.push(Cause::required(key("ssh-privatekey")));
            }
            "kubernetes.io/tls" => {
                for name in ["tls.crt", "tls.key"] {
                    if !data.contains_key(name) {
                        causes.push(Cause::required(key(name)));
                    }
                }
            }
            _ => {}
        }
        causes
    }

    /// Upstream's `ValidateSecretUpdate`: the type never changes, and an immutable secret
    /// keeps its data and stays immutable.
    fn validate_update(&self, new: &Secret, old: &Secret) -> Vec<Cause> {
        let mut causes = Vec::new();
        if new.type_ != old.type_ {
            causes.push(Cause::invalid(
                "type",
                &Value::from(new.type_.clone().unwrap_or_default()),
                "field is immutable",
            ));
        }
        if old.immutable == Some(true) {
            if new.immutable != Some(true) {
                causes.push(Cause::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            if new.data != old.data {
                causes.push(Cause::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        causes.extend(self.validate(new));
        causes
    }

    fn fields(&self, secret: &Secret) -> Vec<(&'static str, String)> {
        vec![("type", secret.type_.clone().unwrap_or_default())]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
            Column::new("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
            Column::age(),
        ]
    }

    fn cells(&self, secret: &Secret) -> Vec<Cell> {
        vec![
            Cell::from(secret.metadata.name.clone().unwrap_or_default()),
            Cell::from(secret.type_.clone().unwrap_or_default()),
            Cell::from(secret.data.as_ref().map_or(0, |d| d.len())),
            age(&secret.metadata),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn secret(value: Value) -> Secret {
        let mut secret: Secret = serde_json::from_value(value).unwrap();
        Secrets.default_fields(&mut secret);
        secret
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn string_data_lands_in_data_of_an_opaque_secret() {
        let secret =
            secret(json!({"data": {"a": "eA=="}, "stringData": {"a": "override", "b": "plain"}}));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert!(secret.string_data.is_none());
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data["a"].0, b"override");
        assert_eq!(data["b"].0, b"plain");
        assert_eq!(
            rendered(&Secrets.cells(&secret), jiff::Timestamp::now())[2],
            2
        );
    }

    #[test]
    fn typed_secrets_need_their_keys() {
        let tls = secret(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}}));
        assert_eq!(
            lines(&Secrets.validate(&tls)),
            ["data[tls.key]: Required value"]
        );
        let bad_key = secret(json!({"stringData": {"bad key": "x"}}));
        assert!(lines(&Secrets.validate(&bad_key))[0]
            .starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key"));
    }

    #[test]
    fn type_and_immutable_data_stay() {
        let old = secret(json!({"immutable": true, "stringData": {"a": "1"}}));
        let new = secret(json!({"type": "kubernetes.io/basic-auth", "stringData": {"a": "2"}}));
        assert_eq!(
            lines(&Secrets.validate_update(&new, &old)),
            [
                "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable",
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
                "data[username]: Required value",
                "data[password]: Required value",
            ]
        );
    }
}
