//! `DefaultTolerationSeconds`: pods tolerate a not-ready or unreachable node for five minutes
//! unless they say otherwise, so a short node outage does not evict them at once.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Attributes, Operation, Plugin};
use crate::error::ApiResult;

/// The taints tolerated, each for [`SECONDS`] (upstream's
/// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`).
const TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
const SECONDS: i64 = 300;

pub struct DefaultTolerationSeconds;

/// Whether `toleration` already covers the NoExecute `taint` (an empty key or effect matches
/// any).
fn covers(toleration: &Value, taint: &str) -> bool {
    let field = |name: &str| toleration.get(name).and_then(Value::as_str).unwrap_or("");
    let key = field("key");
    (key.is_empty() || key == taint) && matches!(field("effect"), "" | "NoExecute")
}

#[async_trait]
impl Plugin for DefaultTolerationSeconds {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.resource.is_core("pods")
            && attributes.subresource.is_none()
            && matches!(attributes.operation, Operation::Create | Operation::Update)
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        let Some(spec) = attributes.object()?.and_then(|pod| pod.get("spec")) else {
            return Ok(());
        };
        let tolerations = spec.get("tolerations").and_then(Value::as_array);
        let missing: Vec<&str> = TAINTS
            .into_iter()
            .filter(|taint| !tolerations.is_some_and(|all| all.iter().any(|t| covers(t, taint))))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let Some(spec) = attributes
            .object_mut()?
            .and_then(|pod| pod.get_mut("spec"))
            .and_then(Value::as_object_mut)
        else {
            return Ok(());
        };
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if !tolerations.is_array() {
            *tolerations = json!([]);
        }
        if let Some(list) = tolerations.as_array_mut() {
            list.extend(missing.into_iter().map(|taint| {
                json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS})
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{pod_attributes, user};

    #[tokio::test]
    async fn both_taints_are_tolerated_for_five_minutes() {
        let user = user();
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        assert!(DefaultTolerationSeconds.handles(&attributes));
        DefaultTolerationSeconds
            .admit(&mut attributes)
            .await
            .unwrap();
        let tolerations = attributes.into_changed().unwrap()["spec"]["tolerations"].clone();
        assert_eq!(
            tolerations,
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
    }

    #[tokio::test]
    async fn tolerations_the_pod_has_are_kept() {
        let user = user();
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10});
        let pod = json!({"metadata": {"name": "p"}, "spec": {"tolerations": [own]}});
        let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
        DefaultTolerationSeconds
            .admit(&mut attributes)
            .await
            .unwrap();
        let tolerations = attributes.into_changed().unwrap()["spec"]["tolerations"].clone();
        assert_eq!(tolerations[0], own);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
        assert_eq!(tolerations.as_array().unwrap().len(), 2);

        let everything =
            json!({"metadata": {"name": "p"}, "spec": {"tolerations": [{"operator": "Exists"}]}});
        let mut attributes =
            pod_attributes(Operation::Update, &everything, Some(&everything), &user);
        DefaultTolerationSeconds
            .admit(&mut attributes)
            .await
            .unwrap();
        assert_eq!(attributes.into_changed(), None);
    }
}
