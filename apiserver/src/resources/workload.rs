//! What the workload controllers (deployments, replica sets, replication controllers) share:
//! a label selector that must pick the pods of their own template, upstream's validation of
//! both, the Go-style printing of those values in error messages, and the
//! CONTAINERS/IMAGES/SELECTOR cells.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use machinery::selector::Selector;
use serde_json::Value;

use super::podspec;
use crate::error::Cause;
use crate::registry::scale::selector_string;
use crate::registry::validation;

/// A selector without `matchLabels` and `matchExpressions` is taken as absent: the typed
/// object cannot tell a missing `selector` from `selector: {}`, and missing is the mistake
/// people make.
pub fn is_unset(selector: &LabelSelector) -> bool {
    selector.match_labels.is_none() && selector.match_expressions.is_none()
}

/// Upstream's checks of a workload's `selector` and pod `template` (`ValidateLabelSelector`
/// and `ValidatePodTemplateSpecForReplicaSet`): the selector is required, non-empty and
/// well-formed, and must select the template's own labels; the template's pods must
/// restart `Always`. `kind` names the resource in the empty-selector message as upstream
/// does (it says "deployment" for replica sets too).
pub fn validate_selector_and_template(
    selector: &LabelSelector,
    template: Option<&PodTemplateSpec>,
    kind: &str,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut usable = true;
    if is_unset(selector) {
        causes.push(Cause::required("spec.selector"));
    } else {
        let shape = validate_label_selector(selector, "spec.selector");
        usable = shape.is_empty();
        causes.extend(shape);
        if selector_is_empty(selector) {
            causes.push(Cause::invalid_printed(
                "spec.selector",
                &go_label_selector(selector),
                format!("empty selector is invalid for {kind}"),
            ));
        }
    }
    if !usable {
        causes.push(Cause::invalid_printed(
            "spec.selector",
            &go_label_selector(selector),
            "invalid label selector",
        ));
    }
    let empty = PodTemplateSpec::default();
    let template = template.unwrap_or(&empty);
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    // An absent selector selects nothing; an empty one everything.
    let mismatch = is_unset(selector)
        || (usable && !Selector::from_label_selector(selector).is_ok_and(|s| s.matches(labels)));
    if mismatch {
        causes.push(template_mismatch(labels));
    }
    causes.extend(validate_controller_template(template, "ReplicaSet"));
    causes
}

/// The cause of a selector that does not pick its own template's pods.
pub fn template_mismatch(labels: Option<&BTreeMap<String, String>>) -> Cause {
    Cause::invalid_printed(
        "spec.template.metadata.labels",
        &go_string_map(labels),
        "`selector` does not match template `labels`",
    )
}

/// Upstream's checks of the pod template of a controller that keeps pods running
/// (`spec.template`): its labels and pod spec, `restartPolicy: Always`, and no
/// `activeDeadlineSeconds`, refused in the name of `kind` (upstream says "ReplicaSet" for
/// the apps controllers and "ReplicationController" for core's).
pub fn validate_controller_template(template: &PodTemplateSpec, kind: &str) -> Vec<Cause> {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let mut causes = validation::labels(labels, "spec.template.labels");
    let default_spec = Default::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    causes.extend(podspec::validate_pod_spec(spec, "spec.template.spec"));
    if let Some(policy) = spec.restart_policy.as_deref().filter(|p| *p != "Always") {
        causes.push(Cause::unsupported(
            "spec.template.spec.restartPolicy",
            &Value::from(policy),
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        causes.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    causes
}

/// `spec.selector` may not change after creation in `apps/v1`.
pub fn immutable_selector(new: &LabelSelector, old: &LabelSelector) -> Option<Cause> {
    (!same_selector(new, old)).then(|| {
        Cause::invalid_printed(
            "spec.selector",
            &go_label_selector(new),
            "field is immutable",
        )
    })
}

/// Equality as upstream's semantic comparison sees it: nil and empty collections are equal.
fn same_selector(a: &LabelSelector, b: &LabelSelector) -> bool {
    let labels = |s: &LabelSelector| s.match_labels.clone().unwrap_or_default();
    let expressions = |s: &LabelSelector| {
        s.match_expressions
            .iter()
            .flatten()
            .map(|e| {
                (
                    e.key.clone(),
                    e.operator.clone(),
                    e.values.clone().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    labels(a) == labels(b) && expressions(a) == expressions(b)
}

fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// Upstream's `ValidateLabelSelector` (label values in selectors must be valid).
pub fn validate_label_selector(selector: &LabelSelector, path: &str) -> Vec<Cause> {
    let mut causes = validation::labels(
        selector.match_labels.as_ref(),
        &format!("{path}.matchLabels"),
    );
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = requirement.values.as_deref().unwrap_or_default();
        match requirement.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => causes.push(Cause::required_because(
                format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(Cause::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::invalid(
                format!("{at}.operator"),
                &Value::from(other),
                "not a valid selector operator",
            )),
        }
        for error in validation::qualified_name_errors(&requirement.key) {
            causes.push(Cause::invalid(
                format!("{at}.key"),
                &Value::from(requirement.key.as_str()),
                error,
            ));
        }
        for (j, value) in values.iter().enumerate() {
            if let Some(error) = validation::label_value_error(value) {
                causes.push(Cause::invalid(
                    format!("{at}.values[{j}]"),
                    &Value::from(value.as_str()),
                    error,
                ));
            }
        }
    }
    causes
}

/// The CONTAINERS and IMAGES cells: the template's container names and images, comma-joined.
pub fn container_cells(template: Option<&PodTemplateSpec>) -> (String, String) {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

/// Labels as upstream's `labels.FormatLabels` prints them (`app=web,tier=a`, keys sorted),
/// `<none>` for none: an equality selector or a template's labels in a table cell.
pub fn labels_text(labels: Option<&BTreeMap<String, String>>) -> String {
    match labels.filter(|l| !l.is_empty()) {
        None => "<none>".into(),
        Some(labels) => labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A selector as kubectl prints it (`app=web,tier in (a,b)`), empty for an empty selector.
pub fn selector_text(selector: &LabelSelector) -> String {
    serde_json::to_value(selector)
        .map(|v| selector_string(&v))
        .unwrap_or_default()
}

/// Go's `%#v` of a `map[string]string`: keys sorted, `nil` when absent.
pub fn go_string_map(map: Option<&BTreeMap<String, String>>) -> String {
    match map {
        None => "map[string]string(nil)".into(),
        Some(map) => {
            let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_strings(values: Option<&[String]>) -> String {
    match values {
        None => "[]string(nil)".into(),
        Some(values) => format!(
            "[]string{{{}}}",
            values
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`, as upstream prints it in `Invalid value` messages.
pub fn go_label_selector(selector: &LabelSelector) -> String {
    let expressions = match &selector.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => format!(
            "[]v1.LabelSelectorRequirement{{{}}}",
            list.iter()
                .map(go_requirement)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        go_string_map(selector.match_labels.as_ref())
    )
}

fn go_requirement(requirement: &LabelSelectorRequirement) -> String {
    format!(
        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
        requirement.key,
        requirement.operator,
        go_strings(requirement.values.as_deref())
    )
}

/// Go's `%#v` of an `intstr.IntOrString`, as upstream prints `maxSurge` and friends.
pub fn go_int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(value: Value) -> LabelSelector {
        serde_json::from_value(value).unwrap()
    }

    fn template(value: Value) -> PodTemplateSpec {
        let mut template = serde_json::from_value(value).unwrap();
        podspec::default_pod_template(&mut template);
        template
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn mismatched_template_labels_are_reported_like_upstream() {
        let template = template(json!({
            "metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}
        }));
        let causes = validate_selector_and_template(
            &selector(json!({"matchLabels": {"app": "api"}})),
            Some(&template),
            "deployment",
        );
        assert_eq!(
            lines(&causes),
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web", "tier":"front"}: `selector` does not match template `labels`"#
            ]
        );
        let matching = validate_selector_and_template(
            &selector(json!({"matchLabels": {"app": "web"}})),
            Some(&template),
            "deployment",
        );
        assert!(matching.is_empty(), "{matching:?}");
    }

    #[test]
    fn missing_selector_is_required_and_matches_nothing() {
        let template =
            template(json!({"spec": {"containers": [{"name": "web", "image": "nginx"}]}}));
        let causes = validate_selector_and_template(
            &LabelSelector::default(),
            Some(&template),
            "deployment",
        );
        assert_eq!(
            lines(&causes),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`",
            ]
        );
        let empty = validate_selector_and_template(
            &selector(json!({"matchLabels": {}})),
            Some(&template),
            "deployment",
        );
        assert_eq!(
            lines(&empty),
            ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn expressions_select_and_validate() {
        let s = selector(
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "canary", "operator": "DoesNotExist"}]}),
        );
        let compiled = Selector::from_label_selector(&s).unwrap();
        let tier = BTreeMap::from([("tier".to_string(), "a".to_string())]);
        assert!(compiled.matches(&tier));
        let canary = BTreeMap::from([
            ("tier".to_string(), "a".to_string()),
            ("canary".to_string(), "1".to_string()),
        ]);
        assert!(!compiled.matches(&canary));
        assert_eq!(selector_text(&s), "!canary,tier in (a,b)");
        let bad = selector(json!({"matchExpressions": [{"key": "tier", "operator": "In"}]}));
        assert_eq!(
            lines(&validate_label_selector(&bad, "spec.selector")),
            ["spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"]
        );
    }

    #[test]
    fn changed_selector_is_immutable() {
        let old = selector(json!({"matchLabels": {"app": "web"}}));
        assert!(immutable_selector(&old, &old).is_none());
        let new = selector(json!({"matchLabels": {"app": "api"}}));
        assert_eq!(
            lines(&[immutable_selector(&new, &old).unwrap()]),
            [
                r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"api"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
            ]
        );
    }
}
