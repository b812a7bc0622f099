//! Label and field selectors as upstream's `labels` and `fields` packages define them: parsed
//! from the query-string syntax (`app=web,tier in (a,b),!canary`), compiled from a
//! `metav1.LabelSelector` or a `NodeSelectorTerm`, and matched against an object's labels.
//! One set of requirement semantics serves the apiserver's list filters, the scheduler's
//! affinity and spreading, and the controllers' ownership claims.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

type Labels = BTreeMap<String, String>;

/// Why a selector is invalid, in upstream's words (the apiserver returns them in a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A requirement of a label selector string does not parse.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A term of a field selector string does not parse.
    #[error("invalid selector: '{0}'; can't understand '{0}'")]
    FieldTerm(String),
    /// A field the resource cannot be selected by.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A `metav1.LabelSelector` expression with an operator selectors do not have.
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    /// A `metav1.LabelSelector` expression whose values do not suit its operator, reported
    /// as upstream's field error (`values: Invalid value: []string(nil): ...`).
    #[error("values: Invalid value: {}: {reason}", go_strings(values))]
    Values {
        values: Vec<String>,
        reason: &'static str,
    },
}

/// A string list as Go's `%#v` prints it, as upstream's field errors show values.
fn go_strings(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".into();
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
    /// The label parses as an integer greater (`Gt`) or less (`Lt`) than this.
    Gt(i64),
    Lt(i64),
    /// A requirement that can never hold (a node selector's unknown operator or bad bound).
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
}

impl Requirement {
    fn new(key: &str, operator: Operator) -> Requirement {
        Requirement {
            key: key.to_string(),
            operator,
        }
    }

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

fn single(value: String) -> BTreeSet<String> {
    BTreeSet::from([value])
}

/// A label selector: every requirement must hold. A missing `metav1.LabelSelector` selects
/// nothing and an empty one everything, as in upstream's `LabelSelectorAsSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    nothing: bool,
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn nothing() -> Selector {
        Selector {
            nothing: true,
            requirements: Vec::new(),
        }
    }

    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Parses upstream's string syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if !part.is_empty() {
                requirements.push(parse_requirement(part).map_err(SelectorError::Requirement)?);
            }
        }
        Ok(Selector {
            nothing: false,
            requirements,
        })
    }

    /// Compiles a `metav1.LabelSelector` strictly, like upstream's `LabelSelectorAsSelector`:
    /// only `In`, `NotIn`, `Exists` and `DoesNotExist`, with values that suit them.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(key, value)| Requirement::new(key, Operator::In(single(value.clone()))))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let listed = expression.values.clone().unwrap_or_default();
            let invalid = |reason| SelectorError::Values {
                values: listed.clone(),
                reason,
            };
            let values: BTreeSet<String> = listed.iter().cloned().collect();
            let operator = match expression.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(invalid(
                        "for 'in', 'notin' operators, values set can't be empty",
                    ))
                }
                "In" => Operator::In(values),
                "NotIn" => Operator::NotIn(values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(invalid(
                        "values set must be empty for exists and does not exist",
                    ))
                }
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::Operator(other.to_string())),
            };
            requirements.push(Requirement::new(&expression.key, operator));
        }
        Ok(Selector {
            nothing: false,
            requirements,
        })
    }

    /// Compiles an optional `metav1.LabelSelector` where an invalid one must simply match
    /// nothing (the apiserver validated it already): affinity terms, spread constraints.
    pub fn new(selector: Option<&LabelSelector>) -> Selector {
        selector
            .and_then(|s| Selector::from_label_selector(s).ok())
            .unwrap_or_else(Selector::nothing)
    }

    /// A selector of exactly these labels (a Service's or ReplicationController's selector).
    pub fn from_labels(labels: &Labels) -> Selector {
        let requirements = labels
            .iter()
            .map(|(key, value)| Requirement::new(key, Operator::In(single(value.clone()))))
            .collect();
        Selector {
            nothing: false,
            requirements,
        }
    }

    /// Adds `key in (value)` (or `key notin (value)`): how `matchLabelKeys` and
    /// `mismatchLabelKeys` narrow a selector to the incoming pod's own label values.
    pub fn require(&mut self, key: &str, value: &str, equal: bool) {
        let values = single(value.to_string());
        let operator = if equal {
            Operator::In(values)
        } else {
            Operator::NotIn(values)
        };
        self.requirements.push(Requirement::new(key, operator));
    }

    /// Adds every requirement of `other` (merging the selectors of a pod's owners).
    pub fn extend(&mut self, other: &Selector) {
        self.nothing |= other.nothing;
        self.requirements.extend(other.requirements.iter().cloned());
    }

    /// Selects everything: no requirement at all.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether labels (`None` for an object without any) satisfy every requirement.
    pub fn matches<'a>(&self, labels: impl Into<Option<&'a Labels>>) -> bool {
        let labels = labels.into();
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches(labels.and_then(|l| l.get(&r.key))))
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::new(
            &checked_key(key.trim())?,
            Operator::DoesNotExist,
        ));
    }
    for (token, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(token) {
            let values = single(checked_value(value.trim())?);
            let operator = if negated {
                Operator::NotIn(values)
            } else {
                Operator::In(values)
            };
            return Ok(Requirement::new(&checked_key(key.trim())?, operator));
        }
    }
    for (token, greater) in [(">", true), ("<", false)] {
        if let Some((key, value)) = part.split_once(token) {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("for '{token}', integer values required: {part}"))?;
            let operator = if greater {
                Operator::Gt(n)
            } else {
                Operator::Lt(n)
            };
            return Ok(Requirement::new(&checked_key(key.trim())?, operator));
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words[..] {
        let rest = rest.trim();
        let (negated, set) = if let Some(set) = rest.strip_prefix("notin") {
            (true, set)
        } else if let Some(set) = rest.strip_prefix("in") {
            (false, set)
        } else {
            return Err(format!(
                "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
            ));
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("found '{set}', expected: '('"))?;
        let values = inner
            .split(',')
            .map(|v| checked_value(v.trim()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let key = checked_key(key)?;
        return Ok(Requirement::new(
            &key,
            if negated {
                Operator::NotIn(values)
            } else {
                Operator::In(values)
            },
        ));
    }
    Ok(Requirement::new(&checked_key(part)?, Operator::Exists))
}

fn checked_key(key: &str) -> Result<String, String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    }
}

fn checked_value(value: &str) -> Result<String, String> {
    let valid = value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!("invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    }
}

/// A field selector: `field=value` / `field!=value` terms, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the selector, rejecting fields outside `supported` (the resource's selectable
    /// fields) as upstream's apiserver does.
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::FieldTerm(part.to_string()));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(SelectorError::UnsupportedField(field.to_string()));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object whose selectable fields are `fields` matches. A field the object does
    /// not have counts as the empty string, as upstream's field sets do.
    pub fn matches(&self, fields: &[(&'static str, String)]) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = fields
                .iter()
                .find(|(f, _)| f == field)
                .map_or("", |(_, v)| v.as_str());
            (actual == value) == *equal
        })
    }
}

/// One compiled `NodeSelectorTerm`: label expressions (with `Gt` and `Lt`) and
/// `metadata.name` field expressions, all of which must hold. A term with neither matches no
/// node; an invalid expression never holds.
#[derive(Debug, Clone)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

fn node_operator(name: &str, values: Option<&Vec<String>>) -> Operator {
    let set = || {
        values
            .into_iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
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

fn node_requirements(requirements: Option<&Vec<NodeSelectorRequirement>>) -> Vec<Requirement> {
    requirements
        .into_iter()
        .flatten()
        .map(|r| Requirement::new(&r.key, node_operator(&r.operator, r.values.as_ref())))
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
        NodeTerm {
            labels: node_requirements(term.match_expressions.as_ref()),
            fields,
        }
    }

    pub fn matches(&self, node: &Node) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        let labels = node.metadata.labels.as_ref();
        let name = node.metadata.name.as_ref();
        self.labels
            .iter()
            .all(|r| r.matches(labels.and_then(|l| l.get(&r.key))))
            && self.fields.iter().all(|r| r.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn label_selectors_follow_upstream_semantics() {
        let app = labels(&[("app", "web"), ("tier", "front"), ("replicas", "3")]);
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db,tier=front", true),
            ("app in (db, web)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,missing", false),
            ("replicas>2", true),
            ("replicas<3", false),
            ("app>1", false),
            ("", true),
        ];
        for (text, expected) in cases {
            assert_eq!(
                Selector::parse(text).unwrap().matches(&app),
                expected,
                "{text}"
            );
        }
        assert!(Selector::parse("app in (web").is_err());
        assert!(Selector::parse("a b c").is_err());
        assert!(Selector::parse("-bad=x").is_err());
    }

    #[test]
    fn label_selector_parse_errors_use_upstream_wording() {
        let message = |text: &str| Selector::parse(text).unwrap_err().to_string();
        assert_eq!(
            message("-bad=x"),
            "unable to parse requirement: invalid label key \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert_eq!(
            message("app=-x"),
            "unable to parse requirement: invalid label value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        );
        assert_eq!(
            message("a b c"),
            "unable to parse requirement: found 'b c', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            message("app in web"),
            "unable to parse requirement: found 'web', expected: '('"
        );
        assert_eq!(
            message("n>x"),
            "unable to parse requirement: for '>', integer values required: n>x"
        );
    }

    #[test]
    fn field_selectors_reject_unknown_fields() {
        let supported = ["metadata.name", "status.phase"];
        let selector =
            FieldSelector::parse("metadata.name=x,status.phase!=Running", &supported).unwrap();
        assert!(selector.matches(&[
            ("metadata.name", "x".into()),
            ("status.phase", "Pending".into())
        ]));
        assert!(!selector.matches(&[
            ("metadata.name", "x".into()),
            ("status.phase", "Running".into())
        ]));
        assert!(FieldSelector::parse("metadata.name==x", &supported)
            .unwrap()
            .matches(&[("metadata.name", "x".into())]));
        let error = FieldSelector::parse("spec.foo=bar", &supported).unwrap_err();
        assert_eq!(error.to_string(), "field label not supported: spec.foo");
        let error = FieldSelector::parse("metadata.name", &supported).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
    }

    #[test]
    fn label_selector_objects() {
        let selector = Selector::new(Some(&LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expression("tier", "NotIn", &["db"])]),
        }));
        assert!(selector.matches(Some(&labels(&[("app", "web")]))));
        assert!(!selector.matches(Some(&labels(&[("app", "web"), ("tier", "db")]))));
        assert!(!selector.matches(None));
        assert!(
            !Selector::new(None).matches(Some(&labels(&[("app", "web")]))),
            "no selector selects nothing"
        );
        assert!(
            Selector::new(Some(&LabelSelector::default())).matches(None),
            "an empty selector selects everything"
        );
        assert!(Selector::new(Some(&LabelSelector::default())).is_empty());
    }

    #[test]
    fn invalid_label_selector_objects_are_errors_or_select_nothing() {
        let with = |e: LabelSelectorRequirement| LabelSelector {
            match_expressions: Some(vec![e]),
            ..Default::default()
        };
        let error = |e| {
            Selector::from_label_selector(&with(e))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(expression("a", "Gt", &["1"])),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            error(expression("a", "In", &[])),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            error(expression("a", "Exists", &["x", "y"])),
            "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist"
        );
        let lenient = Selector::new(Some(&with(expression("a", "Gt", &["1"]))));
        assert!(
            !lenient.matches(&labels(&[("a", "5")])),
            "an invalid selector selects nothing"
        );
    }

    #[test]
    fn narrowing_and_merging() {
        let mut selector = Selector::from_labels(&labels(&[("app", "web")]));
        selector.require("version", "v1", true);
        selector.require("track", "canary", false);
        assert!(selector.matches(&labels(&[("app", "web"), ("version", "v1")])));
        assert!(!selector.matches(&labels(&[
            ("app", "web"),
            ("version", "v1"),
            ("track", "canary")
        ])));
        let mut combined = Selector::everything();
        combined.extend(&selector);
        assert_eq!(combined, selector);
        combined.extend(&Selector::nothing());
        assert!(!combined.matches(&labels(&[("app", "web"), ("version", "v1")])));
    }

    #[test]
    fn node_selector_terms() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(labels(&[("cores", "8"), ("zone", "a")])),
                ..Default::default()
            },
            ..Default::default()
        };
        let term = |expressions: Vec<(&str, &str, Vec<&str>)>,
                    fields: Vec<(&str, &str, Vec<&str>)>| {
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
            NodeTerm::new(&NodeSelectorTerm {
                match_expressions: reqs(expressions),
                match_fields: reqs(fields),
            })
        };
        assert!(term(vec![("cores", "Gt", vec!["4"])], vec![]).matches(&node));
        assert!(!term(vec![("cores", "Lt", vec!["4"])], vec![]).matches(&node));
        assert!(
            !term(vec![("cores", "Gt", vec!["x"])], vec![]).matches(&node),
            "a bad bound never holds"
        );
        assert!(term(
            vec![
                ("zone", "In", vec!["a", "b"]),
                ("gpu", "DoesNotExist", vec![])
            ],
            vec![]
        )
        .matches(&node));
        assert!(term(vec![], vec![("metadata.name", "In", vec!["n1"])]).matches(&node));
        assert!(!term(vec![], vec![("metadata.name", "NotIn", vec!["n1"])]).matches(&node));
        assert!(!term(vec![], vec![("spec.podCIDR", "In", vec!["x"])]).matches(&node));
        assert!(
            !term(vec![], vec![]).matches(&node),
            "an empty term matches nothing"
        );
    }
}
