//! The `/scale` subresource (`autoscaling/v1` Scale), which `kubectl scale` and autoscalers
//! use to change replicas without touching the rest of the object.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde_json::{json, Value};

use super::encode::{yaml, Outcome};
use super::request::{decode_body, ApiRequest, Output, Verb};
use super::strategy::{ScalePaths, Strategy};
use super::table::{age, table, Cell, Cells, Column, IncludeObject};
use super::{stored, Rest};
use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::PatchType;

impl<S: Strategy> Rest<S> {
    pub(super) async fn scale(&self, request: ApiRequest) -> ApiResult<Outcome> {
        let paths = self.info.description.scale.ok_or(ApiError::PathNotFound)?;
        let name = request.name.clone().unwrap_or_default();
        let namespace = request.namespace.clone();
        let key = self.key(namespace.as_deref(), &name);
        let patch = match request.verb {
            Verb::Patch => Some(PatchType::from_headers(&request.headers)?),
            _ => None,
        };
        let put = match request.verb {
            Verb::Update => Some(parse_scale(
                &decode_body(&request.headers, &request.body)?,
                &name,
            )?),
            _ => None,
        };
        loop {
            let current = self
                .store
                .get(key.as_bytes())
                .await?
                .ok_or_else(|| ApiError::NotFound(self.info.target(&name)))?;
            let object: S::Object = self.decode(&current.value, current.mod_revision)?;
            let mut value =
                serde_json::to_value(&object).map_err(|e| ApiError::Internal(e.to_string()))?;
            let mut applied = None;
            let wanted = match (patch, &put) {
                (Some(PatchType::Apply), _) => {
                    let (replicas, result) = self.apply_scale(&request, &value, paths, &name)?;
                    applied = Some(result);
                    Some((replicas, None))
                }
                (Some(kind), _) => {
                    // The patch applies to the Scale the client sees; Scale has no list
                    // semantics, so an empty schema suffices for strategic merge.
                    let scale = scale_value(&value, paths);
                    let empty = crate::patch::schema::Schemas::new(Default::default());
                    let patched =
                        crate::patch::apply(kind, &scale, &request.body, empty.root("Scale"))?;
                    let (replicas, demanded) = parse_scale(&patched, &name)?;
                    // Only a resourceVersion the patch itself changed pins the write.
                    Some((
                        replicas,
                        demanded.filter(|rv| *rv != current.mod_revision.to_string()),
                    ))
                }
                (None, put) => put.clone(),
            };
            let Some((replicas, precondition)) = wanted else {
                return Ok(Outcome::Scale(scale_value(&value, paths)));
            };
            if precondition
                .as_ref()
                .is_some_and(|rv| *rv != current.mod_revision.to_string())
            {
                return Err(ApiError::Conflict {
                    target: self.info.target(&name),
                    detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
                });
            }
            let old_scale = scale_value(&value, paths);
            let mut new_scale = old_scale.clone();
            new_scale["spec"]["replicas"] = Value::from(replicas);
            let admitted = self.admit_scale(&request, new_scale, old_scale).await?;
            let replicas = admitted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(replicas);
            set_path(&mut value, paths.spec_replicas, Value::from(replicas));
            let mut updated: S::Object = serde_json::from_value(value.clone())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if self.info.description.generation
                && get_path(
                    &serde_json::to_value(&object).unwrap_or_default(),
                    paths.spec_replicas,
                ) != Some(&Value::from(replicas))
            {
                updated.metadata_mut().generation =
                    Some(object.metadata().generation.unwrap_or(0) + 1);
            }
            // The writer owns the parent's replicas, recorded with subresource `scale`.
            match &applied {
                Some(applied) => {
                    let managed = applied
                        .pointer("/metadata/managedFields")
                        .cloned()
                        .unwrap_or(Value::Null);
                    updated.metadata_mut().managed_fields = serde_json::from_value(managed)
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                }
                None => {
                    let options = if patch.is_some() {
                        "PatchOptions"
                    } else {
                        "UpdateOptions"
                    };
                    let manager = crate::apply::field_manager(&request, options, false)?;
                    self.track(Some(&object), &mut updated, &request, &manager)?;
                }
            }
            let raw = stored::encode(&updated)?;
            if request.query.dry_run || raw == current.value {
                let value = serde_json::to_value(&updated)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                return Ok(Outcome::Scale(scale_value(&value, paths)));
            }
            match self.store.update(key.as_bytes(), raw.clone(), current.mod_revision).await {
                Ok(revision) => {
                    let mut value = serde_json::to_value(&updated).map_err(|e| ApiError::Internal(e.to_string()))?;
                    set_path(&mut value, "metadata.resourceVersion", Value::from(revision.to_string()));
                    return Ok(Outcome::Scale(scale_value(&value, paths)));
                }
                Err(store::Error::Conflict { .. }) if precondition.is_none() => continue,
                Err(store::Error::Conflict { .. }) => {
                    return Err(ApiError::Conflict {
                        target: self.info.target(&name),
                        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
                    })
                }
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// Server-side apply of a Scale: the replicas it sets are applied to the parent object by
    /// the same field manager, so ownership of `spec.replicas` and conflicts with other
    /// managers work as on the main resource. Returns the replicas and the applied object.
    fn apply_scale(
        &self,
        request: &ApiRequest,
        live: &Value,
        paths: ScalePaths,
        name: &str,
    ) -> ApiResult<(i64, Value)> {
        let config: Value = crate::yaml::to_json(&request.body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
        let (replicas, _) = parse_scale(&config, name)?;
        let mut parent = json!({"apiVersion": self.info.api_version(), "kind": self.info.kind, "metadata": {"name": name}});
        set_path(&mut parent, paths.spec_replicas, Value::from(replicas));
        let manager = crate::apply::field_manager(request, "PatchOptions", true)?;
        let force = request.query.force.unwrap_or(false);
        let body = serde_json::to_vec(&parent).map_err(|e| ApiError::Internal(e.to_string()))?;
        let applied = self.with_context(request, |context| {
            crate::apply::apply(Some(live), &body, context, &manager, force)
        })?;
        Ok((replicas, applied))
    }
}

/// One Scale's body in the negotiated output.
pub(super) fn encode(scale: &Value, output: Output) -> ApiResult<Vec<u8>> {
    let json = |v: &Value| serde_json::to_vec(v).map_err(|e| ApiError::Internal(e.to_string()));
    match output {
        Output::Table(include) => scale_table(scale, include),
        Output::Metadata {
            list: false,
            api_version,
            protobuf: false,
        } => json(&partial_metadata(scale, api_version)),
        Output::Metadata {
            list: false,
            api_version,
            protobuf: true,
        } => protobuf_body(
            api_version,
            "PartialObjectMetadata",
            &partial_metadata(scale, api_version),
        ),
        Output::Protobuf => protobuf_body("autoscaling/v1", "Scale", scale),
        Output::Metadata { list: true, .. } => {
            Err(super::request::metadata_shape_mismatch(true, "*v1.Scale"))
        }
        Output::Yaml => yaml(&json(scale)?),
        Output::Json => json(scale),
    }
}

fn protobuf_body(api_version: &str, kind: &str, object: &Value) -> ApiResult<Vec<u8>> {
    crate::protobuf::encode_object(api_version, kind, object.to_string().as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Upstream's Scale columns (its printer for `autoscaling` Scales): NAME, DESIRED, AVAILABLE,
/// AGE.
const SCALE_COLUMNS: [Column; 4] = [
    Column::name(),
    Column::new(
        "Desired",
        "integer",
        "replicas is the desired number of instances for the scaled object.",
    ),
    Column::new(
        "Available",
        "integer",
        "replicas is the actual number of observed instances of the scaled object.",
    ),
    Column::age(),
];

/// A Scale's metadata as a `PartialObjectMetadata` of `api_version`.
fn partial_metadata(scale: &Value, api_version: &str) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": scale["metadata"]})
}

/// A Scale as a one-row Table.
fn scale_table(scale: &Value, include: IncludeObject) -> ApiResult<Vec<u8>> {
    let metadata: ObjectMeta = serde_json::from_value(scale["metadata"].clone())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let cells = Cells::new(&[
        Cell::from(metadata.name.clone().unwrap_or_default()),
        Cell::from(scale["spec"]["replicas"].clone()),
        Cell::from(scale["status"]["replicas"].clone()),
        age(&metadata),
    ])?;
    let object = match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(scale.clone()),
        IncludeObject::Metadata => Some(partial_metadata(scale, "meta.k8s.io/v1")),
    }
    .map(|object| serde_json::to_vec(&object))
    .transpose()
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    table(
        &SCALE_COLUMNS,
        [Ok((Cow::Owned(cells), object))],
        None,
        true,
        None,
    )
}

/// The `autoscaling/v1` Scale view of an object.
fn scale_value(object: &Value, paths: ScalePaths) -> Value {
    let meta = object.get("metadata").cloned().unwrap_or(Value::Null);
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": get_path(object, paths.spec_replicas).cloned().unwrap_or(Value::from(0))},
        "status": {
            "replicas": get_path(object, paths.status_replicas).cloned().unwrap_or(Value::from(0)),
            "selector": get_path(object, paths.label_selector)
                .map(|selector| match paths.equality_selector {
                    true => equality_selector_string(selector),
                    false => selector_string(selector),
                })
                .unwrap_or_default(),
        },
    })
}

/// The replicas and resourceVersion precondition of a Scale (a PUT body or a patched Scale).
fn parse_scale(body: &Value, name: &str) -> ApiResult<(i64, Option<String>)> {
    if body.get("kind").and_then(Value::as_str) != Some("Scale") {
        return Err(ApiError::BadRequest(
            "the body of the request must be an autoscaling/v1 Scale".into(),
        ));
    }
    let replicas = body
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::Invalid {
            target: crate::error::Target {
                group: "autoscaling".into(),
                resource: "scale".into(),
                kind: "Scale".into(),
                name: name.to_string(),
            },
            causes: vec![Cause::invalid(
                "spec.replicas",
                &Value::from(replicas),
                "must be greater than or equal to 0",
            )],
        });
    }
    let precondition = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    Ok((replicas, precondition))
}

fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| v.get(part))
}

fn set_path(value: &mut Value, path: &str, new: Value) {
    let mut target = value;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if !target.get(*part).is_some_and(Value::is_object) {
            target[*part] = json!({});
        }
        target = &mut target[*part];
    }
    target[parts[parts.len() - 1]] = new;
}

/// A label map (a ReplicationController's selector) as upstream's `SelectorFromSet` prints
/// it: `key=value` pairs sorted by key.
fn equality_selector_string(selector: &Value) -> String {
    let mut pairs: Vec<(&String, &str)> = selector
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (key, value.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// A `LabelSelector` object as the selector string upstream prints: requirements sorted by key.
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            parts.push((
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or("")),
            ));
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match expression.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.clone(),
            Some("DoesNotExist") => format!("!{key}"),
            _ => continue,
        };
        parts.push((key, text));
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::selector_string;
    use serde_json::json;

    #[test]
    fn selectors_print_sorted() {
        let selector = json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]
        });
        assert_eq!(
            selector_string(&selector),
            "app=web,env in (dev,prod),tier=front"
        );
    }
}
