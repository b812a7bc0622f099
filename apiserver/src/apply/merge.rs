//! Applying a configuration (structured-merge-diff's `Updater.Apply`): merge it into the live
//! object, drop what the applier applied last time and no longer does unless someone else
//! owns it, and refuse to change fields other managers own unless forced.

use serde_json::Value;

use super::fieldset::{Path, Set};
use super::managed::{strip, Entry, Managed, Operation, Writer};
use super::typed::{compare, field_set, merge, remove_items, with_named_fields, Ty};

/// A field the applier would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub owner: Entry,
    pub path: Path,
}

/// The outcome of an apply: the new object (`None` when nothing changed) and the new
/// managed fields.
#[derive(Debug)]
pub struct Applied {
    pub object: Option<Value>,
    pub managed: Managed,
}

/// Applies `config` (already checked against the schema) to `live` (without
/// `managedFields`) for `writer`, with the live object's `managed` fields.
pub fn apply(
    live: &Value,
    config: &Value,
    ty: Ty,
    managed: &Managed,
    writer: &Writer,
    force: bool,
) -> Result<Applied, Vec<Conflict>> {
    let applied_set = field_set(config, ty, false)
        .unwrap_or_default()
        .retain_top(|e| writer.scope.keeps(e));
    let merged = merge(live, config, ty);
    let mut managers = managed.clone();
    let me = writer.entry(Operation::Apply, applied_set);
    let last = managers.find(&me).map(|e| e.set.clone());
    let previous_time = managers.find(&me).and_then(|e| e.time.clone());
    managers.put(me.clone());
    let merged = match last {
        Some(last) if !last.is_empty() => prune(&merged, &managers, &last, ty),
        _ => merged,
    };

    let comparison = compare(live, &merged, ty).retain_top(|e| writer.scope.keeps(e));
    let changed = comparison.modified.union(&comparison.added);
    let mut conflicts = Vec::new();
    for entry in managers.entries.iter_mut().filter(|e| !e.same_owner(&me)) {
        let conflicting = entry.set.intersection(&changed);
        if !conflicting.is_empty() {
            conflicts.extend(conflicting.paths().into_iter().map(|path| Conflict {
                owner: entry.clone(),
                path,
            }));
            entry.set = entry.set.difference(&conflicting);
        }
        entry.set = entry.set.difference(&comparison.removed);
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by_key(|c| c.owner.identifier());
        return Err(conflicts);
    }
    managers.entries.retain(|e| !e.set.is_empty());

    let changed_object = merged != *live;
    if let Some(entry) = managers.entries.iter_mut().find(|e| e.same_owner(&me)) {
        entry.set = strip(std::mem::take(&mut entry.set));
        entry.time = if changed_object {
            Some(writer.now.clone())
        } else {
            previous_time
        };
    }
    managers.entries.retain(|e| !e.set.is_empty());
    Ok(Applied {
        object: changed_object.then_some(merged),
        managed: managers,
    })
}

/// Removes from `merged` the fields the applier owned before (`last`) that nobody owns now.
fn prune(merged: &Value, managers: &Managed, last: &Set, ty: Ty) -> Value {
    let last = with_named_fields(last, ty);
    let owned = managers
        .entries
        .iter()
        .fold(Set::new(), |all, e| all.union(&e.set));
    let owned = with_named_fields(&owned, ty);
    let fields_of =
        |value: &Value| with_named_fields(&field_set(value, ty, false).unwrap_or_default(), ty);
    let merged_set = fields_of(merged);
    let pruned = remove_items(merged, &last, ty);
    let pruned = remove_items(
        merged,
        &merged_set.difference(&fields_of(&pruned).union(&owned)),
        ty,
    );
    remove_items(
        merged,
        &merged_set
            .difference(&fields_of(&pruned))
            .intersection(&last),
        ty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fieldset::path_string;
    use crate::apply::managed::Scope;
    use crate::patch::schema::Schemas;
    use serde_json::json;

    fn schemas() -> std::sync::Arc<Schemas> {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>();
        Schemas::new(generator.take_definitions(true))
    }

    fn writer(manager: &str) -> Writer {
        Writer {
            manager: manager.into(),
            api_version: "apps/v1".into(),
            subresource: String::new(),
            scope: Scope::AllBut("status"),
            now: Value::from("2024-01-01T00:00:00Z"),
        }
    }

    fn config(replicas: i64, containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}
        })
    }

    #[test]
    fn first_apply_owns_exactly_the_configuration() {
        let schemas = schemas();
        let ty = Ty::root(schemas.root("io.k8s.api.apps.v1.Deployment"));
        let live = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "paused": false}});
        let applied = apply(
            &live,
            &config(2, json!([{"name": "app", "image": "nginx"}])),
            ty,
            &Managed::default(),
            &writer("kubectl"),
            false,
        )
        .unwrap();
        let object = applied.object.unwrap();
        assert_eq!(object["spec"]["replicas"], 2);
        assert_eq!(object["spec"]["paused"], false, "unowned fields stay");
        assert_eq!(
            applied.managed.encode().unwrap(),
            json!([{
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}
            }])
        );
    }

    #[test]
    fn conflicts_force_and_shared_ownership() {
        let schemas = schemas();
        let ty = Ty::root(schemas.root("io.k8s.api.apps.v1.Deployment"));
        let first = apply(
            &json!({}),
            &config(2, json!([{"name": "app", "image": "nginx"}])),
            ty,
            &Managed::default(),
            &writer("alice"),
            false,
        )
        .unwrap();
        let live = first.object.unwrap();

        let same = apply(
            &live,
            &config(2, json!([{"name": "app", "image": "nginx"}])),
            ty,
            &first.managed,
            &writer("bob"),
            false,
        )
        .unwrap();
        assert!(
            same.object.is_none(),
            "applying the same values changes nothing"
        );
        let bob = same
            .managed
            .entries
            .iter()
            .find(|e| e.manager == "bob")
            .unwrap();
        assert_eq!(bob.time, None, "an apply that changed nothing sets no time");
        assert!(bob.set.has(&[
            crate::apply::fieldset::PathElement::Field("spec".into()),
            crate::apply::fieldset::PathElement::Field("replicas".into())
        ]));

        let conflicts = apply(
            &live,
            &config(5, json!([{"name": "app", "image": "httpd"}])),
            ty,
            &same.managed,
            &writer("carol"),
            false,
        )
        .unwrap_err();
        let printed: Vec<(String, String)> = conflicts
            .iter()
            .map(|c| (c.owner.manager.clone(), path_string(&c.path)))
            .collect();
        assert_eq!(
            printed,
            [
                ("alice".to_string(), ".spec.replicas".to_string()),
                (
                    "alice".to_string(),
                    r#".spec.template.spec.containers[name="app"].image"#.to_string()
                ),
                ("bob".to_string(), ".spec.replicas".to_string()),
                (
                    "bob".to_string(),
                    r#".spec.template.spec.containers[name="app"].image"#.to_string()
                ),
            ]
        );

        let forced = apply(
            &live,
            &config(5, json!([{"name": "app", "image": "nginx"}])),
            ty,
            &same.managed,
            &writer("carol"),
            true,
        )
        .unwrap();
        assert_eq!(forced.object.unwrap()["spec"]["replicas"], 5);
        for name in ["alice", "bob"] {
            let entry = forced
                .managed
                .entries
                .iter()
                .find(|e| e.manager == name)
                .unwrap();
            assert_eq!(
                entry.set.to_fields_v1(),
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}),
                "{name} lost replicas"
            );
        }
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_owned_elsewhere() {
        let schemas = schemas();
        let ty = Ty::root(schemas.root("io.k8s.api.apps.v1.Deployment"));
        let two = json!([{"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"}]);
        let first = apply(
            &json!({}),
            &config(2, two),
            ty,
            &Managed::default(),
            &writer("alice"),
            false,
        )
        .unwrap();
        let live = first.object.unwrap();

        let mut without_replicas = config(2, json!([{"name": "app", "image": "nginx"}]));
        without_replicas["spec"]
            .as_object_mut()
            .unwrap()
            .remove("replicas");
        let second = apply(
            &live,
            &without_replicas,
            ty,
            &first.managed,
            &writer("alice"),
            false,
        )
        .unwrap();
        let object = second.object.unwrap();
        assert_eq!(
            object["spec"].get("replicas"),
            None,
            "replicas went with the configuration"
        );
        let names: Vec<&str> = object["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app"], "the sidecar went with the configuration");

        let shared = apply(
            &live,
            &config(2, json!([{"name": "side", "image": "busybox"}])),
            ty,
            &first.managed,
            &writer("bob"),
            false,
        )
        .unwrap();
        let third = apply(
            &live,
            &without_replicas,
            ty,
            &shared.managed,
            &writer("alice"),
            false,
        )
        .unwrap();
        assert!(
            third.object.is_none(),
            "bob still applies replicas and the sidecar, so nothing goes"
        );
        let alice = third
            .managed
            .entries
            .iter()
            .find(|e| e.manager == "alice")
            .unwrap();
        assert_eq!(
            alice.set.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
    }

    #[test]
    fn sets_union_and_prune_by_value() {
        let schemas = schemas();
        let ty = Ty::root(schemas.root("io.k8s.api.apps.v1.Deployment"));
        let with = |finalizers: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": finalizers}});
        let live = json!({"metadata": {"name": "web", "finalizers": ["theirs"]}});
        let first = apply(
            &live,
            &with(json!(["a", "b"])),
            ty,
            &Managed::default(),
            &writer("alice"),
            false,
        )
        .unwrap();
        let live = first.object.unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["theirs", "a", "b"]));
        assert_eq!(
            first.managed.entries[0].set.to_fields_v1(),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}})
        );
        let second = apply(
            &live,
            &with(json!(["b"])),
            ty,
            &first.managed,
            &writer("alice"),
            false,
        )
        .unwrap();
        assert_eq!(
            second.object.unwrap()["metadata"]["finalizers"],
            json!(["theirs", "b"])
        );
    }
}
