//! HorizontalPodAutoscalers: stored and served as `autoscaling/v2`, also served as
//! `autoscaling/v1` through upstream's conversion ([`v1`]). Only the API: no controller
//! acts on them here, as there is no metrics API to read utilisation from.

pub mod v1;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus,
    MetricIdentifier, MetricSpec, MetricStatus, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use machinery::quantity::Quantity as Amount;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{validation, Description, NameRule, Strategy};

pub struct HorizontalPodAutoscalers;

/// What upstream's autoscalers aim for when no metric is given: 80% CPU utilisation.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;
/// Upstream's bounds of a scaling rule's stabilization window and a policy's period.
const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
const MAX_PERIOD_SECONDS: i32 = 1800;

const REFERENCE: &str = "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.";
const TARGETS: &str = "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.";
const MIN_PODS: &str = "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.";
const MAX_PODS: &str = "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.";
const REPLICAS: &str = "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.";

impl Strategy for HorizontalPodAutoscalers {
    type Object = HorizontalPodAutoscaler;

    fn describe(&self) -> Description {
        description()
    }

    fn default_fields(&self, hpa: &mut HorizontalPodAutoscaler) {
        default_v2(hpa);
    }

    fn prepare_create(&self, hpa: &mut HorizontalPodAutoscaler) {
        hpa.status = Some(HorizontalPodAutoscalerStatus::default());
    }

    fn validate(&self, hpa: &HorizontalPodAutoscaler) -> Vec<Cause> {
        validate_spec(hpa.spec.as_ref(), 1)
    }

    /// An autoscaler already at `minReplicas: 0` may stay there.
    fn validate_update(
        &self,
        new: &HorizontalPodAutoscaler,
        old: &HorizontalPodAutoscaler,
    ) -> Vec<Cause> {
        let old_min = old.spec.as_ref().and_then(|s| s.min_replicas);
        validate_spec(new.spec.as_ref(), if old_min == Some(0) { 0 } else { 1 })
    }

    fn columns(&self) -> Vec<Column> {
        columns()
    }

    fn cells(&self, hpa: &HorizontalPodAutoscaler) -> Vec<Cell> {
        cells(hpa)
    }
}

/// Discovery's facts, the same in both versions.
fn description() -> Description {
    Description {
        short_names: &["hpa"],
        categories: &["all"],
        status: true,
        name_rule: NameRule::Subdomain,
        ..Description::default()
    }
}

/// Upstream's `SetDefaults_HorizontalPodAutoscaler` (autoscaling/v2): one replica at least,
/// 80% CPU when no metric is given, and a given `behavior` completed with the default
/// scaling rules.
pub fn default_v2(hpa: &mut HorizontalPodAutoscaler) {
    let spec = hpa
        .spec
        .get_or_insert_with(HorizontalPodAutoscalerSpec::default);
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
        spec.metrics = Some(vec![cpu_utilization(DEFAULT_CPU_UTILIZATION)]);
    }
    if let Some(behavior) = &mut spec.behavior {
        behavior.scale_up = Some(complete_rules(behavior.scale_up.take(), scale_up_rules()));
        behavior.scale_down = Some(complete_rules(
            behavior.scale_down.take(),
            scale_down_rules(),
        ));
    }
}

/// A `Resource` metric aiming at `percent` average CPU utilisation.
pub fn cpu_utilization(percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

fn policy(type_: &str, value: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    }
}

/// Scaling up: no stabilization, the larger of 4 pods or 100% per 15 seconds.
fn scale_up_rules() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![policy("Pods", 4), policy("Percent", 100)]),
        tolerance: None,
    }
}

/// Scaling down: 100% per 15 seconds; the window is left to the controller's flag.
fn scale_down_rules() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: None,
        select_policy: Some("Max".into()),
        policies: Some(vec![policy("Percent", 100)]),
        tolerance: None,
    }
}

/// The defaults with what `given` sets.
fn complete_rules(given: Option<HPAScalingRules>, defaults: HPAScalingRules) -> HPAScalingRules {
    let Some(given) = given else { return defaults };
    HPAScalingRules {
        stabilization_window_seconds: given
            .stabilization_window_seconds
            .or(defaults.stabilization_window_seconds),
        select_policy: given.select_policy.or(defaults.select_policy),
        policies: given.policies.or(defaults.policies),
        tolerance: given.tolerance,
    }
}

/// Upstream's `validateHorizontalPodAutoscalerSpec`; `min_bound` is the least
/// `minReplicas` allowed.
pub fn validate_spec(spec: Option<&HorizontalPodAutoscalerSpec>, min_bound: i32) -> Vec<Cause> {
    let default_spec = HorizontalPodAutoscalerSpec::default();
    let spec = spec.unwrap_or(&default_spec);
    let mut causes = Vec::new();
    if let Some(min) = spec.min_replicas.filter(|m| *m < min_bound) {
        causes.push(Cause::invalid(
            "spec.minReplicas",
            &Value::from(min),
            format!("must be greater than or equal to {min_bound}"),
        ));
    }
    if spec.max_replicas < 1 {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &Value::from(spec.max_replicas),
            "must be greater than 0",
        ));
    }
    if spec.min_replicas.is_some_and(|min| spec.max_replicas < min) {
        causes.push(Cause::invalid(
            "spec.maxReplicas",
            &Value::from(spec.max_replicas),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    causes.extend(validate_reference(
        &spec.scale_target_ref,
        "spec.scaleTargetRef",
    ));
    let metrics = spec.metrics.as_deref().unwrap_or_default();
    for (i, metric) in metrics.iter().enumerate() {
        causes.extend(validate_metric(metric, &format!("spec.metrics[{i}]")));
    }
    let scales_to_zero = metrics
        .iter()
        .any(|m| m.type_ == "Object" || m.type_ == "External");
    if spec.min_replicas == Some(0) && !scales_to_zero {
        causes.push(Cause::forbidden(
            "spec.metrics",
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    if let Some(behavior) = &spec.behavior {
        causes.extend(validate_behavior(behavior));
    }
    causes
}

fn validate_reference(reference: &CrossVersionObjectReference, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (field, value) in [("kind", &reference.kind), ("name", &reference.name)] {
        if value.is_empty() {
            causes.push(Cause::required(format!("{path}.{field}")));
        }
        for message in validation::name_errors(value, NameRule::PathSegment) {
            causes.push(Cause::invalid(
                format!("{path}.{field}"),
                &Value::from(value.as_str()),
                message,
            ));
        }
    }
    causes
}

const METRIC_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

/// Upstream's `validateMetricSpec`: a known type, whose source (and only that one) is given
/// and valid.
fn validate_metric(metric: &MetricSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if metric.type_.is_empty() {
        causes.push(Cause::required_because(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    let present: Vec<&str> = [
        ("object", metric.object.is_some()),
        ("external", metric.external.is_some()),
        ("pods", metric.pods.is_some()),
        ("resource", metric.resource.is_some()),
        ("containerResource", metric.container_resource.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .map(|(field, _)| field)
    .collect();
    // Only the first source given is looked into, as upstream does.
    if let Some(source) = &metric.object {
        let at = format!("{path}.object");
        causes.extend(validate_reference(
            &source.described_object,
            &format!("{at}.describedObject"),
        ));
        causes.extend(validate_identifier(&source.metric, &at));
        causes.extend(validate_target(&source.target, &at));
        if source.target.value.is_none() && source.target.average_value.is_none() {
            causes.push(Cause::required_because(
                format!("{at}.target.averageValue"),
                "must set either a target value or averageValue",
            ));
        }
    } else if let Some(source) = &metric.external {
        let at = format!("{path}.external");
        causes.extend(validate_identifier(&source.metric, &at));
        causes.extend(validate_target(&source.target, &at));
        let target = &source.target;
        if target.value.is_none() && target.average_value.is_none() {
            causes.push(Cause::required_because(
                format!("{at}.target.averageValue"),
                "must set either a target value for metric or a per-pod target",
            ));
        }
        if target.value.is_some() && target.average_value.is_some() {
            causes.push(Cause::forbidden(
                format!("{at}.target.value"),
                "may not set both a target value for metric and a per-pod target",
            ));
        }
    } else if let Some(source) = &metric.pods {
        let at = format!("{path}.pods");
        causes.extend(validate_identifier(&source.metric, &at));
        causes.extend(validate_target(&source.target, &at));
        if source.target.average_value.is_none() {
            causes.push(Cause::required_because(
                format!("{at}.target.averageValue"),
                "must specify a positive target averageValue",
            ));
        }
    } else if let Some(source) = &metric.resource {
        causes.extend(validate_resource_target(
            &source.name,
            &source.target,
            &format!("{path}.resource"),
        ));
    } else if let Some(source) = &metric.container_resource {
        let at = format!("{path}.containerResource");
        causes.extend(validate_resource_target(&source.name, &source.target, &at));
        if source.container.is_empty() {
            causes.push(Cause::required_because(
                format!("{at}.container"),
                "must specify a container",
            ));
        } else if !validation::is_dns1123_label(&source.container) {
            causes.push(Cause::invalid(
                format!("{at}.container"),
                &Value::from(source.container.as_str()),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ));
        }
    }
    let expected = match metric.type_.as_str() {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "External" => "external",
        "ContainerResource" => "containerResource",
        other => {
            causes.push(Cause::unsupported(
                format!("{path}.type"),
                &Value::from(other),
                METRIC_TYPES,
            ));
            ""
        }
    };
    if !expected.is_empty() && !present.contains(&expected) {
        causes.push(Cause::required_because(
            format!("{path}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        for field in present.iter().filter(|f| **f != expected) {
            causes.push(Cause::forbidden(
                format!("{path}.{field}"),
                "must populate the given metric source only",
            ));
        }
    }
    causes
}

fn validate_identifier(metric: &MetricIdentifier, at: &str) -> Vec<Cause> {
    let path = format!("{at}.metric.name");
    if metric.name.is_empty() {
        return vec![Cause::required_because(path, "must specify a metric name")];
    }
    validation::name_errors(&metric.name, NameRule::PathSegment)
        .into_iter()
        .map(|message| Cause::invalid(&path, &Value::from(metric.name.as_str()), message))
        .collect()
}

fn validate_resource_target(name: &str, target: &MetricTarget, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::required_because(
            format!("{at}.name"),
            "must specify a resource name",
        ));
    }
    causes.extend(validate_target(target, at));
    if target.average_utilization.is_none() && target.average_value.is_none() {
        causes.push(Cause::required_because(
            format!("{at}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if target.average_utilization.is_some() && target.average_value.is_some() {
        causes.push(Cause::forbidden(
            format!("{at}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
    causes
}

/// Upstream's `validateMetricTarget`.
fn validate_target(target: &MetricTarget, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let path = format!("{at}.target");
    if target.type_.is_empty() {
        causes.push(Cause::required_because(
            format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(
        target.type_.as_str(),
        "Utilization" | "Value" | "AverageValue"
    ) {
        causes.push(Cause::invalid(
            format!("{path}.type"),
            &Value::from(target.type_.as_str()),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for (field, quantity) in [
        ("value", &target.value),
        ("averageValue", &target.average_value),
    ] {
        if let Some(quantity) = quantity.as_ref().filter(|q| !positive(q)) {
            causes.push(Cause::invalid_printed(
                format!("{path}.{field}"),
                &quantity.0,
                "must be positive",
            ));
        }
    }
    if let Some(utilization) = target.average_utilization.filter(|u| *u < 1) {
        causes.push(Cause::invalid(
            format!("{path}.averageUtilization"),
            &Value::from(utilization),
            "must be greater than 0",
        ));
    }
    causes
}

fn positive(quantity: &Quantity) -> bool {
    Amount::parse(&quantity.0).is_some_and(|q| q.is_positive())
}

fn validate_behavior(behavior: &HorizontalPodAutoscalerBehavior) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (field, rules) in [
        ("scaleUp", &behavior.scale_up),
        ("scaleDown", &behavior.scale_down),
    ] {
        if let Some(rules) = rules {
            causes.extend(validate_rules(rules, &format!("spec.behavior.{field}")));
        }
    }
    causes
}

fn validate_rules(rules: &HPAScalingRules, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(window) = rules.stabilization_window_seconds {
        let path = format!("{at}.stabilizationWindowSeconds");
        if window < 0 {
            causes.push(Cause::invalid(
                &path,
                &Value::from(window),
                "must be greater than or equal to zero",
            ));
        }
        if window > MAX_STABILIZATION_WINDOW_SECONDS {
            causes.push(Cause::invalid(
                &path,
                &Value::from(window),
                format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    if let Some(select) = rules
        .select_policy
        .as_deref()
        .filter(|p| !matches!(*p, "Disabled" | "Max" | "Min"))
    {
        causes.push(Cause::unsupported(
            format!("{at}.selectPolicy"),
            &Value::from(select),
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = rules.policies.as_deref().unwrap_or_default();
    if policies.is_empty() {
        causes.push(Cause::required_because(
            format!("{at}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let path = format!("{at}.policies[{i}]");
        if !matches!(policy.type_.as_str(), "Pods" | "Percent") {
            causes.push(Cause::unsupported(
                format!("{path}.type"),
                &Value::from(policy.type_.as_str()),
                &["Percent", "Pods"],
            ));
        }
        if policy.value <= 0 {
            causes.push(Cause::invalid(
                format!("{path}.value"),
                &Value::from(policy.value),
                "must be greater than zero",
            ));
        }
        let period = policy.period_seconds;
        if period <= 0 {
            causes.push(Cause::invalid(
                format!("{path}.periodSeconds"),
                &Value::from(period),
                "must be greater than zero",
            ));
        }
        if period > MAX_PERIOD_SECONDS {
            causes.push(Cause::invalid(
                format!("{path}.periodSeconds"),
                &Value::from(period),
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
    causes
}

fn columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Reference", "string", REFERENCE),
        Column::new("Targets", "string", TARGETS),
        Column::new("MinPods", "string", MIN_PODS),
        Column::new("MaxPods", "string", MAX_PODS),
        Column::new("Replicas", "string", REPLICAS),
        Column::age(),
    ]
}

fn cells(hpa: &HorizontalPodAutoscaler) -> Vec<Cell> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let status = hpa.status.clone().unwrap_or_default();
    let reference = format!(
        "{}/{}",
        spec.scale_target_ref.kind, spec.scale_target_ref.name
    );
    let min_pods = spec
        .min_replicas
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    vec![
        Cell::from(hpa.metadata.name.clone().unwrap_or_default()),
        Cell::from(reference),
        Cell::from(targets(
            spec.metrics.as_deref().unwrap_or_default(),
            status.current_metrics.as_deref().unwrap_or_default(),
        )),
        Cell::from(min_pods),
        Cell::from(spec.max_replicas),
        Cell::from(status.current_replicas.unwrap_or(0)),
        age(&hpa.metadata),
    ]
}

/// Upstream's `formatHPAMetrics`: each metric as `current/target` (`<unknown>` until
/// measured), at most two, then how many more.
fn targets(specs: &[MetricSpec], statuses: &[MetricStatus]) -> String {
    const SHOWN: usize = 2;
    if specs.is_empty() {
        return "<none>".into();
    }
    let unknown = || "<unknown>".to_string();
    let text = |q: &Option<Quantity>| q.as_ref().map_or_else(|| "0".into(), |q| q.0.clone());
    let percent = |u: Option<i32>| u.map(|u| format!("{u}%"));
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i);
            match spec.type_.as_str() {
                "External" => {
                    let target = spec.external.as_ref().map(|s| &s.target);
                    let current = status.and_then(|s| s.external.as_ref()).map(|s| &s.current);
                    match target.and_then(|t| t.average_value.as_ref()) {
                        Some(average) => format!(
                            "{}/{} (avg)",
                            current
                                .and_then(|c| c.average_value.as_ref())
                                .map_or_else(unknown, |q| q.0.clone()),
                            average.0
                        ),
                        None => format!(
                            "{}/{}",
                            current.map_or_else(unknown, |c| text(&c.value)),
                            target.map_or_else(|| "0".into(), |t| text(&t.value))
                        ),
                    }
                }
                "Pods" => format!(
                    "{}/{}",
                    status
                        .and_then(|s| s.pods.as_ref())
                        .map_or_else(unknown, |s| text(&s.current.average_value)),
                    spec.pods
                        .as_ref()
                        .map_or_else(|| "0".into(), |s| text(&s.target.average_value))
                ),
                "Object" => {
                    let target = spec.object.as_ref().map(|s| &s.target);
                    let current = status.and_then(|s| s.object.as_ref()).map(|s| &s.current);
                    match target.and_then(|t| t.average_value.as_ref()) {
                        Some(average) => format!(
                            "{}/{} (avg)",
                            current
                                .and_then(|c| c.average_value.as_ref())
                                .map_or_else(unknown, |q| q.0.clone()),
                            average.0
                        ),
                        None => format!(
                            "{}/{}",
                            current.map_or_else(unknown, |c| text(&c.value)),
                            target.map_or_else(|| "0".into(), |t| text(&t.value))
                        ),
                    }
                }
                "Resource" | "ContainerResource" => {
                    let (name, target, current) = if spec.type_ == "Resource" {
                        (
                            spec.resource.as_ref().map(|s| s.name.clone()),
                            spec.resource.as_ref().map(|s| s.target.clone()),
                            status
                                .and_then(|s| s.resource.as_ref())
                                .map(|s| s.current.clone()),
                        )
                    } else {
                        (
                            spec.container_resource.as_ref().map(|s| s.name.clone()),
                            spec.container_resource.as_ref().map(|s| s.target.clone()),
                            status
                                .and_then(|s| s.container_resource.as_ref())
                                .map(|s| s.current.clone()),
                        )
                    };
                    let name = name.unwrap_or_default();
                    let target = target.unwrap_or_default();
                    match &target.average_value {
                        Some(average) => format!(
                            "{name}: {}/{}",
                            current.map_or_else(unknown, |c| text(&c.average_value)),
                            average.0
                        ),
                        None => format!(
                            "{name}: {}/{}",
                            current
                                .and_then(|c| percent(c.average_utilization))
                                .unwrap_or_else(unknown),
                            percent(target.average_utilization).unwrap_or_else(|| "<auto>".into())
                        ),
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    let shown = list
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        format!("{shown} + {} more...", list.len() - SHOWN)
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn hpa(value: Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(value).unwrap()
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn defaults_to_80_percent_cpu_and_completes_behavior() {
        let mut web = hpa(json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 5,
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}
        }));
        HorizontalPodAutoscalers.default_fields(&mut web);
        HorizontalPodAutoscalers.prepare_create(&mut web);
        assert!(HorizontalPodAutoscalers.validate(&web).is_empty());
        let value = serde_json::to_value(&web).unwrap();
        assert_eq!(value["spec"]["minReplicas"], 1);
        assert_eq!(
            value["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(
            value["spec"]["behavior"],
            json!({
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                         {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                              "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
            })
        );
        assert_eq!(value["status"], json!({"desiredReplicas": 0}));
        let cells = rendered(
            &HorizontalPodAutoscalers.cells(&web),
            jiff::Timestamp::now(),
        );
        assert_eq!(
            cells[..6],
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(5),
                json!(0)
            ]
        );
    }

    #[test]
    fn validation_speaks_upstream() {
        let bad = hpa(json!({
            "metadata": {"name": "bad"},
            "spec": {"scaleTargetRef": {"kind": "", "name": "a/b"}, "minReplicas": 3, "maxReplicas": 2,
                     "metrics": [{"type": "Pods", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}],
                     "behavior": {"scaleUp": {"policies": [], "selectPolicy": "Fastest"}}}
        }));
        assert_eq!(
            lines(&HorizontalPodAutoscalers.validate(&bad)),
            [
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.kind: Required value",
                "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'",
                "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
                "spec.metrics[0].pods: Required value: must populate information for the given metric source",
                "spec.behavior.scaleUp.selectPolicy: Unsupported value: \"Fastest\": supported values: \"Disabled\", \"Max\", \"Min\"",
                "spec.behavior.scaleUp.policies: Required value: must specify at least one Policy",
            ]
        );
    }

    #[test]
    fn targets_print_like_kubectl() {
        let specs: Vec<MetricSpec> = serde_json::from_value(json!([
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}}
        ]))
        .unwrap();
        let statuses: Vec<MetricStatus> = serde_json::from_value(json!([
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}}
        ]))
        .unwrap();
        assert_eq!(
            targets(&specs, &statuses),
            "memory: 50Mi/100Mi, <unknown>/10 + 1 more..."
        );
    }
}
