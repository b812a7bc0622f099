//! `autoscaling/v1` HorizontalPodAutoscalers, kept in the stored `autoscaling/v2` layout
//! through upstream's conversion: v1's `targetCPUUtilizationPercentage` is a CPU
//! utilisation metric, and what v1 cannot say (other metrics, their current values, the
//! conditions, the scaling behavior) travels in annotations, in the formats upstream writes
//! there, so a v1 client that writes back what it read loses none of it.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v1;
use k8s_openapi::api::autoscaling::v2;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{cpu_utilization, default_v2, DEFAULT_CPU_UTILIZATION};
use crate::error::Cause;
use crate::registry::strategy::Conversion;
use crate::registry::table::{Cell, Column};
use crate::registry::{Description, Strategy};

/// The v2-only spec metrics, as a JSON list of v1 `MetricSpec`s.
const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// The status's current metrics, as a JSON list of v1 `MetricStatus`es.
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// The status's conditions.
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// The scaling behavior, in upstream's internal type (Go field names).
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const ROUND_TRIP: [&str; 4] = [METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR];

pub struct HorizontalPodAutoscalersV1;

impl Strategy for HorizontalPodAutoscalersV1 {
    type Object = v1::HorizontalPodAutoscaler;

    fn describe(&self) -> Description {
        Description {
            conversion: Some(Conversion {
                from_storage: from_v2,
                to_storage: to_v2,
            }),
            ..super::description()
        }
    }

    /// Upstream's v1 defaulting: one replica at least (the CPU target is filled in by the
    /// conversion).
    fn default_fields(&self, hpa: &mut v1::HorizontalPodAutoscaler) {
        hpa.spec
            .get_or_insert_with(Default::default)
            .min_replicas
            .get_or_insert(1);
    }

    fn prepare_create(&self, hpa: &mut v1::HorizontalPodAutoscaler) {
        hpa.status = Some(v1::HorizontalPodAutoscalerStatus::default());
    }

    /// Upstream validates the internal (v2-shaped) object either version converts to.
    fn validate(&self, hpa: &v1::HorizontalPodAutoscaler) -> Vec<Cause> {
        super::validate_spec(convert_up(hpa).spec.as_ref(), 1)
    }

    fn validate_update(
        &self,
        new: &v1::HorizontalPodAutoscaler,
        old: &v1::HorizontalPodAutoscaler,
    ) -> Vec<Cause> {
        let old_min = old.spec.as_ref().and_then(|s| s.min_replicas);
        let bound = if old_min == Some(0) { 0 } else { 1 };
        super::validate_spec(convert_up(new).spec.as_ref(), bound)
    }

    fn columns(&self) -> Vec<Column> {
        super::columns()
    }

    fn cells(&self, hpa: &v1::HorizontalPodAutoscaler) -> Vec<Cell> {
        super::cells(&convert_up(hpa))
    }
}

/// A stored v2 object as v1 serves it.
fn from_v2(stored: &Value) -> Value {
    let Ok(hpa) = serde_json::from_value::<v2::HorizontalPodAutoscaler>(stored.clone()) else {
        return stored.clone();
    };
    with_type(serde_json::to_value(convert_down(&hpa)), "autoscaling/v1")
        .unwrap_or_else(|| stored.clone())
}

/// A v1 object in the stored v2 layout, defaulted as a v2 object read back would be.
fn to_v2(served: &Value) -> Value {
    let Ok(hpa) = serde_json::from_value::<v1::HorizontalPodAutoscaler>(served.clone()) else {
        return served.clone();
    };
    let mut up = convert_up(&hpa);
    default_v2(&mut up);
    with_type(serde_json::to_value(up), "autoscaling/v2").unwrap_or_else(|| served.clone())
}

fn with_type(value: serde_json::Result<Value>, api_version: &str) -> Option<Value> {
    let mut value = value.ok()?;
    value["apiVersion"] = Value::from(api_version);
    value["kind"] = Value::from("HorizontalPodAutoscaler");
    Some(value)
}

/// Upstream's `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`.
pub fn convert_up(hpa: &v1::HorizontalPodAutoscaler) -> v2::HorizontalPodAutoscaler {
    let mut metadata = hpa.metadata.clone();
    let annotations = metadata.annotations.clone().unwrap_or_default();
    let decoded = |key: &str| annotations.get(key).map(String::as_str);
    let spec = hpa.spec.clone().unwrap_or_default();
    let mut metrics: Vec<v2::MetricSpec> = decoded(METRICS)
        .and_then(|text| serde_json::from_str::<Vec<MetricSpecV1>>(text).ok())
        .map(|list| list.into_iter().map(MetricSpecV1::up).collect())
        .unwrap_or_default();
    if let Some(percent) = spec.target_cpu_utilization_percentage {
        metrics.push(cpu_utilization(percent));
    }
    // v1 left the 80% default to the controller; the internal object says it.
    if metrics.is_empty() {
        metrics.push(cpu_utilization(DEFAULT_CPU_UTILIZATION));
    }
    let behavior = decoded(BEHAVIOR)
        .and_then(|text| serde_json::from_str::<BehaviorInternal>(text).ok())
        .filter(|b| b.scale_up.is_some() || b.scale_down.is_some())
        .map(BehaviorInternal::up);
    let status = hpa.status.as_ref().map(|status| {
        let mut current: Vec<v2::MetricStatus> = status
            .current_cpu_utilization_percentage
            .map(|percent| {
                vec![v2::MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(v2::ResourceMetricStatus {
                        name: "cpu".into(),
                        current: v2::MetricValueStatus {
                            average_utilization: Some(percent),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                }]
            })
            .unwrap_or_default();
        // The annotation says more than the single CPU figure.
        if let Some(list) = decoded(CURRENT_METRICS)
            .and_then(|text| serde_json::from_str::<Vec<MetricStatusV1>>(text).ok())
        {
            current = list.into_iter().map(MetricStatusV1::up).collect();
        }
        let conditions = decoded(CONDITIONS)
            .and_then(|text| serde_json::from_str::<Vec<ConditionV1>>(text).ok())
            .map(|list| list.into_iter().map(ConditionV1::up).collect::<Vec<_>>());
        v2::HorizontalPodAutoscalerStatus {
            conditions: conditions.filter(|c| !c.is_empty()),
            current_metrics: (!current.is_empty()).then_some(current),
            current_replicas: (status.current_replicas != 0).then_some(status.current_replicas),
            desired_replicas: status.desired_replicas,
            last_scale_time: status.last_scale_time.clone(),
            observed_generation: status.observed_generation,
        }
    });
    metadata.annotations = drop_round_trip(metadata.annotations.take());
    let reference = spec.scale_target_ref;
    v2::HorizontalPodAutoscaler {
        metadata,
        spec: Some(v2::HorizontalPodAutoscalerSpec {
            behavior,
            max_replicas: spec.max_replicas,
            metrics: Some(metrics),
            min_replicas: spec.min_replicas,
            scale_target_ref: v2::CrossVersionObjectReference {
                api_version: reference.api_version,
                kind: reference.kind,
                name: reference.name,
            },
        }),
        status,
    }
}

/// Upstream's `Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler`.
pub fn convert_down(hpa: &v2::HorizontalPodAutoscaler) -> v1::HorizontalPodAutoscaler {
    let mut metadata = hpa.metadata.clone();
    let spec = hpa.spec.clone().unwrap_or_default();
    let metrics = spec.metrics.clone().unwrap_or_default();
    let is_cpu = |m: &&v2::MetricSpec| {
        m.type_ == "Resource" && m.resource.as_ref().is_some_and(|r| r.name == "cpu")
    };
    let target_cpu = metrics
        .iter()
        .find(is_cpu)
        .and_then(|m| m.resource.as_ref())
        .and_then(|r| r.target.average_utilization);
    let others: Vec<MetricSpecV1> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu(m)
                && m.resource
                    .as_ref()
                    .is_some_and(|r| r.target.average_utilization.is_some()))
        })
        .map(MetricSpecV1::down)
        .collect();
    let status = hpa.status.clone();
    let current = status
        .as_ref()
        .and_then(|s| s.current_metrics.clone())
        .unwrap_or_default();
    let conditions = status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut annotations = drop_round_trip(metadata.annotations.take()).unwrap_or_default();
    let mut note = |key: &str, value: serde_json::Result<String>| {
        if let Ok(text) = value {
            annotations.insert(key.to_string(), text);
        }
    };
    if !others.is_empty() {
        note(METRICS, serde_json::to_string(&others));
    }
    if !current.is_empty() {
        let list: Vec<MetricStatusV1> = current.iter().map(MetricStatusV1::down).collect();
        note(CURRENT_METRICS, serde_json::to_string(&list));
    }
    if let Some(behavior) = &spec.behavior {
        note(
            BEHAVIOR,
            serde_json::to_string(&BehaviorInternal::down(behavior)),
        );
    }
    if !conditions.is_empty() {
        let list: Vec<ConditionV1> = conditions.iter().map(ConditionV1::down).collect();
        note(CONDITIONS, serde_json::to_string(&list));
    }
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    let reference = spec.scale_target_ref;
    v1::HorizontalPodAutoscaler {
        metadata,
        spec: Some(v1::HorizontalPodAutoscalerSpec {
            max_replicas: spec.max_replicas,
            min_replicas: spec.min_replicas,
            scale_target_ref: v1::CrossVersionObjectReference {
                api_version: reference.api_version,
                kind: reference.kind,
                name: reference.name,
            },
            target_cpu_utilization_percentage: target_cpu,
        }),
        status: status.map(|status| v1::HorizontalPodAutoscalerStatus {
            // The last CPU figure, as upstream's loop keeps overwriting it.
            current_cpu_utilization_percentage: current
                .iter()
                .rev()
                .filter(|m| m.type_ == "Resource")
                .filter_map(|m| m.resource.as_ref())
                .filter(|r| r.name == "cpu")
                .find_map(|r| r.current.average_utilization),
            current_replicas: status.current_replicas.unwrap_or(0),
            desired_replicas: status.desired_replicas,
            last_scale_time: status.last_scale_time,
            observed_generation: status.observed_generation,
        }),
    }
}

/// Annotations without the round-trip ones, which only a conversion may write.
fn drop_round_trip(
    annotations: Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let mut annotations = annotations?;
    for key in ROUND_TRIP {
        annotations.remove(key);
    }
    (!annotations.is_empty()).then_some(annotations)
}

fn zero() -> Quantity {
    Quantity("0".into())
}

fn or_zero(quantity: &Option<Quantity>) -> Quantity {
    quantity.clone().unwrap_or_else(zero)
}

/// v1's `CrossVersionObjectReference`, in Go's field order.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ReferenceV1 {
    kind: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
}

impl ReferenceV1 {
    fn up(self) -> v2::CrossVersionObjectReference {
        v2::CrossVersionObjectReference {
            api_version: self.api_version,
            kind: self.kind,
            name: self.name,
        }
    }

    fn down(reference: &v2::CrossVersionObjectReference) -> ReferenceV1 {
        ReferenceV1 {
            kind: reference.kind.clone(),
            name: reference.name.clone(),
            api_version: reference.api_version.clone(),
        }
    }
}

/// v1's `MetricSpec` (the v2beta1 shape) that the metrics annotation holds.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricSpecV1 {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object: Option<ObjectSourceV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pods: Option<PodsSourceV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<ResourceSourceV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container_resource: Option<ResourceSourceV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external: Option<ExternalSourceV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectSourceV1 {
    #[serde(default)]
    target: ReferenceV1,
    #[serde(default)]
    metric_name: String,
    #[serde(default = "zero")]
    target_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    average_value: Option<Quantity>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodsSourceV1 {
    #[serde(default)]
    metric_name: String,
    #[serde(default = "zero")]
    target_average_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<LabelSelector>,
}

/// A `Resource` or (with `container`) `ContainerResource` source.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSourceV1 {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_average_utilization: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalSourceV1 {
    #[serde(default)]
    metric_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metric_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_average_value: Option<Quantity>,
}

impl ResourceSourceV1 {
    /// The target type follows from which figure is set, as upstream infers it.
    fn target(&self) -> v2::MetricTarget {
        v2::MetricTarget {
            type_: if self.target_average_utilization.is_some() {
                "Utilization"
            } else {
                "AverageValue"
            }
            .into(),
            average_utilization: self.target_average_utilization,
            average_value: self.target_average_value.clone(),
            value: None,
        }
    }

    fn down(name: &str, target: &v2::MetricTarget, container: Option<String>) -> Self {
        ResourceSourceV1 {
            name: name.to_string(),
            target_average_utilization: target.average_utilization,
            target_average_value: target.average_value.clone(),
            container,
        }
    }
}

impl MetricSpecV1 {
    fn up(self) -> v2::MetricSpec {
        v2::MetricSpec {
            type_: self.type_,
            object: self.object.map(|o| v2::ObjectMetricSource {
                target: v2::MetricTarget {
                    type_: if o.average_value.is_some() {
                        "AverageValue"
                    } else {
                        "Value"
                    }
                    .into(),
                    value: Some(o.target_value),
                    average_value: o.average_value,
                    average_utilization: None,
                },
                described_object: o.target.up(),
                metric: v2::MetricIdentifier {
                    name: o.metric_name,
                    selector: o.selector,
                },
            }),
            pods: self.pods.map(|p| v2::PodsMetricSource {
                metric: v2::MetricIdentifier {
                    name: p.metric_name,
                    selector: p.selector,
                },
                target: v2::MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(p.target_average_value),
                    ..Default::default()
                },
            }),
            resource: self.resource.map(|r| v2::ResourceMetricSource {
                target: r.target(),
                name: r.name,
            }),
            container_resource: self.container_resource.map(|r| {
                v2::ContainerResourceMetricSource {
                    target: r.target(),
                    container: r.container.unwrap_or_default(),
                    name: r.name,
                }
            }),
            external: self.external.map(|e| v2::ExternalMetricSource {
                metric: v2::MetricIdentifier {
                    name: e.metric_name,
                    selector: e.metric_selector,
                },
                target: v2::MetricTarget {
                    type_: if e.target_value.is_some() {
                        "Value"
                    } else {
                        "AverageValue"
                    }
                    .into(),
                    value: e.target_value,
                    average_value: e.target_average_value,
                    average_utilization: None,
                },
            }),
        }
    }

    fn down(metric: &v2::MetricSpec) -> MetricSpecV1 {
        MetricSpecV1 {
            type_: metric.type_.clone(),
            object: metric.object.as_ref().map(|o| ObjectSourceV1 {
                target: ReferenceV1::down(&o.described_object),
                metric_name: o.metric.name.clone(),
                target_value: or_zero(&o.target.value),
                selector: o.metric.selector.clone(),
                average_value: o.target.average_value.clone(),
            }),
            pods: metric.pods.as_ref().map(|p| PodsSourceV1 {
                metric_name: p.metric.name.clone(),
                target_average_value: or_zero(&p.target.average_value),
                selector: p.metric.selector.clone(),
            }),
            resource: metric
                .resource
                .as_ref()
                .map(|r| ResourceSourceV1::down(&r.name, &r.target, None)),
            container_resource: metric
                .container_resource
                .as_ref()
                .map(|r| ResourceSourceV1::down(&r.name, &r.target, Some(r.container.clone()))),
            external: metric.external.as_ref().map(|e| ExternalSourceV1 {
                metric_name: e.metric.name.clone(),
                metric_selector: e.metric.selector.clone(),
                target_value: e.target.value.clone(),
                target_average_value: e.target.average_value.clone(),
            }),
        }
    }
}

/// v1's `MetricStatus` that the current-metrics annotation holds.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricStatusV1 {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object: Option<ObjectStatusV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pods: Option<PodsStatusV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<ResourceStatusV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container_resource: Option<ResourceStatusV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external: Option<ExternalStatusV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectStatusV1 {
    #[serde(default)]
    target: ReferenceV1,
    #[serde(default)]
    metric_name: String,
    #[serde(default = "zero")]
    current_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    average_value: Option<Quantity>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodsStatusV1 {
    #[serde(default)]
    metric_name: String,
    #[serde(default = "zero")]
    current_average_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceStatusV1 {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_average_utilization: Option<i32>,
    #[serde(default = "zero")]
    current_average_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExternalStatusV1 {
    #[serde(default)]
    metric_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metric_selector: Option<LabelSelector>,
    #[serde(default = "zero")]
    current_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_average_value: Option<Quantity>,
}

impl ResourceStatusV1 {
    fn current(&self) -> v2::MetricValueStatus {
        v2::MetricValueStatus {
            average_utilization: self.current_average_utilization,
            average_value: Some(self.current_average_value.clone()),
            value: None,
        }
    }

    fn down(name: &str, current: &v2::MetricValueStatus, container: Option<String>) -> Self {
        ResourceStatusV1 {
            name: name.to_string(),
            current_average_utilization: current.average_utilization,
            current_average_value: or_zero(&current.average_value),
            container,
        }
    }
}

impl MetricStatusV1 {
    fn up(self) -> v2::MetricStatus {
        v2::MetricStatus {
            type_: self.type_,
            object: self.object.map(|o| v2::ObjectMetricStatus {
                current: v2::MetricValueStatus {
                    value: Some(o.current_value),
                    average_value: o.average_value,
                    average_utilization: None,
                },
                described_object: o.target.up(),
                metric: v2::MetricIdentifier {
                    name: o.metric_name,
                    selector: o.selector,
                },
            }),
            pods: self.pods.map(|p| v2::PodsMetricStatus {
                current: v2::MetricValueStatus {
                    average_value: Some(p.current_average_value),
                    ..Default::default()
                },
                metric: v2::MetricIdentifier {
                    name: p.metric_name,
                    selector: p.selector,
                },
            }),
            resource: self.resource.map(|r| v2::ResourceMetricStatus {
                current: r.current(),
                name: r.name,
            }),
            container_resource: self.container_resource.map(|r| {
                v2::ContainerResourceMetricStatus {
                    current: r.current(),
                    container: r.container.unwrap_or_default(),
                    name: r.name,
                }
            }),
            external: self.external.map(|e| v2::ExternalMetricStatus {
                current: v2::MetricValueStatus {
                    value: Some(e.current_value),
                    average_value: e.current_average_value,
                    average_utilization: None,
                },
                metric: v2::MetricIdentifier {
                    name: e.metric_name,
                    selector: e.metric_selector,
                },
            }),
        }
    }

    fn down(status: &v2::MetricStatus) -> MetricStatusV1 {
        MetricStatusV1 {
            type_: status.type_.clone(),
            object: status.object.as_ref().map(|o| ObjectStatusV1 {
                target: ReferenceV1::down(&o.described_object),
                metric_name: o.metric.name.clone(),
                current_value: or_zero(&o.current.value),
                selector: o.metric.selector.clone(),
                average_value: o.current.average_value.clone(),
            }),
            pods: status.pods.as_ref().map(|p| PodsStatusV1 {
                metric_name: p.metric.name.clone(),
                current_average_value: or_zero(&p.current.average_value),
                selector: p.metric.selector.clone(),
            }),
            resource: status
                .resource
                .as_ref()
                .map(|r| ResourceStatusV1::down(&r.name, &r.current, None)),
            container_resource: status
                .container_resource
                .as_ref()
                .map(|r| ResourceStatusV1::down(&r.name, &r.current, Some(r.container.clone()))),
            external: status.external.as_ref().map(|e| ExternalStatusV1 {
                metric_name: e.metric.name.clone(),
                metric_selector: e.metric.selector.clone(),
                current_value: or_zero(&e.current.value),
                current_average_value: e.current.average_value.clone(),
            }),
        }
    }
}

/// v1's `HorizontalPodAutoscalerCondition`, in Go's field order.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConditionV1 {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl ConditionV1 {
    fn up(self) -> v2::HorizontalPodAutoscalerCondition {
        v2::HorizontalPodAutoscalerCondition {
            last_transition_time: self.last_transition_time,
            message: self.message,
            reason: self.reason,
            status: self.status,
            type_: self.type_,
        }
    }

    fn down(condition: &v2::HorizontalPodAutoscalerCondition) -> ConditionV1 {
        ConditionV1 {
            type_: condition.type_.clone(),
            status: condition.status.clone(),
            last_transition_time: condition.last_transition_time.clone(),
            reason: condition.reason.clone(),
            message: condition.message.clone(),
        }
    }
}

/// The behavior as upstream's internal Go type marshals it: field names as written in Go,
/// nil pointers as `null`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BehaviorInternal {
    #[serde(default)]
    scale_up: Option<RulesInternal>,
    #[serde(default)]
    scale_down: Option<RulesInternal>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RulesInternal {
    #[serde(default)]
    stabilization_window_seconds: Option<i32>,
    #[serde(default)]
    select_policy: Option<String>,
    #[serde(default)]
    policies: Option<Vec<PolicyInternal>>,
    #[serde(default)]
    tolerance: Option<Quantity>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyInternal {
    #[serde(rename = "Type")]
    type_: String,
    value: i32,
    period_seconds: i32,
}

impl BehaviorInternal {
    fn up(self) -> v2::HorizontalPodAutoscalerBehavior {
        let rules = |r: RulesInternal| v2::HPAScalingRules {
            stabilization_window_seconds: r.stabilization_window_seconds,
            select_policy: r.select_policy,
            policies: r.policies.map(|list| {
                list.into_iter()
                    .map(|p| v2::HPAScalingPolicy {
                        type_: p.type_,
                        value: p.value,
                        period_seconds: p.period_seconds,
                    })
                    .collect()
            }),
            tolerance: r.tolerance,
        };
        v2::HorizontalPodAutoscalerBehavior {
            scale_up: self.scale_up.map(rules),
            scale_down: self.scale_down.map(rules),
        }
    }

    fn down(behavior: &v2::HorizontalPodAutoscalerBehavior) -> BehaviorInternal {
        let rules = |r: &v2::HPAScalingRules| RulesInternal {
            stabilization_window_seconds: r.stabilization_window_seconds,
            select_policy: r.select_policy.clone(),
            policies: r.policies.as_ref().map(|list| {
                list.iter()
                    .map(|p| PolicyInternal {
                        type_: p.type_.clone(),
                        value: p.value,
                        period_seconds: p.period_seconds,
                    })
                    .collect()
            }),
            tolerance: r.tolerance.clone(),
        };
        BehaviorInternal {
            scale_up: behavior.scale_up.as_ref().map(rules),
            scale_down: behavior.scale_down.as_ref().map(rules),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cpu_target_round_trips_and_defaults_to_80() {
        let written = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}
        });
        let stored = to_v2(&written);
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert_eq!(from_v2(&stored), written);

        let mut bare = written.clone();
        bare["spec"]
            .as_object_mut()
            .unwrap()
            .remove("targetCPUUtilizationPercentage");
        let served = from_v2(&to_v2(&bare));
        assert_eq!(served["spec"]["targetCPUUtilizationPercentage"], 80);
    }

    #[test]
    fn v2_only_fields_travel_in_annotations() {
        let stored = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"team": "a"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
                     ],
                     "behavior": {"scaleDown": {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "100m"}}}],
                       "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]}
        });
        let served = from_v2(&stored);
        let annotations = &served["metadata"]["annotations"];
        assert_eq!(annotations["team"], "a");
        assert_eq!(
            annotations[METRICS],
            r#"[{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"10"}}]"#
        );
        assert_eq!(
            annotations[CURRENT_METRICS],
            r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":40,"currentAverageValue":"100m"}}]"#
        );
        assert_eq!(
            annotations[BEHAVIOR],
            r#"{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":null,"SelectPolicy":"Max","Policies":[{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null}}"#
        );
        assert_eq!(
            annotations[CONDITIONS],
            r#"[{"type":"AbleToScale","status":"True","reason":"ReadyForNewScale"}]"#
        );
        assert_eq!(served["spec"]["targetCPUUtilizationPercentage"], 70);
        assert_eq!(served["status"]["currentCPUUtilizationPercentage"], 40);
        // Written back as read, the v2 object is whole again, without the annotations.
        let back = to_v2(&served);
        assert_eq!(back["metadata"]["annotations"], json!({"team": "a"}));
        assert_eq!(back["status"], stored["status"]);
        let metrics = back["spec"]["metrics"].as_array().unwrap();
        assert_eq!(metrics[0], stored["spec"]["metrics"][1]);
        assert_eq!(metrics[1], stored["spec"]["metrics"][0]);
        assert_eq!(
            back["spec"]["behavior"]["scaleDown"],
            stored["spec"]["behavior"]["scaleDown"]
        );
    }
}
