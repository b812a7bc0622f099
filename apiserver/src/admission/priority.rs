//! `Priority`: a new pod's `spec.priority` and `spec.preemptionPolicy` come from its
//! PriorityClass (or the global default class), and may not be set to anything else; an
//! update that leaves them out keeps them.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::{Map, Value};

use super::{Attributes, Lookup, Operation, Plugin};
use crate::error::ApiResult;

/// What a pod gets when it names no class and no class is the global default.
const DEFAULT_PRIORITY: i32 = 0;
const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// The system classes, in case they have not been written yet (upstream resolves them
/// without a lookup too).
const SYSTEM_CLASSES: [(&str, i32); 2] = [
    ("system-cluster-critical", 2_000_000_000),
    ("system-node-critical", 2_000_001_000),
];

pub struct Priority {
    lookup: Arc<Lookup>,
}

/// A resolved class: its name, priority and preemption policy.
type Resolved = (String, i32, String);

impl Priority {
    pub fn new(lookup: Arc<Lookup>) -> Self {
        Priority { lookup }
    }

    /// The class `name`, or for `""` the global default class (the lowest if several claim
    /// it); `None` if there is no such class.
    async fn resolve(&self, name: &str) -> ApiResult<Option<Resolved>> {
        let read = |raw: &[u8]| -> Option<PriorityClass> { serde_json::from_slice(raw).ok() };
        let resolved = |class: PriorityClass| {
            let policy = class
                .preemption_policy
                .unwrap_or_else(|| DEFAULT_PREEMPTION.into());
            (class.metadata.name.unwrap_or_default(), class.value, policy)
        };
        if !name.is_empty() {
            let found = self
                .lookup
                .get(&format!("/priorityclasses/{name}"))
                .await?
                .and_then(|raw| read(&raw));
            let system = || {
                SYSTEM_CLASSES
                    .iter()
                    .find(|(system, _)| *system == name)
                    .map(|(name, value)| (name.to_string(), *value, DEFAULT_PREEMPTION.into()))
            };
            return Ok(found.map(resolved).or_else(system));
        }
        let all = self.lookup.list("/priorityclasses/").await?;
        Ok(all
            .iter()
            .filter_map(|raw| read(raw))
            .filter(|class| class.global_default == Some(true))
            .min_by_key(|class| class.value)
            .map(resolved))
    }
}

#[async_trait]
impl Plugin for Priority {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.resource.is_core("pods")
            && attributes.subresource.is_none()
            && matches!(attributes.operation, Operation::Create | Operation::Update)
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        if attributes.operation == Operation::Update {
            return keep_old_priority(attributes);
        }
        let Some(spec) = spec(attributes)? else {
            return Ok(());
        };
        let class = spec
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (default_class, priority, preemption) = match self.resolve(&class).await? {
            Some(resolved) => resolved,
            None if class.is_empty() => (
                String::new(),
                DEFAULT_PRIORITY,
                DEFAULT_PREEMPTION.to_string(),
            ),
            None => {
                return Err(
                    attributes.forbidden(format!("no PriorityClass with name {class} was found"))
                )
            }
        };
        let given_priority = spec.get("priority").and_then(Value::as_i64);
        let given_preemption = spec
            .get("preemptionPolicy")
            .and_then(Value::as_str)
            .map(String::from);
        if let Some(given) = given_priority.filter(|given| *given != i64::from(priority)) {
            return Err(attributes.forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        if let Some(given) = given_preemption.filter(|given| *given != preemption) {
            return Err(attributes.forbidden(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {preemption} from the given PriorityClass name"
            )));
        }
        let Some(spec) = spec_mut(attributes)? else {
            return Ok(());
        };
        if class.is_empty() && !default_class.is_empty() {
            spec.insert("priorityClassName".into(), default_class.into());
        }
        spec.insert("priority".into(), priority.into());
        spec.insert("preemptionPolicy".into(), preemption.into());
        Ok(())
    }
}

/// Upstream sets the priority only on create; an update leaving it (or the preemption
/// policy) out keeps the old one rather than failing pod immutability.
fn keep_old_priority(attributes: &mut Attributes<'_>) -> ApiResult<()> {
    let old = attributes.old_object()?.map(|old| {
        let field = |name: &str| old.pointer(&format!("/spec/{name}")).cloned();
        [
            ("priority", field("priority")),
            ("preemptionPolicy", field("preemptionPolicy")),
        ]
    });
    let Some(old) = old else {
        return Ok(());
    };
    let Some(spec) = spec(attributes)? else {
        return Ok(());
    };
    let missing: Vec<_> = old
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .filter(|(name, _)| spec.get(*name).is_none_or(Value::is_null))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if let Some(spec) = spec_mut(attributes)? {
        for (name, value) in missing {
            spec.insert(name.into(), value);
        }
    }
    Ok(())
}

/// The pod's spec, if the object is a pod with one.
fn spec<'v>(attributes: &'v Attributes<'_>) -> ApiResult<Option<&'v Map<String, Value>>> {
    Ok(attributes
        .object()?
        .and_then(|pod| pod.get("spec"))
        .and_then(Value::as_object))
}

fn spec_mut<'v>(
    attributes: &'v mut Attributes<'_>,
) -> ApiResult<Option<&'v mut Map<String, Value>>> {
    Ok(attributes
        .object_mut()?
        .and_then(|pod| pod.get_mut("spec"))
        .and_then(Value::as_object_mut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{pod_attributes, user, Fixture};
    use serde_json::json;

    #[tokio::test]
    async fn priority_comes_from_the_class() {
        let fixture = Fixture::new().await;
        fixture
            .put(
                "/priorityclasses/high",
                r#"{"metadata":{"name":"high"},"value":1000,"preemptionPolicy":"Never"}"#,
            )
            .await;
        let plugin = Priority::new(fixture.lookup());
        let user = user();

        let pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "high"}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        plugin.admit(&mut attributes).await.unwrap();
        let spec = attributes.into_changed().unwrap()["spec"].clone();
        assert_eq!(
            (spec["priority"].clone(), spec["preemptionPolicy"].clone()),
            (json!(1000), json!("Never"))
        );

        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        plugin.admit(&mut attributes).await.unwrap();
        let spec = attributes.into_changed().unwrap()["spec"].clone();
        assert_eq!(
            (spec["priority"].clone(), spec["preemptionPolicy"].clone()),
            (json!(0), json!("PreemptLowerPriority"))
        );

        let pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "system-node-critical"}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        plugin.admit(&mut attributes).await.unwrap();
        assert_eq!(
            attributes.into_changed().unwrap()["spec"]["priority"],
            2_000_001_000
        );
    }

    #[tokio::test]
    async fn a_global_default_class_is_named_on_the_pod() {
        let fixture = Fixture::new().await;
        fixture
            .put(
                "/priorityclasses/normal",
                r#"{"metadata":{"name":"normal"},"value":100,"globalDefault":true}"#,
            )
            .await;
        let plugin = Priority::new(fixture.lookup());
        let user = user();
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        plugin.admit(&mut attributes).await.unwrap();
        let spec = attributes.into_changed().unwrap()["spec"].clone();
        assert_eq!(spec["priorityClassName"], "normal");
        assert_eq!(spec["priority"], 100);
    }

    #[tokio::test]
    async fn stated_or_unknown_priorities_are_forbidden() {
        let fixture = Fixture::new().await;
        let plugin = Priority::new(fixture.lookup());
        let user = user();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"priority": 5}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        assert_eq!(
            plugin.admit(&mut attributes).await.unwrap_err().to_string(),
            "pods \"p\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
        );
        let pod =
            json!({"metadata": {"generateName": "p-"}, "spec": {"priorityClassName": "nope"}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        assert_eq!(
            plugin.admit(&mut attributes).await.unwrap_err().to_string(),
            "pods \"p-\" is forbidden: no PriorityClass with name nope was found"
        );
    }

    #[tokio::test]
    async fn updates_keep_the_priority_they_leave_out() {
        let fixture = Fixture::new().await;
        let plugin = Priority::new(fixture.lookup());
        let user = user();
        let old = json!({"metadata": {"name": "p"}, "spec": {"priority": 7, "preemptionPolicy": "Never"}});
        let new = json!({"metadata": {"name": "p"}, "spec": {}});
        let mut attributes = pod_attributes(Operation::Update, &new, Some(&old), &user);
        assert!(plugin.handles(&attributes));
        plugin.admit(&mut attributes).await.unwrap();
        assert_eq!(attributes.into_changed().unwrap()["spec"], old["spec"]);

        let kept = old.clone();
        let mut attributes = pod_attributes(Operation::Update, &kept, Some(&old), &user);
        plugin.admit(&mut attributes).await.unwrap();
        assert_eq!(
            attributes.into_changed(),
            None,
            "nothing to change, nothing converted back"
        );
    }
}
