//! Namespaces: created Active with the `kubernetes` finalizer, Terminating when deleted
//! until the namespace controller has emptied them and called `/finalize`.

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;

use crate::error::{ApiError, ApiResult, Target};
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, NameRule, Strategy};

pub struct Namespaces;

/// The label upstream puts on every namespace so selectors can pick namespaces by name.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Strategy for Namespaces {
    type Object = Namespace;

    fn describe(&self) -> Description {
        Description {
            short_names: &["ns"],
            status: true,
            finalize: true,
            name_rule: NameRule::Label,
            field_selectors: &["status.phase"],
            return_deleted_object: true,
            delete_collection: false,
            ..Description::default()
        }
    }

    fn prepare_create(&self, namespace: &mut Namespace) {
        namespace.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let spec = namespace.spec.get_or_insert_with(NamespaceSpec::default);
        if spec.finalizers.as_ref().is_none_or(|f| f.is_empty()) {
            spec.finalizers = Some(vec!["kubernetes".into()]);
        }
    }

    fn default_fields(&self, namespace: &mut Namespace) {
        if let Some(name) = namespace.metadata.name.clone() {
            namespace
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(NAME_LABEL.into(), name);
        }
    }

    fn holds_deletion(&self, namespace: &Namespace) -> bool {
        namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| !f.is_empty())
    }

    /// Upstream's namespace storage checks a UID precondition itself (in its own words), and
    /// once deletion has begun the namespace goes only when its finalizers are done: another
    /// DELETE meanwhile is a conflict.
    fn check_delete(&self, namespace: &Namespace, options: &DeleteOptions) -> ApiResult<()> {
        let target = Target {
            group: String::new(),
            resource: "namespaces".into(),
            kind: "Namespace".into(),
            name: namespace.metadata.name.clone().unwrap_or_default(),
        };
        let actual = namespace.metadata.uid.as_deref().unwrap_or_default();
        if let Some(uid) = options
            .preconditions
            .as_ref()
            .and_then(|p| p.uid.as_deref())
            .filter(|u| *u != actual)
        {
            return Err(ApiError::Conflict {
                target,
                detail: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            });
        }
        if namespace.metadata.deletion_timestamp.is_some() && self.holds_deletion(namespace) {
            return Err(ApiError::Conflict {
                target,
                detail: "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.".into(),
            });
        }
        Ok(())
    }

    fn begin_deletion(&self, namespace: &mut Namespace) {
        namespace.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
    }

    fn fields(&self, namespace: &Namespace) -> Vec<(&'static str, String)> {
        vec![("status.phase", phase(namespace))]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", "The status of the namespace"),
            Column::age(),
        ]
    }

    fn cells(&self, namespace: &Namespace) -> Vec<Cell> {
        vec![
            Cell::from(namespace.metadata.name.clone().unwrap_or_default()),
            Cell::from(phase(namespace)),
            age(&namespace.metadata),
        ]
    }
}

fn phase(namespace: &Namespace) -> String {
    namespace
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}
