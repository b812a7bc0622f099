//! Label selectors compiled once per pod: the `LabelSelector` of affinity terms, topology
//! spread constraints and owners, and the `NodeSelector` of node affinity.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
    /// Node selectors only: the label parses as an integer greater (`Gt`) or less than this.
    Gt(i64),
    Lt(i64),
    /// A requirement that can never hold (an unknown operator, an unparsable bound).
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
}

impl Requirement {
    fn matches(&self, value: Option<&String>) -> bool {
        match (&self.operator, value) {
            (Operator::In(values), Some(v)) => values.contains(v),
            (Operator::In(_), None) => false,
            (Operator::NotIn(values), v) => v.is_none_or(|v| !values.contains(v)),
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Gt(bound), Some(v)) => v.parse::<i64>().is_ok_and(|n| n > *bound),
            (Operator::Lt(bound), Some(v)) => v.parse::<i64>().is_ok_and(|n| n < *bound),
            (Operator::Gt(_) | Operator::Lt(_), None) | (Operator::Never, _) => false,
        }
    }
}

fn operator(name: &str, values: Option<&Vec<String>>) -> Operator {
    let set = || values.into_iter().flatten().cloned().collect::<BTreeSet<_>>();
    let bound = || values.and_then(|v| (v.len() == 1).then(|| v[0].parse::<i64>().ok()).flatten());
    match name {
        "In" => Operator::In(set()),
        "NotIn" => Operator::NotIn(set()),
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => bound().map_or(Operator::Never, Operator::Gt),
        "Lt" => bound().map_or(Operator::Never, Operator::Lt),
        _ => Operator::Never,
    }
}

/// A compiled `metav1.LabelSelector`. A missing selector matches nothing and an empty one
/// everything, as in upstream's `LabelSelectorAsSelector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    nothing: bool,
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn nothing() -> Selector {
        Selector { nothing: true, requirements: Vec::new() }
    }

    pub fn everything() -> Selector {
        Selector { nothing: false, requirements: Vec::new() }
    }

    pub fn new(selector: Option<&LabelSelector>) -> Selector {
        let Some(selector) = selector else { return Selector::nothing() };
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(key, value)| Requirement { key: key.clone(), operator: Operator::In([value.clone()].into()) })
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "Gt" | "Lt" => Operator::Never,
                other => operator(other, expression.values.as_ref()),
            };
            requirements.push(Requirement { key: expression.key.clone(), operator });
        }
        Selector { nothing: false, requirements }
    }

    /// A selector of exactly these labels (a Service's or ReplicationController's selector).
    pub fn from_labels(labels: &Labels) -> Selector {
        let requirements = labels
            .iter()
            .map(|(key, value)| Requirement { key: key.clone(), operator: Operator::In([value.clone()].into()) })
            .collect();
        Selector { nothing: false, requirements }
    }

    /// Adds `key in (value)` (or `key notin (value)`): how `matchLabelKeys` and
    /// `mismatchLabelKeys` narrow a selector to the incoming pod's own label values.
    pub fn require(&mut self, key: &str, value: &str, equal: bool) {
        let values = [value.to_string()].into();
        let operator = if equal { Operator::In(values) } else { Operator::NotIn(values) };
        self.requirements.push(Requirement { key: key.to_string(), operator });
    }

    /// Adds every requirement of `other` (merging the selectors of a pod's owners).
    pub fn extend(&mut self, other: &Selector) {
        self.nothing |= other.nothing;
        self.requirements.extend(other.requirements.iter().cloned());
    }

    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: Option<&Labels>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels.and_then(|l| l.get(&r.key))))
    }
}

/// One compiled `NodeSelectorTerm`: label expressions and `metadata.name` field expressions,
/// all of which must hold. A term with neither matches no node.
#[derive(Debug, Clone)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

fn node_requirements(requirements: Option<&Vec<NodeSelectorRequirement>>) -> Vec<Requirement> {
    requirements
        .into_iter()
        .flatten()
        .map(|r| Requirement { key: r.key.clone(), operator: operator(&r.operator, r.values.as_ref()) })
        .collect()
}

impl NodeTerm {
    pub fn new(term: &NodeSelectorTerm) -> NodeTerm {
        let mut fields = node_requirements(term.match_fields.as_ref());
        for field in &mut fields {
            // Only `metadata.name` is a selectable node field, with `In` and `NotIn`.
            let supported = matches!(field.operator, Operator::In(_) | Operator::NotIn(_));
            if field.key != "metadata.name" || !supported {
                field.operator = Operator::Never;
            }
        }
        NodeTerm { labels: node_requirements(term.match_expressions.as_ref()), fields }
    }

    pub fn matches(&self, node: &Node) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        let labels = node.metadata.labels.as_ref();
        let name = node.metadata.name.clone();
        self.labels.iter().all(|r| r.matches(labels.and_then(|l| l.get(&r.key))))
            && self.fields.iter().all(|r| r.matches(name.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors() {
        let selector = Selector::new(Some(&LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        }));
        assert!(selector.matches(Some(&labels(&[("app", "web")]))));
        assert!(!selector.matches(Some(&labels(&[("app", "web"), ("tier", "db")]))));
        assert!(!selector.matches(None));
        assert!(!Selector::new(None).matches(Some(&labels(&[("app", "web")]))), "no selector selects nothing");
        assert!(Selector::new(Some(&LabelSelector::default())).matches(None), "an empty selector selects everything");
    }

    #[test]
    fn node_selector_terms() {
        let node = Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("n1".into()),
                labels: Some(labels(&[("cores", "8"), ("zone", "a")])),
                ..Default::default()
            },
            ..Default::default()
        };
        let term = |expressions: Vec<(&str, &str, Vec<&str>)>, fields: Vec<(&str, &str, Vec<&str>)>| {
            let reqs = |list: Vec<(&str, &str, Vec<&str>)>| {
                Some(
                    list.into_iter()
                        .map(|(k, op, v)| NodeSelectorRequirement {
                            key: k.into(),
                            operator: op.into(),
                            values: Some(v.into_iter().map(String::from).collect()),
                        })
                        .collect(),
                )
            };
            NodeTerm::new(&NodeSelectorTerm { match_expressions: reqs(expressions), match_fields: reqs(fields) })
        };
        assert!(term(vec![("cores", "Gt", vec!["4"])], vec![]).matches(&node));
        assert!(!term(vec![("cores", "Lt", vec!["4"])], vec![]).matches(&node));
        assert!(term(vec![("zone", "In", vec!["a", "b"]), ("gpu", "DoesNotExist", vec![])], vec![]).matches(&node));
        assert!(term(vec![], vec![("metadata.name", "In", vec!["n1"])]).matches(&node));
        assert!(!term(vec![], vec![("metadata.name", "NotIn", vec!["n1"])]).matches(&node));
        assert!(!term(vec![], vec![]).matches(&node), "an empty term matches nothing");
    }
}
