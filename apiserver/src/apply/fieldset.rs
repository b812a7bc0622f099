//! Sets of field paths in structured-merge-diff's model, and their `FieldsV1` encoding in
//! `metadata.managedFields`.
//!
//! A path is a list of elements: a struct field or map key (`f:name`), an associative-list
//! item named by its key fields (`k:{"name":"app"}`), a set item named by its value
//! (`v:"x"`) or, for lists without keys, a position (`i:0`). A set is a trie: each node
//! knows which elements are members and which have children, so `{"f:labels":{".":{},
//! "f:app":{}}}` says both the labels map and its `app` key are owned.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A struct field or a map key.
    Field(String),
    /// An item of an associative list, by its key fields sorted by name.
    Key(Vec<(String, Value)>),
    /// An item of a set, by its value.
    Value(Value),
    /// An item of a list without keys, by position.
    Index(usize),
}

/// A path from the object's root.
pub type Path = Vec<PathElement>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key: `f:name`, `k:{...}`, `v:...` or `i:0`.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let map: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(map))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn decode(key: &str) -> Result<Self, String> {
        let (kind, rest) = key
            .split_at_checked(2)
            .ok_or_else(|| format!("invalid path element {key:?}"))?;
        match kind {
            "f:" => Ok(PathElement::Field(rest.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => Ok(PathElement::Key(map.into_iter().collect())),
                _ => Err(format!("invalid key in path element {key:?}")),
            },
            "v:" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|e| format!("invalid value in path element {key:?}: {e}")),
            "i:" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("invalid index in path element {key:?}: {e}")),
            _ => Err(format!("unknown path element type in {key:?}")),
        }
    }
}

/// Paths print as upstream prints them in conflict messages: `.spec.containers[name="app"].image`.
impl std::fmt::Display for PathElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value_string(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", value_string(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A path as upstream prints it.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// Values in printed paths: strings quoted, everything else as JSON.
fn value_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// structured-merge-diff's value order: numbers, strings, booleans, lists, maps, null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .unwrap_or(0.0)
                .partial_cmp(&y.as_f64().unwrap_or(0.0))
                .unwrap_or(Ordering::Equal),
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| compare_values(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y)
            .map(|((kx, vx), (ky, vy))| kx.cmp(ky).then_with(|| compare_values(vx, vy)))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => a
                .iter()
                .zip(b)
                .map(|((na, va), (nb, vb))| na.cmp(nb).then_with(|| compare_values(va, vb)))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.len().cmp(&b.len())),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for PathElement {}

/// A set of paths, as a trie. Children are never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Self {
        Set::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds `path`; the empty path (the whole object) is never tracked.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub fn is_member(&self, element: &PathElement) -> bool {
        self.members.contains(element)
    }

    pub fn child(&self, element: &PathElement) -> Option<&Set> {
        self.children.get(element)
    }

    pub(super) fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    pub(super) fn from_parts(
        members: BTreeSet<PathElement>,
        children: BTreeMap<PathElement, Set>,
    ) -> Self {
        let children = children
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .collect();
        Set { members, children }
    }

    pub(super) fn members(&self) -> &BTreeSet<PathElement> {
        &self.members
    }

    pub fn union(&self, other: &Set) -> Set {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (element, child) in &other.children {
            let merged = match children.get(element) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            children.insert(element.clone(), merged);
        }
        Set::from_parts(members, children)
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(element, child)| {
                other
                    .children
                    .get(element)
                    .map(|theirs| (element.clone(), child.intersection(theirs)))
            })
            .collect();
        Set::from_parts(members, children)
    }

    /// The paths of `self` that are not paths of `other` (descendants of a removed member
    /// stay unless `other` names them too).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(element, child)| match other.children.get(element) {
                Some(theirs) => (element.clone(), child.difference(theirs)),
                None => (element.clone(), child.clone()),
            })
            .collect();
        Set::from_parts(members, children)
    }

    /// [`Set::union`] taking both sets, so what only one has is moved rather than copied
    /// (a create's whole field set, on every write).
    pub fn merged(mut self, other: Set) -> Set {
        if other.is_empty() {
            return self;
        }
        if self.is_empty() {
            return other;
        }
        self.members.extend(other.members);
        for (element, child) in other.children {
            let merged = match self.children.remove(&element) {
                Some(mine) => mine.merged(child),
                None => child,
            };
            self.children.insert(element, merged);
        }
        self
    }

    /// [`Set::difference`] in place: the paths of `other` taken out of this set.
    pub fn without(mut self, other: &Set) -> Set {
        if other.is_empty() || self.is_empty() {
            return self;
        }
        self.members
            .retain(|member| !other.members.contains(member));
        for (element, theirs) in &other.children {
            if let Some(mine) = self.children.remove(element) {
                let rest = mine.without(theirs);
                if !rest.is_empty() {
                    self.children.insert(element.clone(), rest);
                }
            }
        }
        self
    }

    /// [`Set::retain_top`] on a set the caller gives up.
    pub fn retain_top_owned(mut self, keep: impl Fn(&PathElement) -> bool) -> Set {
        self.members.retain(|e| keep(e));
        self.children.retain(|e, _| keep(e));
        self
    }

    /// Keeps only the top-level elements `keep` accepts, with everything below them.
    pub fn retain_top(&self, keep: impl Fn(&PathElement) -> bool) -> Set {
        let members = self.members.iter().filter(|e| keep(e)).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(e, _)| keep(e))
            .map(|(e, c)| (e.clone(), c.clone()))
            .collect();
        Set::from_parts(members, children)
    }

    /// Every member path: this node's members first, then each child's, in element order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for member in &self.members {
            let mut path = prefix.clone();
            path.push(member.clone());
            out.push(path);
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` document: each element a key, `{}` for a member without children and
    /// `"."` marking a member that also has children.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_entries(false))
    }

    fn fields_v1_entries(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        for member in &self.members {
            if !self.children.contains_key(member) {
                out.insert(member.encode(), Value::Object(Map::new()));
            }
        }
        for (element, child) in &self.children {
            out.insert(
                element.encode(),
                Value::Object(child.fields_v1_entries(self.members.contains(element))),
            );
        }
        out
    }

    /// Parses a `FieldsV1` document.
    pub fn from_fields_v1(fields: &Value) -> Result<Set, String> {
        let Value::Object(map) = fields else {
            return Err("FieldsV1 must be a JSON object".into());
        };
        let mut set = Set::new();
        for (key, value) in map {
            if key == "." {
                continue;
            }
            let element = PathElement::decode(key)?;
            let Value::Object(inner) = value else {
                return Err(format!("the value of {key:?} must be a JSON object"));
            };
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(element.clone());
            }
            let child = Set::from_fields_v1(value)?;
            if !child.is_empty() {
                set.children.insert(element, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    #[test]
    fn fields_v1_round_trips_with_self_markers() {
        let fields = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}},
            "f:finalizers": {"v:\"a\"": {}},
        });
        let set = Set::from_fields_v1(&fields).unwrap();
        assert!(set.has(&[field("metadata"), field("labels")]));
        assert!(set.has(&[field("metadata"), field("labels"), field("app")]));
        assert!(!set.has(&[field("metadata")]));
        let app = PathElement::Key(vec![("name".into(), json!("app"))]);
        assert!(set.has(&[field("spec"), field("containers"), app.clone()]));
        assert!(set.has(&[field("spec"), field("containers"), app, field("image")]));
        assert_eq!(set.to_fields_v1(), fields);
    }

    #[test]
    fn owned_set_operations_agree_with_the_copying_ones() {
        let set = |paths: &[&[&str]]| {
            let mut set = Set::new();
            for path in paths {
                let path: Vec<_> = path.iter().map(|name| field(name)).collect();
                set.insert(&path);
            }
            set
        };
        let a = set(&[
            &["spec", "replicas"],
            &["spec", "template", "metadata", "labels", "app"],
            &["spec", "template"],
            &["metadata", "labels", "tier"],
        ]);
        let b = set(&[
            &["spec", "template", "metadata", "labels", "app"],
            &["spec", "paused"],
            &["status", "replicas"],
            &["metadata", "labels"],
        ]);
        for (x, y) in [(&a, &b), (&b, &a), (&a, &Set::new()), (&Set::new(), &b)] {
            assert_eq!(x.clone().merged(y.clone()), x.union(y));
            assert_eq!(x.clone().without(y), x.difference(y));
        }
        let keep = |e: &PathElement| e != &field("status");
        assert_eq!(b.clone().retain_top_owned(keep), b.retain_top(keep));
        assert_eq!(a.clone().without(&a), Set::new());
    }

    #[test]
    fn paths_print_like_upstream() {
        let path = vec![
            field("spec"),
            field("ports"),
            PathElement::Key(vec![
                ("port".into(), json!(80)),
                ("protocol".into(), json!("TCP")),
            ]),
            field("name"),
        ];
        assert_eq!(
            path_string(&path),
            r#".spec.ports[port=80,protocol="TCP"].name"#
        );
        assert_eq!(
            path_string(&[
                field("metadata"),
                field("finalizers"),
                PathElement::Value(json!("x"))
            ]),
            r#".metadata.finalizers[="x"]"#
        );
        assert_eq!(
            PathElement::decode(r#"k:{"containerPort":80,"protocol":"TCP"}"#)
                .unwrap()
                .encode(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
    }

    #[test]
    fn keys_order_numerically() {
        let port = |p: i64| PathElement::Key(vec![("containerPort".into(), json!(p))]);
        assert!(port(80) < port(443));
        assert!(field("z") < port(1));
        assert!(PathElement::Value(json!(2)) < PathElement::Value(json!("1")));
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::new();
        a.insert(&[field("spec"), field("replicas")]);
        a.insert(&[field("spec"), field("template")]);
        a.insert(&[field("spec"), field("template"), field("x")]);
        let mut b = Set::new();
        b.insert(&[field("spec"), field("template")]);
        let difference = a.difference(&b);
        assert!(difference.has(&[field("spec"), field("replicas")]));
        assert!(!difference.has(&[field("spec"), field("template")]));
        assert!(
            difference.has(&[field("spec"), field("template"), field("x")]),
            "difference is not recursive"
        );
        assert_eq!(a.intersection(&b), b);
        assert_eq!(b.union(&a), a);
        assert!(a.difference(&a).is_empty());
        assert_eq!(a.paths().len(), 3);
    }
}
