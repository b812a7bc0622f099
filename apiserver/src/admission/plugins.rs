//! Which admission plugins run: upstream's plugin names, its recommended order and defaults,
//! and `--enable-admission-plugins` / `--disable-admission-plugins` applied to them.

use std::sync::Arc;

use super::{certificates, Context, Plugin};

/// The plugins this apiserver implements, in upstream's recommended order: the order they
/// run in, whatever order the flags name them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    NamespaceLifecycle,
    ServiceAccount,
    NodeRestriction,
    Priority,
    DefaultTolerationSeconds,
    CertificateApproval,
    CertificateSigning,
    CertificateSubjectRestriction,
}

impl Name {
    /// Every implemented plugin, in the order it runs.
    pub const ALL: [Name; 8] = [
        Name::NamespaceLifecycle,
        Name::ServiceAccount,
        Name::NodeRestriction,
        Name::Priority,
        Name::DefaultTolerationSeconds,
        Name::CertificateApproval,
        Name::CertificateSigning,
        Name::CertificateSubjectRestriction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::NamespaceLifecycle => "NamespaceLifecycle",
            Name::ServiceAccount => "ServiceAccount",
            Name::NodeRestriction => "NodeRestriction",
            Name::Priority => "Priority",
            Name::DefaultTolerationSeconds => "DefaultTolerationSeconds",
            Name::CertificateApproval => "CertificateApproval",
            Name::CertificateSigning => "CertificateSigning",
            Name::CertificateSubjectRestriction => "CertificateSubjectRestriction",
        }
    }

    /// Whether upstream enables the plugin unless told otherwise.
    fn on_by_default(self) -> bool {
        match self {
            Name::NamespaceLifecycle
            | Name::ServiceAccount
            | Name::Priority
            | Name::DefaultTolerationSeconds
            | Name::CertificateApproval
            | Name::CertificateSigning
            | Name::CertificateSubjectRestriction => true,
            // kubeadm names it; upstream's default set leaves it out.
            Name::NodeRestriction => false,
        }
    }

    fn parse(text: &str) -> Option<Name> {
        Name::ALL.into_iter().find(|name| name.as_str() == text)
    }
}

/// The plugin `name`, built for the registry.
pub(super) fn build(name: Name, context: &Context) -> Arc<dyn Plugin> {
    match name {
        Name::NamespaceLifecycle => Arc::new(super::namespace_lifecycle::NamespaceLifecycle::new(
            context.lookup.clone(),
        )),
        Name::ServiceAccount => Arc::new(super::service_account::ServiceAccount::new(
            context.lookup.clone(),
        )),
        Name::NodeRestriction => Arc::new(super::node_restriction::NodeRestriction::new(
            context.lookup.clone(),
        )),
        Name::Priority => Arc::new(super::priority::Priority::new(context.lookup.clone())),
        Name::DefaultTolerationSeconds => {
            Arc::new(super::default_toleration_seconds::DefaultTolerationSeconds)
        }
        Name::CertificateApproval => Arc::new(certificates::approval::CertificateApproval::new(
            context.authorization.clone(),
        )),
        Name::CertificateSigning => Arc::new(certificates::signing::CertificateSigning::new(
            context.authorization.clone(),
        )),
        Name::CertificateSubjectRestriction => {
            Arc::new(certificates::subject_restriction::CertificateSubjectRestriction)
        }
    }
}

/// Upstream v1.33's other plugins. The flags accept them so upstream command lines still
/// start; enabling one only logs a warning, since nothing here would run it.
const NOT_IMPLEMENTED: [&str; 28] = [
    "AlwaysAdmit",
    "AlwaysDeny",
    "AlwaysPullImages",
    "ClusterTrustBundleAttest",
    "DefaultIngressClass",
    "DefaultStorageClass",
    "DenyServiceExternalIPs",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "ImagePolicyWebhook",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "NamespaceAutoProvision",
    "NamespaceExists",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "PodNodeSelector",
    "PodSecurity",
    "PodTolerationRestriction",
    "PodTopologyLabels",
    "ResourceQuota",
    "RuntimeClass",
    "StorageObjectInUseProtection",
    "TaintNodesByCondition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
];

/// Why the admission flags were refused, in upstream's words; several problems read as Go's
/// aggregate error does (`[first, second]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match .0.as_slice() {
    [one] => one.clone(),
    many => format!("[{}]", many.join(", ")),
})]
pub struct FlagError(Vec<String>);

/// The plugins that run, in order: upstream's defaults, plus what
/// `--enable-admission-plugins` names, less what `--disable-admission-plugins` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled(Vec<Name>);

impl Default for Enabled {
    fn default() -> Self {
        Enabled(
            Name::ALL
                .into_iter()
                .filter(|name| name.on_by_default())
                .collect(),
        )
    }
}

impl Enabled {
    /// The plugins upstream's flags select. Unknown names and a plugin both enabled and
    /// disabled are refused as upstream refuses them.
    pub fn from_flags(enable: &[String], disable: &[String]) -> Result<Enabled, FlagError> {
        let listed = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        };
        let (enable, disable) = (listed(enable), listed(disable));
        let known =
            |name: &String| Name::parse(name).is_some() || NOT_IMPLEMENTED.contains(&&**name);
        let mut problems = Vec::new();
        for (flag, names) in [
            ("enable-admission-plugins", &enable),
            ("disable-admission-plugins", &disable),
        ] {
            for name in names.iter().filter(|n| !known(n)) {
                problems.push(format!("{flag} plugin {name:?} is unknown"));
            }
        }
        let mut overlap: Vec<&String> = enable.iter().filter(|n| disable.contains(n)).collect();
        overlap.sort();
        overlap.dedup();
        if !overlap.is_empty() {
            let names: Vec<&str> = overlap.iter().map(|n| n.as_str()).collect();
            problems.push(format!(
                "[{}] in enable-admission-plugins and disable-admission-plugins overlapped",
                names.join(" ")
            ));
        }
        if !problems.is_empty() {
            problems.dedup();
            return Err(FlagError(problems));
        }
        for name in enable.iter().filter(|n| Name::parse(n).is_none()) {
            tracing::warn!(
                plugin = %name,
                "admission plugin is not implemented by this apiserver; requests are admitted without it"
            );
        }
        let enabled = Name::ALL
            .into_iter()
            .filter(|name| {
                let named = |list: &[String]| list.iter().any(|n| n == name.as_str());
                named(&enable) || (name.on_by_default() && !named(&disable))
            })
            .collect();
        Ok(Enabled(enabled))
    }

    /// The enabled plugins, in the order they run.
    pub fn names(&self) -> &[Name] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(enable: &[&str], disable: &[&str]) -> Result<Enabled, FlagError> {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Enabled::from_flags(&owned(enable), &owned(disable))
    }

    #[test]
    fn defaults_run_in_upstreams_order() {
        assert_eq!(flags(&[], &[]).unwrap(), Enabled::default());
        let without_node_restriction: Vec<Name> = Name::ALL
            .into_iter()
            .filter(|n| *n != Name::NodeRestriction)
            .collect();
        assert_eq!(Enabled::default().names(), without_node_restriction);
        let reordered = flags(
            &[
                "DefaultTolerationSeconds",
                "NodeRestriction",
                "NamespaceLifecycle",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            reordered.names(),
            Name::ALL,
            "the flag's order does not matter"
        );
    }

    #[test]
    fn disabled_plugins_leave_the_chain() {
        let enabled = flags(&[""], &["ServiceAccount", "Priority"]).unwrap();
        assert_eq!(
            enabled.names(),
            [
                Name::NamespaceLifecycle,
                Name::DefaultTolerationSeconds,
                Name::CertificateApproval,
                Name::CertificateSigning,
                Name::CertificateSubjectRestriction
            ]
        );
        // Upstream plugins not implemented here are accepted by both flags.
        let enabled = flags(&["NodeRestriction"], &["PodSecurity", "ServiceAccount"]).unwrap();
        assert!(!enabled.names().contains(&Name::ServiceAccount));
    }

    #[test]
    fn unknown_and_overlapping_names_are_refused_like_upstream() {
        assert_eq!(
            flags(&["Bogus"], &[]).unwrap_err().to_string(),
            r#"enable-admission-plugins plugin "Bogus" is unknown"#
        );
        assert_eq!(
            flags(&["Bogus"], &["serviceaccount"])
                .unwrap_err()
                .to_string(),
            r#"[enable-admission-plugins plugin "Bogus" is unknown, disable-admission-plugins plugin "serviceaccount" is unknown]"#
        );
        assert_eq!(
            flags(&["Priority", "ServiceAccount"], &["ServiceAccount", "Priority"])
                .unwrap_err()
                .to_string(),
            "[Priority ServiceAccount] in enable-admission-plugins and disable-admission-plugins overlapped"
        );
    }
}
