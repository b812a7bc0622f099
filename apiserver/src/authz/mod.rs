//! Authorization: whether the authenticated user may do what a request asks, decided by the
//! authorizers `--authorization-mode` names, in order, as upstream's union authorizer does
//! (the first to allow or deny decides; when none has an opinion the request is forbidden).
//!
//! `system:masters` is allowed everything before any mode is asked, like upstream's
//! privileged-group authorizer, so the admin kubeconfig works whatever the policy says.

pub mod attributes;
pub mod bootstrap;
pub mod node;
pub mod rbac;

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::rbac::v1::PolicyRule;

pub use self::attributes::{Attributes, ResourceAttributes};
use self::rbac::rules;
use crate::authn::UserInfo;
use crate::error::{ApiError, Target};

/// The group whose members may do anything (upstream's `system:masters`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// One authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with why (empty when there is nothing to add).
    Deny(String),
    /// Neither: the next authorizer decides. The reason (possibly empty) ends up in the
    /// Forbidden message if no one allows.
    NoOpinion(String),
}

/// Decides requests; one per `--authorization-mode` entry.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, attributes: &Attributes) -> Decision;

    /// Why this authorizer allows a request it allows, for access reviews (only RBAC says).
    /// Kept apart from [`Authorizer::authorize`] so requests do not pay for the words.
    fn allow_reason(&self, _attributes: &Attributes) -> String {
        String::new()
    }

    /// What `user` may do in `namespace` (`""`: cluster-wide only), as rules: what
    /// SelfSubjectRulesReview answers. An authorizer that cannot list its decisions says
    /// `incomplete`.
    fn rules_for(&self, user: &UserInfo, namespace: &str) -> RuleSet;
}

/// The rules a user holds, as far as the authorizers can tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<PolicyRule>,
    /// Some authorizer allows more than the rules show.
    pub incomplete: bool,
    /// Problems met resolving the rules (a binding to a missing role).
    pub errors: Vec<String>,
}

/// An `--authorization-mode` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Node,
    Rbac,
}

/// A mode upstream knows but this server does not serve, or one it does not know at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorization-mode {0:?} is not supported; use AlwaysAllow, AlwaysDeny, Node or RBAC")]
pub struct UnknownMode(String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(text: &str) -> Result<Self, UnknownMode> {
        match text {
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            "AlwaysDeny" => Ok(Mode::AlwaysDeny),
            "Node" => Ok(Mode::Node),
            "RBAC" => Ok(Mode::Rbac),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}

/// Always answers the same.
struct Always(Decision);

impl Authorizer for Always {
    fn authorize(&self, _: &Attributes) -> Decision {
        self.0.clone()
    }

    /// Everything, or nothing, as upstream's AlwaysAllow and AlwaysDeny list it.
    fn rules_for(&self, _: &UserInfo, _: &str) -> RuleSet {
        let rules = match self.0 {
            Decision::Allow => rules::everything().to_vec(),
            _ => Vec::new(),
        };
        RuleSet {
            rules,
            ..Default::default()
        }
    }
}

/// The configured authorizers, asked in order.
pub struct Chain {
    authorizers: Vec<Arc<dyn Authorizer>>,
    /// The first mode is AlwaysAllow: every request is allowed whoever makes it.
    allows_all: bool,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("authorizers", &self.authorizers.len())
            .finish()
    }
}

impl Chain {
    /// The chain for `modes`; `rbac` serves the RBAC mode and `node` the Node mode (a chain
    /// naming Node without one leaves it out).
    pub fn new(
        modes: &[Mode],
        rbac: Arc<rbac::Authorizer>,
        node: Option<Arc<node::Authorizer>>,
    ) -> Self {
        let authorizers = modes
            .iter()
            .filter_map(|mode| -> Option<Arc<dyn Authorizer>> {
                match mode {
                    Mode::AlwaysAllow => Some(Arc::new(Always(Decision::Allow))),
                    Mode::AlwaysDeny => Some(Arc::new(Always(Decision::Deny(String::new())))),
                    Mode::Node => node.clone().map(|n| n as Arc<dyn Authorizer>),
                    Mode::Rbac => Some(rbac.clone()),
                }
            })
            .collect();
        Chain {
            authorizers,
            allows_all: modes.first() == Some(&Mode::AlwaysAllow),
        }
    }

    /// Whether the request may go on; the Forbidden error otherwise, worded as upstream's.
    pub fn check(&self, attributes: &Attributes) -> Result<(), ApiError> {
        match self.decide(attributes) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                Err(forbidden(attributes, &reason))
            }
        }
    }

    /// The rules every authorizer says `user` holds in `namespace`, as upstream's union
    /// rule resolver gathers them (`system:masters` is not listed as everything).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RuleSet {
        let mut all = RuleSet::default();
        for authorizer in &self.authorizers {
            let found = authorizer.rules_for(user, namespace);
            all.rules.extend(found.rules);
            all.incomplete |= found.incomplete;
            all.errors.extend(found.errors);
        }
        all
    }

    /// Whether `user` is allowed everything without looking at the request: a member of
    /// `system:masters`, or anyone when AlwaysAllow comes first. Requests then skip reading
    /// their attributes, which most requests of an admin or an AlwaysAllow cluster are.
    fn allows_everything(&self, user: &UserInfo) -> bool {
        self.allows_all || user.groups.iter().any(|g| g == PRIVILEGED_GROUP)
    }

    /// The decision of the first authorizer with an opinion; `system:masters` first.
    pub fn decide(&self, attributes: &Attributes) -> Decision {
        self.first_opinion(attributes).0
    }

    /// The decision with the allowing authorizer's reason, as access reviews answer them
    /// (`system:masters` and AlwaysAllow give none, as upstream's).
    pub fn explain(&self, attributes: &Attributes) -> (Decision, String) {
        match self.first_opinion(attributes) {
            (Decision::Allow, Some(allowing)) => {
                (Decision::Allow, allowing.allow_reason(attributes))
            }
            (decision, _) => (decision, String::new()),
        }
    }

    /// The decision, and the authorizer that allowed it when one did.
    fn first_opinion(&self, attributes: &Attributes) -> (Decision, Option<&Arc<dyn Authorizer>>) {
        if self.allows_everything(&attributes.user) {
            return (Decision::Allow, None);
        }
        let mut reasons = Vec::new();
        for authorizer in &self.authorizers {
            match authorizer.authorize(attributes) {
                Decision::NoOpinion(reason) => {
                    if !reason.is_empty() {
                        reasons.push(reason)
                    }
                }
                Decision::Allow => return (Decision::Allow, Some(authorizer)),
                deny => return (deny, None),
            }
        }
        (Decision::NoOpinion(reasons.join(", ")), None)
    }
}

/// Upstream's Forbidden for an unauthorized request: `pods "x" is forbidden: User "jane"
/// cannot get resource "pods" in API group "" in the namespace "default"`, the authorizers'
/// reasons appended after a colon.
pub fn forbidden(attributes: &Attributes, reason: &str) -> ApiError {
    let user = &attributes.user.name;
    let verb = &attributes.verb;
    let mut message = match &attributes.resource {
        None => format!("User {user:?} cannot {verb} path {:?}", attributes.path),
        Some(resource) => {
            let mut name = resource.resource.clone();
            if !resource.subresource.is_empty() {
                name = format!("{name}/{}", resource.subresource);
            }
            let scope = match resource.namespace.as_str() {
                "" => "at the cluster scope".to_string(),
                namespace => format!("in the namespace {namespace:?}"),
            };
            format!(
                "User {user:?} cannot {verb} resource {name:?} in API group {:?} {scope}",
                resource.group
            )
        }
    };
    // Upstream escapes these in the part it writes (user, path and object names), not in
    // the authorizers' reasons.
    message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let (group, resource, name) = match &attributes.resource {
        Some(r) => (r.group.clone(), r.resource.clone(), r.name.clone()),
        None => Default::default(),
    };
    ApiError::Forbidden {
        target: Target {
            group,
            kind: resource.clone(),
            resource,
            name,
        },
        reason: message,
    }
}

/// Middleware: authorizes every request with the user authentication attached, answering
/// upstream's 403 otherwise.
pub async fn authorize(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    let Some(user) = request.extensions().get::<UserInfo>() else {
        return ApiError::Unauthorized.into_response();
    };
    if chain.allows_everything(user) {
        return next.run(request).await;
    }
    let attributes = Attributes::of(user, request.method(), request.uri());
    match chain.check(&attributes) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_escape_names_but_not_reasons() {
        let user = UserInfo {
            name: "<script>&".into(),
            uid: String::new(),
            groups: Vec::new(),
            extra: Default::default(),
        };
        let attributes = Attributes::of(
            &user,
            &axum::http::Method::GET,
            &"/api/v1/pods".parse().unwrap(),
        );
        let error = forbidden(&attributes, "reason <kept>");
        assert_eq!(
            error.to_string(),
            "pods is forbidden: User \"&lt;script&gt;&amp;\" cannot list resource \"pods\" in API group \"\" at the cluster scope: reason <kept>"
        );
    }
}
