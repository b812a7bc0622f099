//! `metadata.managedFields`: who owns which fields, and how ordinary writes (create, update,
//! non-apply patch) move ownership. An update makes its manager the owner of every field it
//! added or changed, taking them from everyone else without conflicts, and fields it removed
//! stop being owned by anyone.

use serde_json::{json, Value};

use super::fieldset::{PathElement, Set};
use super::typed::{compare, Comparison, Ty};

/// `Apply` or `Update`, as in `managedFields[].operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// Empty for the main resource.
    pub subresource: String,
    /// When the manager last changed the object (`metav1.Time`), if it ever did.
    pub time: Option<Value>,
    pub set: Set,
}

impl Entry {
    /// Whether both entries are the same owner: one entry is kept per manager, operation and
    /// subresource, and for updates per API version too (an applier keeps one entry whatever
    /// version it applies).
    pub fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// Upstream's manager identifier (the entry without fields and time, as JSON), which
    /// orders managers in conflict messages.
    pub fn identifier(&self) -> String {
        let mut id = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            Value::from(self.manager.as_str()),
            self.operation.as_str()
        );
        if self.operation == Operation::Update && !self.api_version.is_empty() {
            id.push_str(&format!(
                ",\"apiVersion\":{}",
                Value::from(self.api_version.as_str())
            ));
        }
        if !self.subresource.is_empty() {
            id.push_str(&format!(
                ",\"subresource\":{}",
                Value::from(self.subresource.as_str())
            ));
        }
        id.push('}');
        id
    }

    /// The manager as conflict messages name it: `"kubectl"`, or for updaters
    /// `"kubectl-client-side-apply" using apps/v1`.
    pub fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }

    fn encode(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.set.to_fields_v1(),
        });
        if let Some(time) = &self.time {
            entry["time"] = time.clone();
        }
        if !self.subresource.is_empty() {
            entry["subresource"] = Value::from(self.subresource.as_str());
        }
        entry
    }

    fn decode(index: usize, entry: &Value) -> Result<Entry, String> {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let operation = match text("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => {
                return Err(format!(
                    "missing fieldsType in managed fields entry {index}"
                ))
            }
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {index}"
                ))
            }
        }
        let set = match entry.get("fieldsV1") {
            Some(fields) => Set::from_fields_v1(fields)?,
            None => Set::new(),
        };
        let time = entry.get("time").filter(|t| !t.is_null()).cloned();
        Ok(Entry {
            manager: text("manager"),
            operation,
            api_version,
            subresource: text("subresource"),
            time,
            set,
        })
    }
}

/// All entries of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    pub entries: Vec<Entry>,
}

impl Managed {
    /// Decodes `metadata.managedFields`; a later entry for the same owner replaces an earlier one.
    pub fn decode(list: Option<&Value>) -> Result<Managed, String> {
        let mut managed = Managed::default();
        let Some(list) = list.filter(|l| !l.is_null()) else {
            return Ok(managed);
        };
        let Value::Array(entries) = list else {
            return Err("managedFields must be a list".into());
        };
        for (index, entry) in entries.iter().enumerate() {
            managed.put(Entry::decode(index, entry)?);
        }
        Ok(managed)
    }

    /// The `managedFields` list, ordered as upstream orders it (appliers first, then by time,
    /// manager, version and subresource); `None` when nothing is owned.
    pub fn encode(&self) -> Option<Value> {
        let mut entries: Vec<&Entry> = self.entries.iter().filter(|e| !e.set.is_empty()).collect();
        if entries.is_empty() {
            return None;
        }
        let seconds = |e: &Entry| {
            e.time
                .as_ref()
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or(0, |t| t.as_second())
        };
        entries.sort_by(|a, b| {
            a.operation
                .cmp(&b.operation)
                .then_with(|| seconds(a).cmp(&seconds(b)))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        Some(Value::Array(
            entries.into_iter().map(Entry::encode).collect(),
        ))
    }

    pub fn find(&self, owner: &Entry) -> Option<&Entry> {
        self.entries.iter().find(|e| e.same_owner(owner))
    }

    /// Adds `entry`, replacing the entry of the same owner.
    pub fn put(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.same_owner(&entry)) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    pub fn remove(&mut self, owner: &Entry) {
        self.entries.retain(|e| !e.same_owner(owner));
    }

    fn drop_empty(&mut self) {
        self.entries.retain(|e| !e.set.is_empty());
    }
}

/// The fields of one write's scope: the main resource of a kind with a status subresource
/// does not manage `status`, and a subresource manages only its own field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    AllBut(&'static str),
    Only(&'static str),
}

impl Scope {
    pub fn keeps(self, element: &PathElement) -> bool {
        let PathElement::Field(name) = element else {
            return true;
        };
        match self {
            Scope::All => true,
            Scope::AllBut(field) => name != field,
            Scope::Only(field) => name == field,
        }
    }
}

/// Fields nobody manages: identity and system metadata (upstream's stripped fields).
pub fn strip(set: Set) -> Set {
    let field = |name: &str| PathElement::Field(name.into());
    let mut stripped = Set::new();
    stripped.insert(&[field("apiVersion")]);
    stripped.insert(&[field("kind")]);
    stripped.insert(&[field("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        stripped.insert(&[field("metadata"), field(name)]);
    }
    set.without(&stripped)
}

/// The owner a write acts as, with the time it writes at.
#[derive(Debug, Clone)]
pub struct Writer {
    pub manager: String,
    pub api_version: String,
    pub subresource: String,
    pub scope: Scope,
    pub now: Value,
}

impl Writer {
    pub(super) fn entry(&self, operation: Operation, set: Set) -> Entry {
        Entry {
            manager: self.manager.clone(),
            operation,
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
            time: None,
            set,
        }
    }
}

/// Upstream keeps at most this many update entries, folding the oldest into `ancient-changes`.
const MAX_UPDATE_MANAGERS: usize = 10;

/// Moves ownership for an update from `old` to `new` (objects without `managedFields`):
/// everyone loses what changed or went away, and the writer gains what it added or changed.
pub fn update(managed: &mut Managed, old: &Value, new: &Value, ty: Ty, writer: &Writer) {
    let Comparison {
        added,
        removed,
        modified,
    } = compare(old, new, ty).retain_top(|e| writer.scope.keeps(e));
    let changed = modified.merged(added);
    for entry in &mut managed.entries {
        entry.set = std::mem::take(&mut entry.set)
            .without(&changed)
            .without(&removed);
    }
    managed.drop_empty();
    let owned = strip(changed.without(&removed));
    if !owned.is_empty() {
        let mut entry = writer.entry(Operation::Update, owned);
        if let Some(previous) = managed.find(&entry) {
            entry.set = entry.set.union(&previous.set);
        }
        entry.time = Some(writer.now.clone());
        managed.put(entry);
    }
    cap_updaters(managed);
}

/// Folds the oldest update entries into one `ancient-changes` entry per API version until
/// at most [`MAX_UPDATE_MANAGERS`] remain.
fn cap_updaters(managed: &mut Managed) {
    let mut updaters: Vec<Entry> = managed
        .entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let seconds = |e: &Entry| {
        e.time
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second())
    };
    updaters.sort_by(|a, b| {
        seconds(a)
            .cmp(&seconds(b))
            .then_with(|| a.identifier().cmp(&b.identifier()))
    });
    let mut remaining = updaters.len();
    let mut first_of_version: Vec<(String, Entry)> = Vec::new();
    for entry in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let bucket = Entry {
            manager: "ancient-changes".into(),
            operation: Operation::Update,
            api_version: entry.api_version.clone(),
            subresource: String::new(),
            time: None,
            set: Set::new(),
        };
        match first_of_version
            .iter()
            .find(|(v, _)| *v == entry.api_version)
        {
            Some((_, first)) => {
                let base = match managed.find(&bucket) {
                    Some(existing) => existing.set.clone(),
                    None => {
                        let first = first.clone();
                        managed.remove(&first);
                        first.set
                    }
                };
                managed.remove(&entry);
                managed.put(Entry {
                    set: entry.set.union(&base),
                    time: entry.time.clone(),
                    ..bucket
                });
                remaining -= 1;
            }
            None => first_of_version.push((entry.api_version.clone(), entry)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::Schemas;

    fn schemas() -> std::sync::Arc<Schemas> {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>();
        Schemas::new(generator.take_definitions(true))
    }

    fn writer(manager: &str, now: &str) -> Writer {
        Writer {
            manager: manager.into(),
            api_version: "apps/v1".into(),
            subresource: String::new(),
            scope: Scope::AllBut("status"),
            now: Value::from(now),
        }
    }

    #[test]
    fn updates_transfer_ownership_of_changed_fields() {
        let schemas = schemas();
        let ty = Ty::root(schemas.root("io.k8s.api.apps.v1.Deployment"));
        let zero = crate::patch::table::zero_object("io.k8s.api.apps.v1.Deployment");
        let created = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "uid": "u", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
            "status": {"replicas": 0}
        });
        let mut managed = Managed::default();
        update(
            &mut managed,
            &zero,
            &created,
            ty,
            &writer("kubectl-create", "2024-01-01T00:00:00Z"),
        );
        assert_eq!(
            managed.encode().unwrap(),
            json!([{
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                        "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
                    }
                }
            }])
        );

        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        update(
            &mut managed,
            &created,
            &scaled,
            ty,
            &writer("kubectl-edit", "2024-01-01T00:01:00Z"),
        );
        let list = managed.encode().unwrap();
        assert_eq!(list[0]["manager"], "kubectl-create");
        assert_eq!(
            list[0]["fieldsV1"]["f:spec"].get("f:replicas"),
            None,
            "replicas moved to the editor"
        );
        assert_eq!(list[1]["manager"], "kubectl-edit");
        assert_eq!(
            list[1]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:tier": {}}}, "f:spec": {"f:replicas": {}}})
        );

        let mut unlabeled = scaled.clone();
        unlabeled["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        update(
            &mut managed,
            &scaled,
            &unlabeled,
            ty,
            &writer("kubectl-edit", "2024-01-01T00:02:00Z"),
        );
        let list = managed.encode().unwrap();
        assert_eq!(
            list[0]["fieldsV1"]["f:metadata"],
            Value::Null,
            "removed fields are owned by no one"
        );
        assert_eq!(list[1]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(
            list[1]["time"], "2024-01-01T00:01:00Z",
            "removing fields alone takes no ownership and keeps the time"
        );
    }

    #[test]
    fn managed_fields_round_trip_and_identify_owners() {
        let list = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:x": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:y": {}}}, "subresource": "status"},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}},
        ]);
        let managed = Managed::decode(Some(&list)).unwrap();
        let encoded = managed.encode().unwrap();
        let order: Vec<&str> = encoded
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["z", "a", "b"]);
        assert_eq!(
            managed.entries[1].identifier(),
            r#"{"manager":"a","operation":"Update","apiVersion":"v1","subresource":"status"}"#
        );
        assert_eq!(
            managed.entries[1].describe(),
            r#""a" with subresource "status" using v1"#
        );
        assert_eq!(
            managed.entries[2].identifier(),
            r#"{"manager":"z","operation":"Apply"}"#
        );
        assert!(Managed::decode(Some(
            &json!([{"manager": "x", "operation": "Other", "apiVersion": "v1"}])
        ))
        .is_err());
    }

    #[test]
    fn update_entries_are_capped() {
        let mut managed = Managed::default();
        for i in 0..12 {
            let mut set = Set::new();
            set.insert(&[
                PathElement::Field("data".into()),
                PathElement::Field(format!("k{i}")),
            ]);
            managed.put(Entry {
                manager: format!("m{i:02}"),
                operation: Operation::Update,
                api_version: "v1".into(),
                subresource: String::new(),
                time: Some(Value::from(format!("2024-01-01T00:00:{i:02}Z"))),
                set,
            });
        }
        cap_updaters(&mut managed);
        assert_eq!(managed.entries.len(), 10);
        let ancient = managed
            .entries
            .iter()
            .find(|e| e.manager == "ancient-changes")
            .unwrap();
        assert_eq!(
            ancient.set.paths().len(),
            3,
            "m00, m01 and m02 fold into one entry"
        );
        assert!(managed
            .entries
            .iter()
            .all(|e| !["m00", "m01", "m02"].contains(&e.manager.as_str())));
    }
}
