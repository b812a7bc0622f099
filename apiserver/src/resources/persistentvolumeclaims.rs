//! PersistentVolumeClaims (`v1`): a request for storage that pods mount by name and that
//! StatefulSets create per replica from their `volumeClaimTemplates`. Nothing here provisions
//! or binds volumes (there is no PersistentVolume controller or provisioner): claims stay
//! `Pending`, as on a cluster without a default StorageClass.

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
};
use machinery::quantity::{self, Quantity};
use serde_json::Value;

use super::workload;
use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::validation;
use crate::registry::{Description, NameRule, Strategy};

pub struct PersistentVolumeClaims;

const STATUS: &str = "phase represents the current phase of PersistentVolumeClaim.";
const VOLUME: &str =
    "volumeName is the binding reference to the PersistentVolume backing this claim.";
const CAPACITY: &str = "capacity represents the actual resources of the underlying volume.";
const ACCESS_MODES: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
const STORAGE_CLASS: &str = "StorageClass of the pvc";
const VOLUME_ATTRIBUTES_CLASS: &str = "VolumeAttributesClass of the pvc";
const VOLUME_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";

/// The access modes in the order upstream abbreviates them (`RWO,ROX,RWX,RWOP`).
const ACCESS_MODE_NAMES: &[(&str, &str)] = &[
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
];
/// The annotation that named a claim's class before `spec.storageClassName`.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

impl Strategy for PersistentVolumeClaims {
    type Object = PersistentVolumeClaim;

    fn describe(&self) -> Description {
        Description {
            short_names: &["pvc"],
            status: true,
            // Upstream's storage answers a DELETE with the deleted object.
            return_deleted_object: true,
            ..Description::default()
        }
    }

    fn default_fields(&self, claim: &mut PersistentVolumeClaim) {
        default_spec(claim.spec.get_or_insert_with(Default::default));
        let status = claim
            .status
            .get_or_insert_with(PersistentVolumeClaimStatus::default);
        status.phase.get_or_insert_with(|| "Pending".into());
    }

    /// A new claim is `Pending` whatever status it was sent with.
    fn prepare_create(&self, claim: &mut PersistentVolumeClaim) {
        claim.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..PersistentVolumeClaimStatus::default()
        });
    }

    fn validate(&self, claim: &PersistentVolumeClaim) -> Vec<Cause> {
        let spec = claim.spec.clone().unwrap_or_default();
        validate_spec(&spec, "spec")
    }

    /// Upstream's `ValidatePersistentVolumeClaimUpdate`: the spec is fixed at creation but
    /// for binding it to a volume once and, for a bound claim, growing its storage request.
    fn validate_update(
        &self,
        new: &PersistentVolumeClaim,
        old: &PersistentVolumeClaim,
    ) -> Vec<Cause> {
        let mut causes = self.validate(new);
        let mut new_spec = new.spec.clone().unwrap_or_default();
        let mut old_spec = old.spec.clone().unwrap_or_default();
        if old_spec.volume_name.as_deref().unwrap_or("").is_empty() {
            old_spec.volume_name = new_spec.volume_name.clone();
        }
        let bound = new.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if bound {
            let old_storage = storage(&old_spec).cloned();
            let requests = new_spec
                .resources
                .get_or_insert_with(Default::default)
                .requests
                .get_or_insert_with(Default::default);
            match old_storage {
                Some(size) => requests.insert("storage".into(), size),
                None => requests.remove("storage"),
            };
            // Bound claims may also change their volume attributes class.
            old_spec.volume_attributes_class_name = new_spec.volume_attributes_class_name.clone();
        }
        if new_spec != old_spec {
            causes.push(Cause::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let size = |spec: Option<&PersistentVolumeClaimSpec>| {
            spec.and_then(storage)
                .and_then(|q| Quantity::parse(&q.0))
                .unwrap_or(Quantity::ZERO)
        };
        let (new_size, old_size) = (size(new.spec.as_ref()), size(old.spec.as_ref()));
        let capacity = old
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .and_then(|q| Quantity::parse(&q.0))
            .unwrap_or(Quantity::ZERO);
        // Shrinking is allowed back towards a size that failed to expand, never to or below
        // what the volume has (upstream's RecoverVolumeExpansionFailure, on in 1.33).
        if new_size < old_size && capacity.is_positive() && new_size <= capacity {
            causes.push(Cause::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", STATUS),
            Column::new("Volume", "string", VOLUME),
            Column::new("Capacity", "string", CAPACITY),
            Column::new("Access Modes", "string", ACCESS_MODES),
            Column::new("StorageClass", "string", STORAGE_CLASS),
            Column::new("VolumeAttributesClass", "string", VOLUME_ATTRIBUTES_CLASS),
            Column::age(),
            Column::new("VolumeMode", "string", VOLUME_MODE).wide(),
        ]
    }

    fn cells(&self, claim: &PersistentVolumeClaim) -> Vec<Cell> {
        let spec = claim.spec.clone().unwrap_or_default();
        let status = claim.status.clone().unwrap_or_default();
        let phase = if claim.metadata.deletion_timestamp.is_some() {
            "Terminating".to_string()
        } else {
            status.phase.clone().unwrap_or_default()
        };
        let volume = spec.volume_name.clone().unwrap_or_default();
        let (capacity, access_modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            let capacity = status
                .capacity
                .as_ref()
                .and_then(|c| c.get("storage"))
                .map(|q| q.0.clone())
                .unwrap_or_else(|| "0".into());
            (
                capacity,
                access_modes_text(status.access_modes.as_deref().unwrap_or(&[])),
            )
        };
        let class = spec
            .storage_class_name
            .clone()
            .or_else(|| {
                claim
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(BETA_STORAGE_CLASS).cloned())
            })
            .unwrap_or_default();
        let attributes_class = spec
            .volume_attributes_class_name
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "<unset>".into());
        vec![
            Cell::from(claim.metadata.name.clone().unwrap_or_default()),
            Cell::from(phase),
            Cell::from(volume),
            Cell::from(capacity),
            Cell::from(access_modes),
            Cell::from(class),
            Cell::from(attributes_class),
            age(&claim.metadata),
            Cell::from(spec.volume_mode.unwrap_or_else(|| "<unset>".into())),
        ]
    }
}

/// Upstream's `SetDefaults_PersistentVolumeClaimSpec`, also applied to StatefulSets'
/// `volumeClaimTemplates`.
pub fn default_spec(spec: &mut PersistentVolumeClaimSpec) {
    spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
}

fn storage(
    spec: &PersistentVolumeClaimSpec,
) -> Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    spec.resources.as_ref()?.requests.as_ref()?.get("storage")
}

/// Upstream's `ValidatePersistentVolumeClaimSpec` at `path` (`spec` of a claim,
/// `spec.volumeClaimTemplates[0].spec` of a StatefulSet).
pub fn validate_spec(spec: &PersistentVolumeClaimSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let modes = spec.access_modes.as_deref().unwrap_or(&[]);
    if modes.is_empty() {
        causes.push(Cause::required_because(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    let supported: Vec<&str> = ACCESS_MODE_NAMES.iter().map(|(name, _)| *name).collect();
    for mode in modes {
        if !supported.contains(&mode.as_str()) {
            causes.push(Cause::unsupported(
                format!("{path}.accessModes"),
                &Value::from(mode.as_str()),
                &supported,
            ));
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        causes.push(Cause::forbidden(
            format!("{path}.accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    if let Some(selector) = &spec.selector {
        causes.extend(workload::validate_label_selector(
            selector,
            &format!("{path}.selector"),
        ));
    }
    let storage_path = format!("{path}.resources[storage]");
    match storage(spec) {
        None => causes.push(Cause::required(storage_path)),
        Some(amount) => {
            let shown = Value::from(amount.0.as_str());
            match Quantity::parse(&amount.0) {
                None => causes.push(Cause::invalid(storage_path, &shown, quantity::FORMAT_ERROR)),
                Some(q) if q.is_negative() => causes.push(Cause::invalid(
                    storage_path,
                    &shown,
                    "must be greater than or equal to 0",
                )),
                Some(q) if q.is_zero() => causes.push(Cause::invalid(
                    storage_path,
                    &shown,
                    "must be greater than zero",
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        for error in validation::name_errors(class, NameRule::Subdomain) {
            causes.push(Cause::invalid(
                format!("{path}.storageClassName"),
                &Value::from(class),
                error,
            ));
        }
    }
    if let Some(mode) = spec.volume_mode.as_deref() {
        if mode != "Block" && mode != "Filesystem" {
            causes.push(Cause::unsupported(
                format!("{path}.volumeMode"),
                &Value::from(mode),
                &["Block", "Filesystem"],
            ));
        }
    }
    causes
}

/// Access modes as `kubectl get pvc` abbreviates them, in upstream's fixed order.
fn access_modes_text(modes: &[String]) -> String {
    ACCESS_MODE_NAMES
        .iter()
        .filter(|(name, _)| modes.iter().any(|m| m == name))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn claim(spec: Value) -> PersistentVolumeClaim {
        let mut claim: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "data"}, "spec": spec})).unwrap();
        PersistentVolumeClaims.default_fields(&mut claim);
        PersistentVolumeClaims.prepare_create(&mut claim);
        claim
    }

    #[test]
    fn defaults_and_required_fields() {
        let ok = claim(json!({"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}));
        assert!(PersistentVolumeClaims.validate(&ok).is_empty());
        let value = serde_json::to_value(&ok).unwrap();
        assert_eq!(value["spec"]["volumeMode"], "Filesystem");
        assert_eq!(value["status"], json!({"phase": "Pending"}));

        let causes = PersistentVolumeClaims.validate(&claim(json!({})));
        let messages: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    "spec.accessModes",
                    "Required value: at least 1 access mode is required"
                ),
                ("spec.resources[storage]", "Required value"),
            ]
        );
        let bad = claim(json!({"accessModes": ["ReadWriteOncePod", "Sometimes"],
                               "resources": {"requests": {"storage": "0"}}}));
        assert_eq!(PersistentVolumeClaims.validate(&bad).len(), 3);
    }

    #[test]
    fn spec_is_immutable_but_bound_claims_grow() {
        let old = claim(json!({"accessModes": ["ReadWriteOnce"],
                               "resources": {"requests": {"storage": "1Gi"}}}));
        let mut bigger = old.clone();
        bigger
            .spec
            .as_mut()
            .unwrap()
            .resources
            .as_mut()
            .unwrap()
            .requests = Some(
            [(
                "storage".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
            )]
            .into(),
        );
        let causes = PersistentVolumeClaims.validate_update(&bigger, &old);
        assert_eq!(causes[0].field, "spec");

        let mut bound_old = old.clone();
        bound_old.status.as_mut().unwrap().phase = Some("Bound".into());
        bound_old.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
        let mut bound_new = bigger.clone();
        bound_new.status = bound_old.status.clone();
        bound_new.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
        assert!(PersistentVolumeClaims
            .validate_update(&bound_new, &bound_old)
            .is_empty());

        let mut named = old.clone();
        named.spec.as_mut().unwrap().volume_name = Some("pv-1".into());
        assert!(PersistentVolumeClaims
            .validate_update(&named, &old)
            .is_empty());
    }

    #[test]
    fn rows() {
        let mut bound = claim(json!({"accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                                     "resources": {"requests": {"storage": "1Gi"}},
                                     "storageClassName": "fast", "volumeName": "pv-1"}));
        bound.status = serde_json::from_value(json!({"phase": "Bound",
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "capacity": {"storage": "1Gi"}}))
        .unwrap();
        let cells = rendered(
            &PersistentVolumeClaims.cells(&bound),
            jiff::Timestamp::now(),
        );
        assert_eq!(
            cells[..7],
            [
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("fast"),
                json!("<unset>")
            ]
        );
        assert_eq!(cells[8], "Filesystem");
        let pending = claim(json!({}));
        let cells = rendered(
            &PersistentVolumeClaims.cells(&pending),
            jiff::Timestamp::now(),
        );
        assert_eq!(
            cells[1..6],
            [json!("Pending"), json!(""), json!(""), json!(""), json!("")]
        );
    }
}
