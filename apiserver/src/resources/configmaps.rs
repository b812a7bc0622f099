//! ConfigMaps: string and binary data under validated keys, optionally immutable.

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::validation;
use crate::registry::{Description, Strategy};

pub struct ConfigMaps;

/// Upstream's limit on the total size of a ConfigMap's data.
const MAX_SIZE: usize = 1024 * 1024;

impl Strategy for ConfigMaps {
    type Object = ConfigMap;

    fn describe(&self) -> Description {
        Description {
            short_names: &["cm"],
            ..Description::default()
        }
    }

    fn validate(&self, cm: &ConfigMap) -> Vec<Cause> {
        let mut causes = Vec::new();
        let mut size = 0;
        for (key, value) in cm.data.iter().flatten() {
            causes.extend(validation::config_key(key, "data"));
            size += value.len();
            if cm.binary_data.as_ref().is_some_and(|b| b.contains_key(key)) {
                causes.push(Cause::invalid(
                    format!("data[{key}]"),
                    &Value::from(key.as_str()),
                    "duplicate of key present in binaryData",
                ));
            }
        }
        for (key, value) in cm.binary_data.iter().flatten() {
            causes.extend(validation::config_key(key, "binaryData"));
            size += value.0.len();
        }
        if size > MAX_SIZE {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: String::new(),
                message: format!("Too long: may not be more than {MAX_SIZE} bytes"),
            });
        }
        causes
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> Vec<Cause> {
        let mut causes = self.validate(new);
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
            if new.binary_data != old.binary_data {
                causes.push(Cause::forbidden(
                    "binaryData",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Data", "string", "Data contains the configuration data."),
            Column::age(),
        ]
    }

    fn cells(&self, cm: &ConfigMap) -> Vec<Cell> {
        let count = cm.data.as_ref().map_or(0, |d| d.len())
            + cm.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            Cell::from(cm.metadata.name.clone().unwrap_or_default()),
            Cell::from(count),
            age(&cm.metadata),
        ]
    }
}
