//! Service-account identities, shared by kube-apiserver (TokenRequest, token authentication,
//! OIDC discovery) and kube-controller-manager (legacy token Secrets), as upstream shares
//! `pkg/serviceaccount`: keys, token claims and the JWT signer and verifier.

pub mod claims;
mod der;
pub mod jwt;
pub mod keys;

/// Every service account's group.
pub const ALL_GROUP: &str = "system:serviceaccounts";

const USER_PREFIX: &str = "system:serviceaccount:";

/// `system:serviceaccount:<namespace>:<name>`, the user a service account authenticates as.
pub fn username(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a service-account user name.
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let (namespace, name) = user.strip_prefix(USER_PREFIX)?.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// The groups of a service account: all service accounts', and its namespace's.
pub fn groups(namespace: &str) -> [String; 2] {
    [ALL_GROUP.to_string(), format!("{ALL_GROUP}:{namespace}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_round_trip() {
        let user = username("default", "builder");
        assert_eq!(user, "system:serviceaccount:default:builder");
        assert_eq!(split_username(&user), Some(("default", "builder")));
        assert_eq!(split_username("system:serviceaccount:default"), None);
        assert_eq!(split_username("alice"), None);
        assert_eq!(
            groups("kube-system"),
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system"
            ]
        );
    }
}
