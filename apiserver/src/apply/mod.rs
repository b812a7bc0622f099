//! Server-side apply and `metadata.managedFields`, as upstream's field manager does them.
//!
//! Every write records who owns which fields: creates, updates and non-apply patches as
//! `Update` entries of their field manager ([`track`]), `application/apply-patch+yaml`
//! patches as `Apply` entries ([`apply`]), which merge a configuration by the schema and
//! refuse, with a 409, to change fields other managers own unless forced. kubectl's own
//! migration between client-side and server-side apply is honoured: `kubectl` applying over
//! fields its client-side apply set takes them without conflicts, and keeps the
//! `last-applied-configuration` annotation in step.

pub mod fieldset;
mod managed;
mod merge;
mod typed;

use serde_json::Value;

use self::fieldset::{path_string, Set};
use self::managed::{Managed, Scope, Writer};
use self::merge::Conflict;
use self::typed::{compare, field_set, Ty};
use crate::error::{ApiError, ApiResult, Cause, Target};
use crate::patch::schema::Node;
use crate::patch::table;
use crate::registry::ApiRequest;

/// kubectl's client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream's limit on field manager names.
const MAX_MANAGER_LENGTH: usize = 128;

/// Upstream's limit on the total size of an object's annotations.
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// The resource a write goes to, as the bookkeeping needs it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The object's schema.
    pub schema: Node<'a>,
    /// Its OpenAPI definition, which picks the empty object a create starts from.
    pub definition: &'a str,
    /// `v1` or `apps/v1`: the version managers write with.
    pub api_version: &'a str,
    pub kind: &'a str,
    pub subresource: Option<&'a str>,
    /// The resource serves `/status`, so writes to the main resource do not manage `status`.
    pub has_status: bool,
}

impl Context<'_> {
    fn scope(&self) -> Scope {
        match self.subresource {
            Some("status") => Scope::Only("status"),
            Some("finalize") => Scope::Only("spec"),
            Some(_) => Scope::All,
            None if self.has_status => Scope::AllBut("status"),
            None => Scope::All,
        }
    }

    fn writer(&self, manager: &str) -> Writer {
        Writer {
            manager: manager.to_string(),
            api_version: self.api_version.to_string(),
            subresource: self.subresource.unwrap_or("").to_string(),
            scope: self.scope(),
            now: serde_json::to_value(crate::registry::stored::now()).unwrap_or(Value::Null),
        }
    }

    fn ty(&self) -> Ty<'_> {
        Ty::root(self.schema)
    }
}

/// The field manager of a write: `?fieldManager=`, else the User-Agent's product name (what
/// precedes the first `/`, printable characters only), as upstream defaults it. Checks the
/// options upstream validates (`kind` is `CreateOptions`, `UpdateOptions` or `PatchOptions`):
/// a name of printable characters within 128 bytes, required for apply, `force` only with
/// apply.
pub fn field_manager(request: &ApiRequest, kind: &'static str, apply: bool) -> ApiResult<String> {
    let manager = request.query.field_manager.clone().unwrap_or_default();
    let mut causes = Vec::new();
    if kind == "PatchOptions" {
        if apply && manager.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "fieldManager".into(),
                message: "Required value: is required for apply patch".into(),
            });
        } else if !apply && request.query.force.is_some() {
            causes.push(Cause::forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
    }
    if manager.len() > MAX_MANAGER_LENGTH {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: "fieldManager".into(),
            message: format!("Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"),
        });
    }
    for (at, c) in manager.char_indices() {
        if !printable(c) {
            causes.push(Cause::invalid(
                format!("fieldManager[{at}]"),
                &Value::from(manager.as_str()),
                "all characters must be printable",
            ));
        }
    }
    if !causes.is_empty() {
        let target = Target {
            group: "meta.k8s.io".into(),
            resource: String::new(),
            kind: kind.into(),
            name: String::new(),
        };
        return Err(ApiError::Invalid { target, causes });
    }
    if !manager.is_empty() {
        return Ok(manager);
    }
    let agent = request
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut name = String::new();
    for c in agent
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| printable(*c))
    {
        if name.len() + c.len_utf8() > MAX_MANAGER_LENGTH {
            break;
        }
        name.push(c);
    }
    Ok(name)
}

/// Go's `unicode.IsPrint`: graphic characters and the ASCII space.
fn printable(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace())
}

/// Records an update (a create when `old` is `None`) by `manager` in `new`'s managed fields.
/// The entries to start from are the ones `new` carries (a client may rewrite them; `[]` or
/// `[{}]` resets them), else the live object's; subresources always start from the live ones.
pub fn track(old: Option<Value>, new: &mut Value, context: &Context, manager: &str) {
    let mut old = old.unwrap_or_else(|| table::zero_object(context.definition));
    // Both objects are compared without their managed fields, which are taken out rather
    // than the objects copied without them: a write pays for one walk of each, not a clone.
    let requested = take_managed(new);
    let live = Managed::decode(take_managed(&mut old).as_ref()).unwrap_or_default();
    let mut managed = match requested {
        _ if context.subresource.is_some() => live,
        Some(Value::Array(entries))
            if entries.is_empty() || entries == [Value::Object(Default::default())] =>
        {
            Managed::default()
        }
        requested => match Managed::decode(requested.as_ref()) {
            Ok(given) if !given.entries.is_empty() => given,
            _ => live,
        },
    };
    managed::update(
        &mut managed,
        &old,
        new,
        context.ty(),
        &context.writer(manager),
    );
    set_managed(new, managed.encode());
}

/// Takes `metadata.managedFields` out of `object`.
fn take_managed(object: &mut Value) -> Option<Value> {
    object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|metadata| metadata.remove("managedFields"))
}

/// Applies the YAML configuration `body` for `manager` to `live` (`None`: the object does
/// not exist yet) and returns the object to store, managed fields included.
pub fn apply(
    live: Option<&Value>,
    body: &[u8],
    context: &Context,
    manager: &str,
    force: bool,
) -> ApiResult<Value> {
    let config: Value = crate::yaml::to_json(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
    let Value::Object(fields) = &config else {
        return Err(ApiError::BadRequest(format!(
            "error decoding YAML: the configuration is not an object: {config}"
        )));
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let api_version = text(fields.get("apiVersion"));
    let kind = text(fields.get("kind"));
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let gvk = format!("{group}/{version}, Kind={kind}");
    if api_version != context.api_version || kind != context.kind {
        return Err(ApiError::BadRequest(format!("invalid object type: {gvk}")));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let ty = context.ty();
    if let Err(errors) = field_set(&config, ty, true) {
        let name = format!(
            "{}/{}",
            text(config.pointer("/metadata/namespace")),
            text(config.pointer("/metadata/name"))
        );
        let detail = match errors.as_slice() {
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        };
        return Err(ApiError::Unclassified(format!(
            "failed to create typed patch object ({name}; {gvk}): {detail}"
        )));
    }

    let zero;
    let live = match live {
        Some(live) => live,
        None => {
            zero = table::zero_object(context.definition);
            &zero
        }
    };
    let managed = Managed::decode(live.pointer("/metadata/managedFields"))
        .map_err(|e| ApiError::Unclassified(format!("failed to decode managed fields: {e}")))?;
    let bare = without_managed(live);
    let writer = context.writer(manager);
    let applied = match merge::apply(&bare, &config, ty, &managed, &writer, force) {
        Ok(applied) => applied,
        Err(conflicts) => {
            // kubectl taking over from its own client-side apply: fields whose live values
            // are still what the last client-side apply set are its own to take.
            let allowed = (manager == "kubectl")
                .then(|| allowed_by_last_applied(&bare, context))
                .flatten();
            let Some(allowed) = allowed else {
                return Err(conflict_error(conflicts));
            };
            let remaining: Vec<Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.has(&c.path))
                .collect();
            if !remaining.is_empty() {
                return Err(conflict_error(remaining));
            }
            merge::apply(&bare, &config, ty, &managed, &writer, true).map_err(conflict_error)?
        }
    };
    let mut object = applied.object.unwrap_or(bare);
    if manager == "kubectl" {
        update_last_applied(&mut object, &config);
    }
    set_managed(&mut object, applied.managed.encode());
    Ok(object)
}

/// The fields of the last client-side apply whose live values it still set.
fn allowed_by_last_applied(live: &Value, context: &Context) -> Option<Set> {
    let text = live
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|t| !t.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(context.api_version) {
        return None;
    }
    let set = field_set(&last, context.ty(), true).ok()?;
    let comparison = compare(&last, live, context.ty());
    Some(
        set.difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed),
    )
}

/// Rewrites an existing last-applied annotation to the configuration kubectl just applied
/// server-side, so a later client-side apply diffs against it.
fn update_last_applied(object: &mut Value, config: &Value) {
    let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if annotations
        .get(LAST_APPLIED)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return;
    }
    let mut last = config.clone();
    if let Some(metadata) = last.get_mut("metadata").and_then(Value::as_object_mut) {
        match metadata.get_mut("annotations") {
            Some(Value::Object(own)) => {
                own.remove(LAST_APPLIED);
            }
            Some(_) => {
                metadata.remove("annotations");
            }
            None => {}
        }
    }
    annotations.insert(LAST_APPLIED.into(), Value::from(go_json(&last) + "\n"));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > MAX_ANNOTATIONS_SIZE {
        annotations.remove(LAST_APPLIED);
    }
}

/// JSON as Go's encoder writes it: sorted keys, HTML characters escaped.
fn go_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The 409 upstream answers: one line per conflict when there are several, grouped by
/// manager.
fn conflict_error(conflicts: Vec<Conflict>) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict",
            field: path_string(&c.path),
            message: format!("conflict with {}", c.owner.describe()),
        })
        .collect();
    let message = match conflicts.as_slice() {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.owner.describe(),
            path_string(&one.path)
        ),
        many => {
            let mut lines = Vec::new();
            let mut previous: Option<String> = None;
            for conflict in many {
                let id = conflict.owner.identifier();
                if previous.as_ref() != Some(&id) {
                    lines.push(format!("conflicts with {}:", conflict.owner.describe()));
                    previous = Some(id);
                }
                lines.push(format!("- {}", path_string(&conflict.path)));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::ApplyConflict { message, causes }
}

fn without_managed(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

fn set_managed(object: &mut Value, managed: Option<Value>) {
    let Some(metadata) = object.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()))
    }) else {
        return;
    };
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    match managed {
        Some(list) => {
            metadata.insert("managedFields".into(), list);
        }
        None => {
            metadata.remove("managedFields");
        }
    }
}

#[cfg(test)]
mod tests;
