//! Leases (`coordination.k8s.io/v1`): node heartbeats (`kube-node-lease`) and the locks
//! through which controller managers and schedulers elect a leader.

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct Leases;

const HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";

impl Strategy for Leases {
    type Object = Lease;

    fn describe(&self) -> Description {
        Description {
            create_on_update: true,
            unconditional_update: false,
            ..Description::default()
        }
    }

    /// Upstream's `ValidateLeaseSpec`.
    fn validate(&self, lease: &Lease) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Some(spec) = &lease.spec else {
            return causes;
        };
        if let Some(duration) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            causes.push(Cause::invalid(
                "spec.leaseDurationSeconds",
                &Value::from(duration),
                "must be greater than 0",
            ));
        }
        if let Some(transitions) = spec.lease_transitions.filter(|t| *t < 0) {
            causes.push(Cause::invalid(
                "spec.leaseTransitions",
                &Value::from(transitions),
                "must be greater than or equal to 0",
            ));
        }
        if spec
            .preferred_holder
            .as_deref()
            .is_some_and(|h| !h.is_empty())
            && spec.strategy.as_deref().unwrap_or("").is_empty()
        {
            causes.push(Cause::forbidden(
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            ));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Holder", "string", HOLDER),
            Column::age(),
        ]
    }

    fn cells(&self, lease: &Lease) -> Vec<Cell> {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        vec![
            Cell::from(lease.metadata.name.clone().unwrap_or_default()),
            Cell::from(holder),
            age(&lease.metadata),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    #[test]
    fn holder_cell_and_validation() {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 0}
        }))
        .unwrap();
        assert_eq!(
            rendered(&Leases.cells(&lease), jiff::Timestamp::now())[1],
            "node-1"
        );
        let causes = Leases.validate(&lease);
        assert_eq!(
            causes[0].message,
            "Invalid value: 0: must be greater than 0"
        );
    }
}
