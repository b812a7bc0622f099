//! The controllers, one file each, and the `--controllers` selection among them.

pub mod certificates;
pub mod clusterroleaggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod serviceaccounttoken;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;

use std::collections::HashMap;
use std::sync::Arc;

use kube::Client;

use crate::events::Broadcaster;
use crate::informers::Informers;
use crate::options::Options;

/// What every controller is started with.
pub struct ControllerContext {
    /// The manager's own identity: the shared informers, and the controllers that upstream
    /// also runs with it (the legacy token controller, which must work before any token).
    pub client: Client,
    /// With `--use-service-account-credentials`, each controller's own client by controller
    /// name (see [`ControllerContext::client_for`]); empty otherwise.
    pub clients: HashMap<&'static str, Client>,
    pub informers: Arc<Informers>,
    pub events: Broadcaster,
    pub options: Arc<Options>,
    /// The CA bundle published in every namespace's `kube-root-ca.crt`.
    pub root_ca: Option<String>,
    /// `--service-account-private-key-file`: signs legacy service-account token Secrets.
    pub service_account_key: Option<Arc<machinery::serviceaccount::keys::SigningKey>>,
    /// `--cluster-signing-cert-file` and `--cluster-signing-key-file`: the CA that signs
    /// approved certificate signing requests.
    pub cluster_signer: Option<Arc<certificates::authority::Authority>>,
}

impl ControllerContext {
    /// The client for the writes of the controller `name`: its service account's with
    /// `--use-service-account-credentials`, otherwise the manager's own.
    pub fn client_for(&self, name: &str) -> Client {
        self.clients.get(name).unwrap_or(&self.client).clone()
    }
}

/// A controller that `--controllers` can name.
pub struct Descriptor {
    pub name: &'static str,
    /// The short names of older releases, still accepted.
    pub aliases: &'static [&'static str],
    /// The service account (in kube-system) it acts as with
    /// `--use-service-account-credentials`, upstream's, which the bootstrap ClusterRoleBinding
    /// `system:controller:<account>` authorizes; `None` for a controller upstream runs with
    /// the manager's own credentials.
    pub service_account: Option<&'static str>,
    pub start: fn(&ControllerContext),
}

/// Every controller this binary runs, all on by default.
pub const CONTROLLERS: &[Descriptor] = &[
    Descriptor {
        name: replicaset::NAME,
        aliases: &["replicaset"],
        start: replicaset::start,
        service_account: Some("replicaset-controller"),
    },
    Descriptor {
        name: replicaset::RC_NAME,
        aliases: &["replicationcontroller"],
        start: replicaset::start_rc,
        service_account: Some("replication-controller"),
    },
    Descriptor {
        name: deployment::NAME,
        aliases: &["deployment"],
        start: deployment::start,
        service_account: Some("deployment-controller"),
    },
    Descriptor {
        name: statefulset::NAME,
        aliases: &["statefulset"],
        start: statefulset::start,
        service_account: Some("statefulset-controller"),
    },
    Descriptor {
        name: daemonset::NAME,
        aliases: &["daemonset"],
        start: daemonset::start,
        service_account: Some("daemon-set-controller"),
    },
    Descriptor {
        name: job::NAME,
        aliases: &["job"],
        start: job::start,
        service_account: Some("job-controller"),
    },
    Descriptor {
        name: cronjob::NAME,
        aliases: &["cronjob"],
        start: cronjob::start,
        service_account: Some("cronjob-controller"),
    },
    Descriptor {
        name: ttlafterfinished::NAME,
        aliases: &["ttl-after-finished"],
        start: ttlafterfinished::start,
        service_account: Some("ttl-after-finished-controller"),
    },
    Descriptor {
        name: garbagecollector::NAME,
        aliases: &["garbagecollector"],
        start: garbagecollector::start,
        service_account: Some("generic-garbage-collector"),
    },
    Descriptor {
        name: namespace::NAME,
        aliases: &["namespace"],
        start: namespace::start,
        service_account: Some("namespace-controller"),
    },
    Descriptor {
        name: serviceaccount::NAME,
        aliases: &["serviceaccount"],
        start: serviceaccount::start,
        service_account: Some("service-account-controller"),
    },
    Descriptor {
        name: serviceaccounttoken::NAME,
        aliases: &["serviceaccount-token"],
        start: serviceaccounttoken::start,
        // Upstream's tokens controller uses the root client: it mints the very tokens
        // service accounts would need.
        service_account: None,
    },
    Descriptor {
        name: rootcacertpublisher::NAME,
        aliases: &["root-ca-cert-publisher"],
        start: rootcacertpublisher::start,
        service_account: Some("root-ca-cert-publisher"),
    },
    Descriptor {
        name: endpoints::NAME,
        aliases: &["endpoint"],
        start: endpoints::start,
        service_account: Some("endpoint-controller"),
    },
    Descriptor {
        name: endpointslice::NAME,
        aliases: &["endpointslice"],
        start: endpointslice::start,
        service_account: Some("endpointslice-controller"),
    },
    Descriptor {
        name: nodelifecycle::NAME,
        aliases: &["nodelifecycle"],
        start: nodelifecycle::start,
        service_account: Some("node-controller"),
    },
    Descriptor {
        name: tainteviction::NAME,
        aliases: &["taint-eviction"],
        start: tainteviction::start,
        // Upstream: "taint-manager uses existing cluster role from node-controller".
        service_account: Some("node-controller"),
    },
    Descriptor {
        name: certificates::approver::NAME,
        aliases: &["csrapproving"],
        start: certificates::approver::start,
        service_account: Some(certificates::SERVICE_ACCOUNT),
    },
    Descriptor {
        name: certificates::signer::NAME,
        aliases: &["csrsigning"],
        start: certificates::signer::start,
        service_account: Some(certificates::SERVICE_ACCOUNT),
    },
    Descriptor {
        name: certificates::cleaner::NAME,
        aliases: &["csrcleaner"],
        start: certificates::cleaner::start,
        service_account: Some(certificates::SERVICE_ACCOUNT),
    },
    Descriptor {
        name: disruption::NAME,
        aliases: &["disruption"],
        start: disruption::start,
        service_account: Some("disruption-controller"),
    },
    Descriptor {
        name: podgc::NAME,
        aliases: &["podgc"],
        start: podgc::start,
        service_account: Some("pod-garbage-collector"),
    },
    Descriptor {
        name: clusterroleaggregation::NAME,
        aliases: &["clusterrole-aggregation"],
        start: clusterroleaggregation::start,
        service_account: Some("clusterrole-aggregation-controller"),
    },
];

/// A `--controllers` entry naming no controller.
#[derive(Debug, thiserror::Error)]
#[error("{name:?} is not in the list of known controllers: {}", CONTROLLERS.iter().map(|c| c.name).collect::<Vec<_>>().join(", "))]
pub struct UnknownController {
    name: String,
}

/// The controllers `--controllers` selects, in start order, or the unknown name.
pub fn selected(flags: &[String]) -> Result<Vec<&'static Descriptor>, UnknownController> {
    let find = |name: &str| {
        CONTROLLERS
            .iter()
            .find(|c| c.name == name || c.aliases.contains(&name))
    };
    for flag in flags {
        let name = flag.strip_prefix('-').unwrap_or(flag);
        if name != "*" && find(name).is_none() {
            return Err(UnknownController {
                name: name.to_string(),
            });
        }
    }
    Ok(CONTROLLERS
        .iter()
        .filter(|controller| {
            let named = |flag: &String| {
                flag == controller.name || controller.aliases.contains(&flag.as_str())
            };
            if flags
                .iter()
                .any(|f| f.strip_prefix('-').is_some_and(|n| named(&n.to_string())))
            {
                return false;
            }
            flags.iter().any(|f| f == "*" || named(f))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(flags: &[&str]) -> Result<Vec<&'static str>, UnknownController> {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        selected(&flags).map(|c| c.iter().map(|c| c.name).collect())
    }

    #[test]
    fn star_enables_all_and_minus_disables() {
        assert_eq!(names(&["*"]).unwrap().len(), CONTROLLERS.len());
        let without_gc = names(&["*", "-garbage-collector-controller"]).unwrap();
        assert!(
            !without_gc.contains(&"garbage-collector-controller")
                && without_gc.len() == CONTROLLERS.len() - 1
        );
        assert_eq!(
            names(&["replicaset", "deployment-controller"]).unwrap(),
            ["replicaset-controller", "deployment-controller"]
        );
        let unknown = names(&["-bogus"]).unwrap_err();
        assert_eq!(unknown.name, "bogus");
        assert!(unknown
            .to_string()
            .starts_with("\"bogus\" is not in the list of known controllers: "));
    }
}
