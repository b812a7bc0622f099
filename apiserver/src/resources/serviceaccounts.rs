//! ServiceAccounts: the identities pods run as; `kubectl get sa` counts their secrets.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct ServiceAccounts;

impl Strategy for ServiceAccounts {
    type Object = ServiceAccount;

    fn describe(&self) -> Description {
        Description {
            short_names: &["sa"],
            ..Description::default()
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
            Column::age(),
        ]
    }

    fn cells(&self, account: &ServiceAccount) -> Vec<Cell> {
        vec![
            Cell::from(account.metadata.name.clone().unwrap_or_default()),
            Cell::from(account.secrets.as_ref().map_or(0, |s| s.len())),
            age(&account.metadata),
        ]
    }
}
