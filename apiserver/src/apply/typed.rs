//! Walks over an object and its schema with structured-merge-diff's semantics: the set of
//! fields a value sets, the difference between two values, the merge of an applied
//! configuration into a live object, and the removal of a set of fields.
//!
//! Structs and maps are granular unless atomic; lists are atomic unless the patch table
//! makes them a set or an associative list; scalars, atomic values and values whose JSON
//! type does not fit the schema are leaves, owned and replaced as a whole.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value};

use super::fieldset::{path_string, Path, PathElement, Set};
use crate::patch::schema::{Node, Shape};
use crate::patch::table::{self, ListType};

/// A position in the schema with what the parent says about it: its list type and whether
/// it is owned as a whole.
#[derive(Debug, Clone, Copy)]
pub struct Ty<'a> {
    node: Node<'a>,
    list: ListType,
    atomic: bool,
}

/// How a value is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Leaf,
    /// Struct fields or map entries, one by one.
    Fields,
    /// Set or associative-list items, one by one.
    Items,
}

impl<'a> Ty<'a> {
    /// The type of a whole object.
    pub fn root(node: Node<'a>) -> Self {
        Ty {
            node,
            list: ListType::Atomic,
            atomic: node.definition().is_some_and(table::atomic_struct),
        }
    }

    /// The type below `element`: a struct field, or a map value or list item.
    pub fn child(&self, element: &PathElement) -> Ty<'a> {
        match element {
            PathElement::Field(name) if self.node.shape() == Shape::Struct => Ty {
                node: self.node.field(name),
                list: self.node.list_type(name),
                atomic: self.node.atomic(name),
            },
            _ => {
                let node = self.node.item();
                Ty {
                    node,
                    list: ListType::Atomic,
                    atomic: node.definition().is_some_and(table::atomic_struct),
                }
            }
        }
    }

    fn declares(&self, name: &str) -> bool {
        self.node.shape() == Shape::Struct && self.node.declares(name)
    }

    /// How `value` is walked; null or missing values take the schema's granularity.
    fn walk(&self, value: Option<&Value>) -> Walk {
        let granular = match self.node.shape() {
            Shape::Struct | Shape::Map if !self.atomic => Walk::Fields,
            Shape::List if self.list != ListType::Atomic => Walk::Items,
            _ => return Walk::Leaf,
        };
        match (granular, value) {
            (_, None | Some(Value::Null))
            | (Walk::Fields, Some(Value::Object(_)))
            | (Walk::Items, Some(Value::Array(_))) => granular,
            _ => Walk::Leaf,
        }
    }

    /// How a pair of values is walked: granular only if both sides are.
    fn walk_pair(&self, lhs: Option<&Value>, rhs: Option<&Value>) -> Walk {
        match (self.walk(lhs), self.walk(rhs)) {
            (a, b) if a == b => a,
            _ => Walk::Leaf,
        }
    }

    /// The path element naming list item `item`.
    fn item_element(&self, item: &Value) -> Result<PathElement, String> {
        match self.list {
            ListType::Set => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".into())
                }
                other => Ok(PathElement::Value(other.clone())),
            },
            ListType::Map(keys) => {
                let Value::Object(fields) = item else {
                    return Err(if item.is_null() {
                        "associative list with keys may not have a null element".into()
                    } else {
                        "associative list with keys may not have non-map elements".into()
                    });
                };
                let item_definition = self.node.item().definition().unwrap_or("");
                let mut key = Vec::with_capacity(keys.len());
                for name in keys {
                    match fields.get(*name).cloned().or_else(|| table::key_default(item_definition, name)) {
                        Some(value) => key.push((name.to_string(), value)),
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {name:?} (and doesn't have default value)"
                            ))
                        }
                    }
                }
                key.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(key))
            }
            ListType::Atomic => Err("atomic lists have no items".into()),
        }
    }

    /// The items of a granular list with their path elements, skipping items that have none.
    fn elements<'v>(&self, items: &'v [Value]) -> Vec<(PathElement, &'v Value)> {
        items
            .iter()
            .filter_map(|item| self.item_element(item).ok().map(|e| (e, item)))
            .collect()
    }
}

fn empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(list)) => list.is_empty(),
        Some(_) => false,
    }
}

/// The fields `value` sets (structured-merge-diff's `ToFieldSet`): every leaf, every list
/// item, every map key, and struct fields that are null or empty. With `strict`, fields the
/// schema does not declare, items without keys and duplicate items are errors (as for an
/// applied configuration), each reported as `<path>: <problem>`.
pub fn field_set(value: &Value, ty: Ty, strict: bool) -> Result<Set, Vec<String>> {
    let mut set = Set::new();
    let mut errors = Vec::new();
    collect_fields(value, ty, &mut Vec::new(), &mut set, strict, &mut errors);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

fn collect_fields(
    value: &Value,
    ty: Ty,
    path: &mut Path,
    set: &mut Set,
    strict: bool,
    errors: &mut Vec<String>,
) {
    match (ty.walk(Some(value)), value) {
        (Walk::Fields, Value::Object(fields)) => {
            for (name, child) in fields {
                let element = PathElement::Field(name.clone());
                let declared = ty.declares(name);
                if strict && ty.node.shape() == Shape::Struct && !declared {
                    path.push(element);
                    errors.push(format!(
                        "{}: field not declared in schema",
                        path_string(path)
                    ));
                    path.pop();
                    continue;
                }
                let child_ty = ty.child(&element);
                path.push(element);
                collect_fields(child, child_ty, path, set, strict, errors);
                if !declared || child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        (Walk::Items, Value::Array(items)) => {
            let mut seen = BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                let element = match ty.item_element(item) {
                    Ok(element) => element,
                    Err(error) => {
                        if strict {
                            errors.push(format!("{}: element {index}: {error}", path_string(path)));
                        }
                        continue;
                    }
                };
                if !seen.insert(element.clone()) {
                    if strict {
                        errors.push(format!(
                            "{}: duplicate entries for key {element}",
                            path_string(path)
                        ));
                    }
                    continue;
                }
                let child_ty = ty.child(&element);
                path.push(element);
                collect_fields(item, child_ty, path, set, strict, errors);
                set.insert(path);
                path.pop();
            }
        }
        (Walk::Leaf, _) => set.insert(path),
        _ => {}
    }
}

/// What changed between two values: fields only the new one sets, fields only the old one
/// sets, and leaves both set differently.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub added: Set,
    pub removed: Set,
    pub modified: Set,
}

impl Comparison {
    /// Drops whatever `keep` rejects at the top level (fields a write may not change).
    pub fn retain_top(self, keep: impl Fn(&PathElement) -> bool + Copy) -> Self {
        Comparison {
            added: self.added.retain_top_owned(keep),
            removed: self.removed.retain_top_owned(keep),
            modified: self.modified.retain_top_owned(keep),
        }
    }
}

/// Compares `old` with `new` (structured-merge-diff's `Compare`).
pub fn compare(old: &Value, new: &Value, ty: Ty) -> Comparison {
    let mut comparison = Comparison::default();
    compare_walk(Some(old), Some(new), ty, &mut Vec::new(), &mut comparison);
    comparison
}

fn compare_leaf(lhs: Option<&Value>, rhs: Option<&Value>, path: &Path, out: &mut Comparison) {
    match (lhs, rhs) {
        (None, _) => out.added.insert(path),
        (_, None) => out.removed.insert(path),
        (Some(l), Some(r)) if l != r => out.modified.insert(path),
        _ => {}
    }
}

fn compare_walk(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    ty: Ty,
    path: &mut Path,
    out: &mut Comparison,
) {
    let walk = ty.walk_pair(lhs, rhs);
    if walk == Walk::Leaf || (empty(lhs) && empty(rhs)) {
        compare_leaf(lhs, rhs, path, out);
        return;
    }
    if walk == Walk::Fields {
        let (l, r) = (
            lhs.and_then(Value::as_object),
            rhs.and_then(Value::as_object),
        );
        let names: BTreeSet<&String> = l
            .into_iter()
            .flat_map(Map::keys)
            .chain(r.into_iter().flat_map(Map::keys))
            .collect();
        for name in names {
            let element = PathElement::Field(name.clone());
            let child_ty = ty.child(&element);
            path.push(element);
            compare_walk(
                l.and_then(|m| m.get(name)),
                r.and_then(|m| m.get(name)),
                child_ty,
                path,
                out,
            );
            path.pop();
        }
    } else {
        let l = ty.elements(lhs.and_then(Value::as_array).map_or(&[], Vec::as_slice));
        let r = ty.elements(rhs.and_then(Value::as_array).map_or(&[], Vec::as_slice));
        let mut groups: BTreeMap<PathElement, (Vec<&Value>, Vec<&Value>)> = BTreeMap::new();
        for (element, item) in &l {
            groups.entry(element.clone()).or_default().0.push(item);
        }
        for (element, item) in &r {
            groups.entry(element.clone()).or_default().1.push(item);
        }
        for (element, (left, right)) in groups {
            let child_ty = ty.child(&element);
            path.push(element);
            match (left.len(), right.len()) {
                (0..=1, 0..=1) => compare_walk(
                    left.first().copied(),
                    right.first().copied(),
                    child_ty,
                    path,
                    out,
                ),
                (2.., 2..) if left != right => out.modified.insert(path),
                (2.., 2..) => {}
                (2.., _) => {
                    if let Some(first) = right.first() {
                        compare_walk(None, Some(first), child_ty, path, out);
                    }
                    out.removed.insert(path);
                }
                (_, _) => {
                    if let Some(first) = left.first() {
                        compare_walk(Some(first), None, child_ty, path, out);
                    }
                    out.added.insert(path);
                }
            }
            path.pop();
        }
    }
    if lhs.is_none() {
        out.added.insert(path);
    } else if rhs.is_none() {
        out.removed.insert(path);
    }
}

/// Merges an applied configuration into a live object (structured-merge-diff's `Merge`):
/// maps and structs key by key, associative lists and sets item by item (the configuration's
/// order for shared items, live-only items kept where they were), leaves from the
/// configuration.
pub fn merge(live: &Value, config: &Value, ty: Ty) -> Value {
    merge_walk(Some(live), Some(config), ty).unwrap_or(Value::Null)
}

fn merge_walk(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty) -> Option<Value> {
    let walk = ty.walk_pair(lhs, rhs);
    if walk == Walk::Leaf || (empty(lhs) && empty(rhs)) {
        return rhs.or(lhs).cloned();
    }
    if walk == Walk::Fields {
        let (l, r) = (
            lhs.and_then(Value::as_object),
            rhs.and_then(Value::as_object),
        );
        let names: BTreeSet<&String> = l
            .into_iter()
            .flat_map(Map::keys)
            .chain(r.into_iter().flat_map(Map::keys))
            .collect();
        let mut out = Map::new();
        for name in names {
            let child_ty = ty.child(&PathElement::Field(name.clone()));
            if let Some(value) = merge_walk(
                l.and_then(|m| m.get(name)),
                r.and_then(|m| m.get(name)),
                child_ty,
            ) {
                out.insert(name.clone(), value);
            }
        }
        return Some(Value::Object(out));
    }
    let lhs = ty.elements(lhs.and_then(Value::as_array).map_or(&[], Vec::as_slice));
    let mut rhs = ty.elements(rhs.and_then(Value::as_array).map_or(&[], Vec::as_slice));
    let mut seen = BTreeSet::new();
    rhs.retain(|(element, _)| seen.insert(element.clone()));
    Some(Value::Array(merge_items(&lhs, &rhs, ty)))
}

/// structured-merge-diff's list merge: walks both lists at once, merging shared items in
/// the configuration's order and keeping live-only items in place.
fn merge_items(lhs: &[(PathElement, &Value)], rhs: &[(PathElement, &Value)], ty: Ty) -> Vec<Value> {
    let live = |element: &PathElement| lhs.iter().find(|(e, _)| e == element).map(|(_, v)| *v);
    let applied = |element: &PathElement| rhs.iter().any(|(e, _)| e == element);
    let mut shared: VecDeque<&PathElement> = rhs
        .iter()
        .map(|(e, _)| e)
        .filter(|e| live(e).is_some())
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged = BTreeSet::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let element = &lhs[li].0;
            if *element == rhs[ri].0 {
                merged.insert(element.clone());
                out.extend(merge_walk(
                    Some(lhs[li].1),
                    Some(rhs[ri].1),
                    ty.child(element),
                ));
                if next_shared == Some(element) {
                    next_shared = shared.pop_front();
                }
                li += 1;
                ri += 1;
                continue;
            }
            if applied(element) && next_shared.is_some_and(|n| n != element) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let element = &lhs[li].0;
            if !applied(element) {
                out.extend(merge_walk(Some(lhs[li].1), None, ty.child(element)));
                li += 1;
                continue;
            }
            if merged.contains(element) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let element = &rhs[ri].0;
            merged.insert(element.clone());
            out.extend(merge_walk(
                live(element),
                Some(rhs[ri].1),
                ty.child(element),
            ));
            if next_shared == Some(element) {
                next_shared = shared.pop_front();
            }
            ri += 1;
        }
    }
    out
}

/// `value` without the members of `set` (each with everything below it).
pub fn remove_items(value: &Value, set: &Set, ty: Ty) -> Value {
    match (ty.walk(Some(value)), value) {
        (Walk::Fields, Value::Object(fields)) => Value::Object(
            fields
                .iter()
                .filter_map(|(name, child)| {
                    let element = PathElement::Field(name.clone());
                    if set.is_member(&element) {
                        return None;
                    }
                    let kept = match set.child(&element) {
                        Some(below) => remove_items(child, below, ty.child(&element)),
                        None => child.clone(),
                    };
                    Some((name.clone(), kept))
                })
                .collect(),
        ),
        (Walk::Items, Value::Array(items)) => Value::Array(
            items
                .iter()
                .filter_map(|item| {
                    let Ok(element) = ty.item_element(item) else {
                        return Some(item.clone());
                    };
                    if set.is_member(&element) {
                        return None;
                    }
                    Some(match set.child(&element) {
                        Some(below) => remove_items(item, below, ty.child(&element)),
                        None => item.clone(),
                    })
                })
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// `set` with every struct field that has owned children also a member (structured-merge-
/// diff's `EnsureNamedFieldsAreMembers`), so pruning can remove a field as a whole.
pub fn with_named_fields(set: &Set, ty: Ty) -> Set {
    let mut members = set.members().clone();
    let mut children = BTreeMap::new();
    for (element, child) in set.children() {
        if let PathElement::Field(name) = element {
            if ty.declares(name) {
                members.insert(element.clone());
            }
        }
        children.insert(element.clone(), with_named_fields(child, ty.child(element)));
    }
    Set::from_parts(members, children)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::Schemas;
    use serde_json::json;

    fn schemas() -> std::sync::Arc<Schemas> {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>();
        generator.subschema_for::<k8s_openapi::api::core::v1::Service>();
        Schemas::new(generator.take_definitions(true))
    }

    fn deployment(schemas: &Schemas) -> Ty<'_> {
        Ty::root(schemas.root("io.k8s.api.apps.v1.Deployment"))
    }

    #[test]
    fn field_set_of_a_deployment() {
        let schemas = schemas();
        let config = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}],
                        "tolerations": [{"key": "k", "operator": "Exists"}]
                    }
                }
            }
        });
        let set = field_set(&config, deployment(&schemas), true).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:finalizers": {"v:\"a\"": {}}, "f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {"k:{\"name\":\"app\"}": {
                                ".": {}, "f:image": {}, "f:name": {}, "f:resources": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                            }},
                            "f:tolerations": {}
                        }
                    }
                }
            })
        );
    }

    #[test]
    fn configurations_are_checked_against_the_schema() {
        let schemas = schemas();
        let config = json!({"spec": {"bogus": 1, "template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}, {"image": "x"}]}}}});
        let errors = field_set(&config, deployment(&schemas), true).unwrap_err();
        assert_eq!(
            errors,
            [
                ".spec.bogus: field not declared in schema",
                r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#,
                r#".spec.template.spec.containers: element 2: associative list with keys has an element that omits key field "name" (and doesn't have default value)"#,
            ]
        );
    }

    #[test]
    fn compare_marks_new_maps_and_items_as_added() {
        let schemas = schemas();
        let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let new = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}}});
        let c = compare(&old, &new, deployment(&schemas));
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(
            c.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            c.removed.to_fields_v1(),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
    }

    #[test]
    fn merge_follows_list_types() {
        let schemas = schemas();
        let live = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}}, "spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "1", "ports": [{"containerPort": 80, "protocol": "TCP"}]}, {"name": "side", "image": "s"}],
            "tolerations": [{"key": "old"}]
        }}}});
        let config = json!({"metadata": {"finalizers": ["c"], "labels": {"y": "2"}}, "spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "2", "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "new"}]
        }}}});
        let merged = merge(&live, &config, deployment(&schemas));
        assert_eq!(
            merged,
            json!({"metadata": {"finalizers": ["a", "b", "c"], "labels": {"x": "1", "y": "2"}}, "spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": "2", "ports": [{"containerPort": 80, "protocol": "TCP"}]}, {"name": "side", "image": "s"}],
                "tolerations": [{"key": "new"}]
            }}}})
        );
    }

    #[test]
    fn merge_orders_shared_items_as_applied() {
        let schemas = schemas();
        let live = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "live"}, {"name": "b"}]}}}});
        let config = json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}, {"name": "new"}, {"name": "a"}]}}}});
        let merged = merge(&live, &config, deployment(&schemas));
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["live", "b", "new", "a"]);
    }

    #[test]
    fn remove_items_and_named_fields() {
        let schemas = schemas();
        let ty = deployment(&schemas);
        let value = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}}});
        let owned = field_set(
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}}),
            ty,
            true,
        )
        .unwrap();
        let removed = remove_items(&value, &owned, ty);
        assert_eq!(
            removed,
            json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}})
        );
        let named = with_named_fields(&owned, ty);
        assert!(named.has(&[PathElement::Field("spec".into())]));
        assert!(named.has(&[
            PathElement::Field("spec".into()),
            PathElement::Field("template".into()),
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into())
        ]));
    }
}
