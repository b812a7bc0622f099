//! Checks every resource shares: object metadata (names, labels, annotations), and the name
//! formats strategies reuse for their own fields. Messages are upstream's, so kubectl prints
//! the same explanation a learner would find in the docs.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use super::strategy::NameRule;
use crate::error::Cause;

const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(is_label_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(is_label_char)
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// DNS-1035 label: a DNS-1123 label starting with a letter (service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Name problems for a value checked with `rule`, as upstream words them.
pub fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    let mut errors = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                errors.push("must be no more than 253 characters".to_string());
            }
            if !is_dns1123_subdomain(name) {
                errors.push(SUBDOMAIN_MESSAGE.to_string());
            }
        }
        NameRule::Label => {
            if name.len() > 63 {
                errors.push("must be no more than 63 characters".to_string());
            }
            if !is_dns1123_label(name) {
                errors.push(LABEL_MESSAGE.to_string());
            }
        }
        NameRule::Dns1035Label => {
            if name.len() > 63 {
                errors.push("must be no more than 63 characters".to_string());
            }
            if !is_dns1035_label(name) {
                errors.push(DNS1035_MESSAGE.to_string());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                errors.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    errors.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    errors
}

/// Checks of a port's `name` (endpoints and services): required where the object has several
/// ports, otherwise optional, and a DNS-1123 label when given.
pub fn port_name(name: &str, required: bool, path: &str) -> Vec<Cause> {
    let field = format!("{path}.name");
    match name {
        "" if required => vec![Cause::required(field)],
        "" => Vec::new(),
        name => name_errors(name, NameRule::Label)
            .into_iter()
            .map(|error| Cause::invalid(field.clone(), &Value::from(name), error))
            .collect(),
    }
}

/// Upstream's `ValidateObjectMeta`: name (or generateName), labels and annotations.
pub fn object_meta(meta: &ObjectMeta, rule: NameRule) -> Vec<Cause> {
    let mut causes = Vec::new();
    match meta.name.as_deref() {
        None | Some("") => {
            if meta.generate_name.as_deref().unwrap_or("").is_empty() {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                });
            }
        }
        Some(name) => {
            for error in name_errors(name, rule) {
                causes.push(Cause::invalid("metadata.name", &Value::from(name), error));
            }
        }
    }
    causes.extend(labels(meta.labels.as_ref(), "metadata.labels"));
    if let Some(annotations) = &meta.annotations {
        let mut total = 0;
        for (key, value) in annotations {
            total += key.len() + value.len();
            for error in qualified_name_errors(key) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::from(key.as_str()),
                    error,
                ));
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: may not be more than 262144 bytes".to_string(),
            });
        }
    }
    causes.extend(owner_references(
        meta.owner_references.as_deref().unwrap_or_default(),
    ));
    causes.extend(finalizers(meta.finalizers.as_deref().unwrap_or_default()));
    causes
}

/// Upstream's `ValidateOwnerReferences`: every reference names its owner completely, Events
/// own nothing, and at most one reference is the controller. Paths carry no index, as
/// upstream reports them.
fn owner_references(references: &[OwnerReference]) -> Vec<Cause> {
    const FIELD: &str = "metadata.ownerReferences";
    let mut causes = Vec::new();
    let mut first_controller: Option<String> = None;
    for reference in references {
        let version = reference.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            causes.push(Cause::invalid(
                format!("{FIELD}.apiVersion"),
                &Value::from(reference.api_version.as_str()),
                "version must not be empty",
            ));
        }
        for (field, value) in [
            ("kind", &reference.kind),
            ("name", &reference.name),
            ("uid", &reference.uid),
        ] {
            if value.is_empty() {
                causes.push(Cause::invalid(
                    format!("{FIELD}.{field}"),
                    &Value::from(""),
                    "must not be empty",
                ));
            }
        }
        if reference.api_version == "v1" && reference.kind == "Event" {
            let printed = serde_json::to_string(reference).unwrap_or_default();
            causes.push(Cause::invalid_printed(
                FIELD,
                &printed,
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if reference.controller == Some(true) {
            let current = format!("{}/{}", reference.kind, reference.name);
            match &first_controller {
                Some(first) => {
                    let printed = serde_json::to_string(references).unwrap_or_default();
                    causes.push(Cause::invalid_printed(
                        FIELD,
                        &printed,
                        format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                    ));
                }
                None => first_controller = Some(current),
            }
        }
    }
    causes
}

/// Upstream's `ValidateFinalizers`: qualified names, and not both `orphan` and
/// `foregroundDeletion`.
fn finalizers(finalizers: &[String]) -> Vec<Cause> {
    const FIELD: &str = "metadata.finalizers";
    let mut causes = Vec::new();
    for finalizer in finalizers {
        for error in qualified_name_errors(finalizer) {
            causes.push(Cause::invalid(
                FIELD,
                &Value::from(finalizer.as_str()),
                error,
            ));
        }
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        let printed = serde_json::to_string(finalizers).unwrap_or_default();
        causes.push(Cause::invalid_printed(
            FIELD,
            &printed,
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    causes
}

/// Upstream's `ValidateObjectMetaUpdate` for what an update cannot change: the identity and
/// deletion state of the object (`uid`, `creationTimestamp`, `deletionTimestamp`,
/// `deletionGracePeriodSeconds`), and no new finalizers once deletion has begun.
pub fn object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_finalizers = old.finalizers.as_deref().unwrap_or_default();
        let mut added: Vec<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        added.sort();
        added.dedup();
        if !added.is_empty() {
            let printed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}", printed.join(", ")),
            ));
        }
    }
    let immutable = |field: &str, new: Value, old: Value| {
        (new != old)
            .then(|| Cause::invalid(format!("metadata.{field}"), &new, "field is immutable"))
    };
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref()
            .map(|t| Value::from(t.0.to_string()))
            .unwrap_or(Value::Null)
    };
    causes.extend(immutable(
        "uid",
        Value::from(new.uid.as_deref().unwrap_or("")),
        Value::from(old.uid.as_deref().unwrap_or("")),
    ));
    causes.extend(immutable(
        "creationTimestamp",
        time(&new.creation_timestamp),
        time(&old.creation_timestamp),
    ));
    causes.extend(immutable(
        "deletionTimestamp",
        time(&new.deletion_timestamp),
        time(&old.deletion_timestamp),
    ));
    causes.extend(immutable(
        "deletionGracePeriodSeconds",
        Value::from(new.deletion_grace_period_seconds),
        Value::from(old.deletion_grace_period_seconds),
    ));
    causes
}

/// Label keys must be qualified names and values valid label values.
pub fn labels(labels: Option<&BTreeMap<String, String>>, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (key, value) in labels.into_iter().flatten() {
        for error in qualified_name_errors(key) {
            causes.push(Cause::invalid(field, &Value::from(key.as_str()), error));
        }
        if let Some(error) = label_value_error(value) {
            causes.push(Cause::invalid(field, &Value::from(value.as_str()), error));
        }
    }
    causes
}

const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Upstream's `IsQualifiedName`: an optional DNS subdomain prefix and a slash, then a name.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let mut errors = Vec::new();
    if let Some(prefix) = prefix {
        if !is_dns1123_subdomain(prefix) {
            errors.push(format!("prefix part {SUBDOMAIN_MESSAGE}"));
        }
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_string());
    } else if !is_label_value_shape(name) {
        errors.push(QUALIFIED_NAME.to_string());
    }
    errors
}

fn is_label_value_shape(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Upstream's `IsValidLabelValue`.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label_value_shape(value)).then(|| "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
}

/// Upstream's `IsConfigMapKey` for a key of the map at `field` (`data`, `binaryData`) of a
/// ConfigMap or Secret: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`. Problems
/// are reported at `field[key]`, as upstream does.
pub fn config_key(key: &str, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let path = format!("{field}[{key}]");
    let value = Value::from(key);
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        causes.push(Cause::invalid(&path, &value, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
    }
    if key.len() > 253 {
        causes.push(Cause::invalid(
            &path,
            &value,
            "must be no more than 253 characters",
        ));
    }
    if key == "." || key == ".." {
        causes.push(Cause::invalid(
            &path,
            &value,
            format!("must not be '{key}'"),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_rules() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_dns1123_label("kube-system"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1035_label("1abc"));
        let meta = ObjectMeta {
            name: Some("Bad_Name".into()),
            ..Default::default()
        };
        let causes = object_meta(&meta, NameRule::Subdomain);
        assert_eq!(causes.len(), 1);
        assert!(causes[0]
            .message
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
        let unnamed = object_meta(&ObjectMeta::default(), NameRule::Subdomain);
        assert_eq!(
            unnamed[0].message,
            "Required value: name or generateName is required"
        );
    }

    #[test]
    fn owner_references_and_finalizers_follow_upstream() {
        let owner = |name: &str, controller: bool| OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(controller),
            ..Default::default()
        };
        let meta = ObjectMeta {
            name: Some("x".into()),
            owner_references: Some(vec![
                owner("a", true),
                owner("b", true),
                OwnerReference::default(),
            ]),
            finalizers: Some(vec!["bad finalizer!".into(), "example.com/ok".into()]),
            ..Default::default()
        };
        let causes = object_meta(&meta, NameRule::Subdomain);
        let lines: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(lines.contains(&"metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty".to_string()), "{lines:?}");
        assert!(lines.contains(
            &"metadata.ownerReferences.uid: Invalid value: \"\": must not be empty".to_string()
        ));
        assert!(lines.iter().any(|l| l.ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"
        )));
        assert!(lines.iter().any(|l| l.starts_with(
            "metadata.finalizers: Invalid value: \"bad finalizer!\": name part must consist"
        )));
        assert_eq!(causes.len(), 6, "{lines:?}");
    }

    #[test]
    fn updates_keep_identity_and_deletion_state() {
        let old = ObjectMeta {
            uid: Some("1".into()),
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            finalizers: Some(vec!["a/b".into()]),
            ..Default::default()
        };
        assert!(object_meta_update(&old, &old).is_empty());
        let new = ObjectMeta {
            uid: Some("2".into()),
            finalizers: Some(vec!["a/b".into(), "c/d".into()]),
            ..old.clone()
        };
        let causes = object_meta_update(&new, &old);
        assert_eq!(causes[0].message, "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\"}");
        assert_eq!(
            causes[1].message,
            "Invalid value: \"2\": field is immutable"
        );
        assert_eq!(causes.len(), 2);
    }

    #[test]
    fn label_keys_and_values() {
        let labels_map: BTreeMap<String, String> = [
            ("app.kubernetes.io/name".to_string(), "web".to_string()),
            ("bad key".to_string(), "-x".to_string()),
        ]
        .into();
        let causes = labels(Some(&labels_map), "metadata.labels");
        assert_eq!(causes.len(), 2, "{causes:?}");
    }

    #[test]
    fn config_keys_are_reported_under_their_key() {
        assert!(config_key("app.properties", "data").is_empty());
        let causes = config_key("bad key", "data");
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "data[bad key]");
        assert_eq!(
            config_key("..", "binaryData")[0].message,
            "Invalid value: \"..\": must not be '..'"
        );
    }
}
