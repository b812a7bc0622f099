//! Strategic merge patch: a JSON merge patch that merges lists by key where upstream's patch
//! metadata says so, with the directives kubectl emits (`$patch: replace|delete|merge`,
//! `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`, `$retainKeys`).

use serde_json::{Map, Value};

use super::schema::Node;
use super::table::FieldMeta;

const DIRECTIVE: &str = "$patch";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const RETAIN_KEYS: &str = "$retainKeys";

/// Applies `patch` to `original` (both whole objects) as described by `node`.
pub fn apply(original: &Value, patch: &Value, node: Node) -> Result<Value, String> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    let mut merged = original.clone();
    match merge_map(&mut merged, patch, node)? {
        Outcome::Kept => Ok(Value::Object(merged)),
        Outcome::Deleted => Err("a strategic merge patch cannot delete the whole object".into()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Kept,
    /// The map carried `$patch: delete`: its parent drops it.
    Deleted,
}

fn merge_map(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    node: Node,
) -> Result<Outcome, String> {
    match patch.get(DIRECTIVE).map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => {
            *original = clean_map(patch, node).unwrap_or_default();
            return Ok(Outcome::Kept);
        }
        Some(Some("delete")) => return Ok(Outcome::Deleted),
        Some(other) => {
            return Err(format!(
                "Unknown patch type: {}",
                other.map_or("<not a string>".into(), |s| s.to_string())
            ))
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let (Some(Value::Array(list)), Value::Array(remove)) = (original.get_mut(field), value)
            else {
                continue;
            };
            list.retain(|item| !remove.contains(item));
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        let child = node.field(key);
        if value.is_null() {
            original.remove(key);
            continue;
        }
        match (original.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(changes)) => {
                if merge_map(existing, changes, child)? == Outcome::Deleted {
                    original.remove(key);
                }
            }
            (Some(Value::Array(existing)), Value::Array(changes)) => {
                merge_list(existing, changes, node.meta(key), child.item())?
            }
            (_, value) => match clean(value, child) {
                Some(value) => {
                    original.insert(key.clone(), value);
                }
                None => {
                    original.remove(key);
                }
            },
        }
    }
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let (Some(Value::Array(list)), Value::Array(order)) = (original.get_mut(field), order)
        else {
            continue;
        };
        reorder(list, order, node.meta(field).map_or("", |m| m.merge_key));
    }
    if let Some(Value::Array(keep)) = patch.get(RETAIN_KEYS) {
        original.retain(|key, _| keep.iter().any(|k| k.as_str() == Some(key)));
    }
    Ok(Outcome::Kept)
}

fn merge_list(
    original: &mut Vec<Value>,
    patch: &[Value],
    meta: Option<&FieldMeta>,
    item: Node,
) -> Result<(), String> {
    if let Some(at) = patch
        .iter()
        .position(|e| e.get(DIRECTIVE).and_then(Value::as_str) == Some("replace"))
    {
        let rest: Vec<Value> = patch
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, e)| e.clone())
            .collect();
        *original = clean_list(&rest, item);
        return Ok(());
    }
    let Some(meta) = meta.filter(|m| m.strategy.split(',').any(|s| s == "merge")) else {
        *original = clean_list(patch, item);
        return Ok(());
    };
    if meta.merge_key.is_empty() {
        for value in patch {
            if !original.contains(value) {
                original.push(value.clone());
            }
        }
        return Ok(());
    }
    let key = meta.merge_key;
    for element in patch {
        let Value::Object(changes) = element else {
            return Err(format!(
                "list item {element} must be an object with merge key {key:?}"
            ));
        };
        let Some(id) = changes.get(key) else {
            return Err(format!(
                "map: {element} does not contain declared merge key: {key}"
            ));
        };
        if changes.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            original.retain(|existing| existing.get(key) != Some(id));
            continue;
        }
        match original
            .iter_mut()
            .find(|existing| existing.get(key) == Some(id))
        {
            Some(Value::Object(existing)) => {
                if merge_map(existing, changes, item)? == Outcome::Deleted {
                    original.retain(|existing| existing.get(key) != Some(id));
                }
            }
            Some(other) => *other = Value::Object(clean_map(changes, item).unwrap_or_default()),
            None => {
                if let Some(value) = clean_map(changes, item) {
                    original.push(Value::Object(value));
                }
            }
        }
    }
    Ok(())
}

/// Puts the items named in `order` first, in that order; others keep their relative order.
fn reorder(list: &mut [Value], order: &[Value], key: &str) {
    let rank = |item: &Value| {
        let id = if key.is_empty() {
            Some(item)
        } else {
            item.get(key)
        };
        order
            .iter()
            .position(|o| {
                if key.is_empty() {
                    Some(o) == id
                } else {
                    o.get(key) == id
                }
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

/// A patch value inserted where the original had nothing: directives removed, deleted
/// entries dropped. `None` when the value deletes itself.
fn clean(value: &Value, node: Node) -> Option<Value> {
    match value {
        Value::Object(map) => clean_map(map, node).map(Value::Object),
        Value::Array(list) => Some(Value::Array(clean_list(list, node.item()))),
        other => Some(other.clone()),
    }
}

fn clean_map(map: &Map<String, Value>, node: Node) -> Option<Map<String, Value>> {
    if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
        return None;
    }
    Some(
        map.iter()
            .filter(|(key, value)| !key.starts_with('$') && !value.is_null())
            .filter_map(|(key, value)| clean(value, node.field(key)).map(|v| (key.clone(), v)))
            .collect(),
    )
}

fn clean_list(list: &[Value], item: Node) -> Vec<Value> {
    list.iter()
        .filter(|e| {
            e.get(DIRECTIVE)
                .and_then(Value::as_str)
                .is_none_or(|d| d != "delete" && d != "replace")
        })
        .filter_map(|e| clean(e, item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::Schemas;
    use serde_json::json;

    fn schemas() -> std::sync::Arc<Schemas> {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>();
        generator.subschema_for::<k8s_openapi::api::core::v1::Pod>();
        Schemas::new(generator.take_definitions(true))
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "ports": [{"containerPort": 80}]},
                    {"name": "sidecar", "image": "busybox"}
                ], "tolerations": [{"key": "x", "operator": "Exists"}]}}
            }
        })
    }

    fn patch(patch: Value) -> Value {
        let schemas = schemas();
        apply(
            &deployment(),
            &patch,
            schemas.root("io.k8s.api.apps.v1.Deployment"),
        )
        .unwrap()
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        let out = patch(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:1.27", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
        ]}}}}));
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2, "the sidecar stays");
        assert_eq!(containers[0]["image"], "nginx:1.27");
        assert_eq!(
            containers[0]["ports"],
            json!([{"containerPort": 80}]),
            "fields not in the patch stay"
        );
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
    }

    #[test]
    fn lists_without_a_strategy_are_replaced() {
        let out = patch(
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "y", "operator": "Exists"}])
        );
    }

    #[test]
    fn delete_directive_removes_one_item() {
        let out = patch(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
        );
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app"]);
    }

    #[test]
    fn replace_directive_replaces_the_list() {
        let out = patch(
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );
    }

    #[test]
    fn null_deletes_and_maps_merge() {
        let out = patch(json!({"metadata": {"labels": {"tier": null, "env": "prod"}}}));
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "env": "prod"})
        );
    }

    #[test]
    fn retain_keys_drops_what_the_patch_does_not_name() {
        let out =
            patch(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn primitive_lists_merge_and_delete_from_primitive_list() {
        let out = patch(
            json!({"metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn set_element_order_reorders_merged_lists() {
        let out = patch(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "nginx:2"}]
        }}}}));
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sidecar", "app"]);
    }

    #[test]
    fn map_replace_directive() {
        let out = patch(json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    }

    #[test]
    fn merge_items_need_their_key() {
        let schemas = schemas();
        let error = apply(
            &deployment(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            schemas.root("io.k8s.api.apps.v1.Deployment"),
        )
        .unwrap_err();
        assert!(
            error.contains("does not contain declared merge key: name"),
            "{error}"
        );
    }
}
