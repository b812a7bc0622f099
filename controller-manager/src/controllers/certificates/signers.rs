//! The `kubernetes.io` signers the controller manager signs for, and what each accepts
//! (upstream's `pkg/controller/certificates/signer` and the kubelet checks of
//! `pkg/apis/certificates`): a request breaking its signer's rules fails rather than waits.

use machinery::certificates::CertificateRequest;

pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The group every node's identity is in.
const NODES_GROUP: &str = "system:nodes";
/// The user name prefix of node identities.
const NODE_PREFIX: &str = "system:node:";

/// One of the signers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Client certificates for anyone, to authenticate to the apiserver.
    KubeApiserverClient,
    /// Kubelets' client certificates.
    KubeletClient,
    /// Kubelets' serving certificates.
    KubeletServing,
    /// What v1beta1 defaulted to; nothing is checked, for compatibility.
    LegacyUnknown,
}

impl Signer {
    /// The signer called `name`, if it is one of these.
    pub fn named(name: &str) -> Option<Signer> {
        match name {
            KUBE_APISERVER_CLIENT => Some(Signer::KubeApiserverClient),
            KUBE_APISERVER_CLIENT_KUBELET => Some(Signer::KubeletClient),
            KUBELET_SERVING => Some(Signer::KubeletServing),
            LEGACY_UNKNOWN => Some(Signer::LegacyUnknown),
            _ => None,
        }
    }

    /// Whether this signer may sign `request` with `usages`; the reason it may not otherwise
    /// (the Failed condition's message).
    pub fn check(self, request: &CertificateRequest, usages: &[String]) -> Result<(), String> {
        match self {
            Signer::KubeApiserverClient => client_usages(usages),
            Signer::KubeletClient => kubelet_client(request, usages),
            Signer::KubeletServing => kubelet_serving(request, usages),
            Signer::LegacyUnknown => Ok(()),
        }
    }
}

/// Client certificates need `client auth`; `digital signature` and `key encipherment` may
/// come along, nothing else.
fn client_usages(usages: &[String]) -> Result<(), String> {
    if let Some(other) = usages.iter().find(|u| {
        !matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "client auth"
        )
    }) {
        return Err(format!("invalid usage for client certificate: {other}"));
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// Exactly `required` (as a set), or `required` without `key encipherment`, which keys other
/// than RSA cannot do.
fn usages_match(usages: &[String], required: [&str; 3]) -> Result<(), String> {
    let set = |items: &mut Vec<&str>| {
        items.sort_unstable();
        items.dedup();
    };
    let mut given: Vec<&str> = usages.iter().map(String::as_str).collect();
    set(&mut given);
    let mut full = required.to_vec();
    set(&mut full);
    let without_rsa: Vec<&str> = full
        .iter()
        .copied()
        .filter(|u| *u != "key encipherment")
        .collect();
    if given == full || given == without_rsa {
        Ok(())
    } else {
        Err(format!("usages did not match [{}]", full.join(" ")))
    }
}

/// Upstream's `ValidateKubeletClientCSR`: `system:node:<name>` in exactly `system:nodes`,
/// no subject alternative names, client usages. The approver recognizes node client
/// requests by it too.
pub fn kubelet_client(request: &CertificateRequest, usages: &[String]) -> Result<(), String> {
    if request.organizations != [NODES_GROUP] {
        return Err("subject organization is not system:nodes".into());
    }
    if !request.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !request.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !request.common_name.starts_with(NODE_PREFIX) {
        return Err("subject common name does not begin with system:node:".into());
    }
    usages_match(
        usages,
        ["digital signature", "key encipherment", "client auth"],
    )
}

/// Upstream's `ValidateKubeletServingCSR`: `system:node:<name>` in exactly `system:nodes`,
/// DNS or IP names only, serving usages.
fn kubelet_serving(request: &CertificateRequest, usages: &[String]) -> Result<(), String> {
    if request.organizations != [NODES_GROUP] {
        return Err("subject organization is not system:nodes".into());
    }
    if request.dns_names.is_empty() && request.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    usages_match(
        usages,
        ["digital signature", "key encipherment", "server auth"],
    )?;
    if !request.common_name.starts_with(NODE_PREFIX) {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(common_name: &str, organizations: &[&str], dns: &[&str]) -> CertificateRequest {
        CertificateRequest {
            common_name: common_name.into(),
            organizations: organizations.iter().map(|o| o.to_string()).collect(),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            email_addresses: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            subject: Vec::new(),
            public_key: Vec::new(),
        }
    }

    fn usages(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn kubelet_clients_are_nodes_with_client_usages() {
        let node = request("system:node:n1", &["system:nodes"], &[]);
        let signer = Signer::named(KUBE_APISERVER_CLIENT_KUBELET).unwrap();
        assert_eq!(
            signer.check(&node, &usages(&["digital signature", "client auth"])),
            Ok(())
        );
        assert_eq!(
            signer.check(
                &node,
                &usages(&["key encipherment", "digital signature", "client auth"])
            ),
            Ok(())
        );
        assert_eq!(
            signer.check(&node, &usages(&["client auth"])),
            Err("usages did not match [client auth digital signature key encipherment]".into())
        );
        assert_eq!(
            signer.check(
                &request("system:node:n1", &["system:nodes", "admins"], &[]),
                &usages(&["digital signature", "client auth"])
            ),
            Err("subject organization is not system:nodes".into())
        );
        assert_eq!(
            signer.check(
                &request("jane", &["system:nodes"], &[]),
                &usages(&["digital signature", "client auth"])
            ),
            Err("subject common name does not begin with system:node:".into())
        );
        assert_eq!(
            signer.check(
                &request("system:node:n1", &["system:nodes"], &["n1"]),
                &usages(&["digital signature", "client auth"])
            ),
            Err("DNS subjectAltNames are not allowed".into())
        );
    }

    #[test]
    fn kubelet_serving_needs_names_and_serving_usages() {
        let signer = Signer::named(KUBELET_SERVING).unwrap();
        let serving = usages(&["digital signature", "key encipherment", "server auth"]);
        assert_eq!(
            signer.check(
                &request("system:node:n1", &["system:nodes"], &["n1"]),
                &serving
            ),
            Ok(())
        );
        assert_eq!(
            signer.check(&request("system:node:n1", &["system:nodes"], &[]), &serving),
            Err("DNS or IP subjectAltName is required".into())
        );
        assert_eq!(
            signer.check(
                &request("system:node:n1", &["system:nodes"], &["n1"]),
                &usages(&["client auth"])
            ),
            Err("usages did not match [digital signature key encipherment server auth]".into())
        );
    }

    #[test]
    fn apiserver_clients_need_client_auth_only() {
        let signer = Signer::named(KUBE_APISERVER_CLIENT).unwrap();
        let jane = request("jane", &["devs"], &[]);
        assert_eq!(signer.check(&jane, &usages(&["client auth"])), Ok(()));
        assert_eq!(
            signer.check(&jane, &usages(&["client auth", "server auth"])),
            Err("invalid usage for client certificate: server auth".into())
        );
        assert_eq!(
            signer.check(&jane, &usages(&["digital signature"])),
            Err("missing required usage for client certificate: client auth".into())
        );
        assert_eq!(
            Signer::named(LEGACY_UNKNOWN).unwrap().check(&jane, &[]),
            Ok(())
        );
        assert_eq!(Signer::named("example.com/signer"), None);
    }
}
