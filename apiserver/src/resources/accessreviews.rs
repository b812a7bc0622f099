//! `authorization.k8s.io/v1` reviews, answered by the same authorizers that judge requests:
//! SelfSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview (`auth can-i
//! --list`), SubjectAccessReview (any user, what webhooks and proxies ask) and
//! LocalSubjectAccessReview (any user, within the URL's namespace). Nothing is stored.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview,
    SelfSubjectRulesReview, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{json, Value};

use crate::authn::UserInfo;
use crate::authz::{self, Attributes, Chain, Decision};
use crate::error::{ApiError, ApiResult, Cause, Target};
use crate::registry::answer::{Answer, Answered};
use crate::registry::ApiRequest;

/// The authorizers every review asks.
#[derive(Clone)]
pub struct Reviews {
    pub chain: Arc<Chain>,
}

/// What a review asks about: one object (or collection) or one path.
fn attributes(
    user: UserInfo,
    resource: Option<&ResourceAttributes>,
    non_resource: Option<&NonResourceAttributes>,
) -> Attributes {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    match (resource, non_resource) {
        (Some(r), _) => Attributes {
            user,
            verb: text(&r.verb),
            resource: Some(authz::ResourceAttributes {
                namespace: text(&r.namespace),
                group: text(&r.group),
                version: text(&r.version),
                resource: text(&r.resource),
                subresource: text(&r.subresource),
                name: text(&r.name),
                field_equals: r
                    .field_selector
                    .as_ref()
                    .and_then(|f| f.raw_selector.as_deref())
                    .map(authz::attributes::equality_terms)
                    .unwrap_or_default(),
            }),
            path: String::new(),
        },
        (None, non_resource) => Attributes {
            user,
            verb: non_resource.map(|n| text(&n.verb)).unwrap_or_default(),
            resource: None,
            path: non_resource.map(|n| text(&n.path)).unwrap_or_default(),
        },
    }
}

/// Upstream's check that a review names exactly one kind of attributes.
fn check_one_kind(
    kind: &'static str,
    resource: bool,
    non_resource: bool,
    target: &str,
) -> ApiResult<()> {
    let cause = match (resource, non_resource) {
        (false, false) => Cause::required_because(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ),
        (true, true) => Cause::invalid_printed(
            "spec.nonResourceAttributes",
            "{...}",
            "cannot be specified in combination with resourceAttributes",
        ),
        _ => return Ok(()),
    };
    Err(invalid(kind, target, vec![cause]))
}

fn invalid(kind: &'static str, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        target: Target {
            group: "authorization.k8s.io".into(),
            resource: String::new(),
            kind: kind.into(),
            name: name.into(),
        },
        causes,
    }
}

/// The review's status for `decision`, as upstream writes it.
fn status((decision, allow_reason): (Decision, String)) -> Value {
    match decision {
        Decision::Allow if allow_reason.is_empty() => json!({"allowed": true}),
        Decision::Allow => json!({"allowed": true, "reason": allow_reason}),
        Decision::Deny(reason) => {
            let mut status = json!({"allowed": false, "denied": true});
            if !reason.is_empty() {
                status["reason"] = Value::from(reason);
            }
            status
        }
        Decision::NoOpinion(reason) => {
            let mut status = json!({"allowed": false});
            if !reason.is_empty() {
                status["reason"] = Value::from(reason);
            }
            status
        }
    }
}

/// The posted review with its status: upstream answers the object it was sent.
fn answered(
    kind: &str,
    spec: &impl serde::Serialize,
    status: Value,
    namespace: Option<&str>,
) -> ApiResult<Answered> {
    let mut metadata = json!({"creationTimestamp": null});
    if let Some(namespace) = namespace {
        metadata["namespace"] = Value::from(namespace);
    }
    Ok(Answered::new(json!({
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": metadata,
        "spec": serde_json::to_value(spec).map_err(|e| ApiError::Internal(e.to_string()))?,
        "status": status,
    })))
}

pub struct SelfSubjectAccessReviews(pub Reviews);

#[async_trait]
impl Answer for SelfSubjectAccessReviews {
    type Object = SelfSubjectAccessReview;

    async fn answer(
        &self,
        posted: SelfSubjectAccessReview,
        request: &ApiRequest,
    ) -> ApiResult<Answered> {
        let spec = &posted.spec;
        check_one_kind(
            "SelfSubjectAccessReview",
            spec.resource_attributes.is_some(),
            spec.non_resource_attributes.is_some(),
            "",
        )?;
        let attributes = attributes(
            request.user.clone(),
            spec.resource_attributes.as_ref(),
            spec.non_resource_attributes.as_ref(),
        );
        let decision = self.0.chain.explain(&attributes);
        answered("SelfSubjectAccessReview", spec, status(decision), None)
    }
}

/// The user a SubjectAccessReview asks about.
fn subject(spec: &SubjectAccessReviewSpec) -> UserInfo {
    UserInfo {
        name: spec.user.clone().unwrap_or_default(),
        uid: spec.uid.clone().unwrap_or_default(),
        groups: spec.groups.clone().unwrap_or_default(),
        extra: spec.extra.clone().unwrap_or_default().into_iter().collect(),
    }
}

fn check_subject(kind: &'static str, spec: &SubjectAccessReviewSpec) -> ApiResult<()> {
    check_one_kind(
        kind,
        spec.resource_attributes.is_some(),
        spec.non_resource_attributes.is_some(),
        "",
    )?;
    let no_user = spec.user.as_deref().unwrap_or("").is_empty();
    let no_groups = spec.groups.as_ref().is_none_or(Vec::is_empty);
    if no_user && no_groups {
        return Err(invalid(
            kind,
            "",
            vec![Cause::invalid(
                "spec.user",
                &Value::from(""),
                "at least one of user or group must be specified",
            )],
        ));
    }
    Ok(())
}

pub struct SubjectAccessReviews(pub Reviews);

#[async_trait]
impl Answer for SubjectAccessReviews {
    type Object = SubjectAccessReview;

    async fn answer(&self, posted: SubjectAccessReview, _: &ApiRequest) -> ApiResult<Answered> {
        let spec = &posted.spec;
        check_subject("SubjectAccessReview", spec)?;
        let attributes = attributes(
            subject(spec),
            spec.resource_attributes.as_ref(),
            spec.non_resource_attributes.as_ref(),
        );
        let decision = self.0.chain.explain(&attributes);
        answered("SubjectAccessReview", spec, status(decision), None)
    }
}

pub struct LocalSubjectAccessReviews(pub Reviews);

#[async_trait]
impl Answer for LocalSubjectAccessReviews {
    type Object = LocalSubjectAccessReview;

    async fn answer(
        &self,
        posted: LocalSubjectAccessReview,
        request: &ApiRequest,
    ) -> ApiResult<Answered> {
        let spec = &posted.spec;
        let namespace = request.namespace.clone().unwrap_or_default();
        check_subject("LocalSubjectAccessReview", spec)?;
        if spec.non_resource_attributes.is_some() {
            return Err(invalid(
                "LocalSubjectAccessReview",
                "",
                vec![Cause::invalid_printed(
                    "spec.nonResourceAttributes",
                    "{...}",
                    "disallowed on this kind of request",
                )],
            ));
        }
        let asked = spec
            .resource_attributes
            .as_ref()
            .and_then(|r| r.namespace.clone())
            .unwrap_or_default();
        if asked != namespace {
            return Err(invalid(
                "LocalSubjectAccessReview",
                "",
                vec![Cause::invalid(
                    "spec.resourceAttributes.namespace",
                    &Value::from(asked),
                    "must match metadata.namespace",
                )],
            ));
        }
        let attributes = attributes(subject(spec), spec.resource_attributes.as_ref(), None);
        let decision = self.0.chain.explain(&attributes);
        answered(
            "LocalSubjectAccessReview",
            spec,
            status(decision),
            Some(&namespace),
        )
    }
}

pub struct SelfSubjectRulesReviews(pub Reviews);

#[async_trait]
impl Answer for SelfSubjectRulesReviews {
    type Object = SelfSubjectRulesReview;

    async fn answer(
        &self,
        posted: SelfSubjectRulesReview,
        request: &ApiRequest,
    ) -> ApiResult<Answered> {
        let namespace = posted.spec.namespace.clone().unwrap_or_default();
        let found = self.0.chain.rules_for(&request.user, &namespace);
        let (resource_rules, non_resource_rules) = split(&found.rules);
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": found.incomplete,
        });
        if !found.errors.is_empty() {
            status["evaluationError"] = Value::from(format!("[{}]", found.errors.join(", ")));
        }
        answered("SelfSubjectRulesReview", &posted.spec, status, None)
    }
}

/// A rules review's two lists: resource rules and non-resource rules, as upstream converts
/// policy rules (a rule may contribute to both).
fn split(rules: &[PolicyRule]) -> (Vec<Value>, Vec<Value>) {
    let mut resources = Vec::new();
    let mut urls = Vec::new();
    for rule in rules {
        if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
            let mut out = json!({
                "verbs": rule.verbs,
                "apiGroups": rule.api_groups.clone().unwrap_or_default(),
                "resources": rule.resources,
            });
            if let Some(names) = rule.resource_names.as_ref().filter(|n| !n.is_empty()) {
                out["resourceNames"] = json!(names);
            }
            resources.push(out);
        }
        if let Some(paths) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
            urls.push(json!({"verbs": rule.verbs, "nonResourceURLs": paths}));
        }
    }
    (resources, urls)
}
